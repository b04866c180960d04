"""Key presses read off 2-D keypoints, scored against the notes (the virtual pianist's sync metric).

A fingertip *strikes* a key when it moves relative to its own wrist (the finger reaching for the key,
not the whole hand travelling) and then comes to rest on the key's press point (within
`max_distance` key widths), having not been there `lookback` frames earlier (a held note is not a
new strike). The decoder finds those strikes for all ten fingertips: the onset is the first resting
frame, the key is the one under the fingertip there (from the clip's key quads). Events are matched one-to-one to the notes, same pitch, onsets
within ±`tolerance` frames, giving precision, recall and F1.

The decoder's thresholds were set on ground-truth keypoints of the training split (a grid search);
on ground truth it scores F1 ≈ 0.85 (precision 0.87, recall 0.84): that is the ceiling for any
prediction, reported as the "ground truth" row by `scripts/evaluate_khp.py`.

>>> import numpy as np
>>> match_events([(60, 10), (62, 20)], [(60, 11), (64, 20)], tolerance=2)
(1, 2, 2)
"""

from __future__ import annotations

import numpy as np

from ..data.scene import BLACK_LENGTH, WHITE_LENGTH, is_black, key_press_point, key_under_points
from ..skeleton import FINGERTIPS, HAND_INDICES

MOVE_SPEED = 0.006  # image widths per frame: the fingertip is reaching (1.5 px/frame at 256)
REST_SPEED = 0.008  # ... and then (nearly) stops (2 px/frame at 256)


def press_points(keyboard_quads: np.ndarray, keyboard_pitches) -> np.ndarray:
    """(N, 4, 2) key-top quads -> (N, 2) image points where a fingertip presses each key.

    The press point's place on the key top (centred, a fixed fraction of the way back) is the
    virtual pianist's; in the image it is found by bilinear interpolation of the quad's corners.
    """
    q = np.asarray(
        keyboard_quads, dtype=np.float64
    )  # corners: front-left, front-right, back-right, back-left
    v = np.array(
        [
            (key_press_point(int(p))[1] - (WHITE_LENGTH - BLACK_LENGTH)) / BLACK_LENGTH
            if is_black(int(p))
            else key_press_point(int(p))[1] / WHITE_LENGTH
            for p in keyboard_pitches
        ]
    )[:, None]
    front, back = (q[:, 0] + q[:, 1]) / 2, (q[:, 2] + q[:, 3]) / 2
    return front + (back - front) * v


def decode_key_presses(
    keypoints: np.ndarray,
    keyboard_quads: np.ndarray,
    keyboard_pitches: np.ndarray | list[int],
    move_speed: float = MOVE_SPEED,
    rest_speed: float = REST_SPEED,
    refractory: int = 3,
    max_distance: float = 0.3,
    lookback: int = 2,
) -> list[tuple[int, int]]:
    """(T, K, 2) normalised keypoints -> sorted [(pitch, onset_frame)] of detected key strikes."""
    kp = np.asarray(keypoints, dtype=np.float64)
    pitches = np.asarray(keyboard_pitches)
    quads = np.asarray(keyboard_quads, dtype=np.float64)
    targets = press_points(quads, pitches)  # (N, 2)
    key_width = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=-1)  # (N,)
    row = {int(p): i for i, p in enumerate(pitches)}
    events: list[tuple[int, int]] = []
    for hand in ("left", "right"):
        wrist = kp[:, HAND_INDICES[hand][0]]  # (T, 2)
        for tip in FINGERTIPS[hand]:
            rel = kp[:, tip] - wrist  # (T, 2) fingertip relative to its wrist
            speed = np.r_[0.0, np.linalg.norm(np.diff(rel, axis=0), axis=-1)]  # speed[t]: t-1 -> t
            reach = np.maximum(speed, np.r_[0.0, speed[:-1]])  # moving in one of the last two steps
            rest = np.r_[speed[1:], np.inf] <= rest_speed  # still from t to t+1
            cand = np.flatnonzero((reach >= move_speed) & rest)
            if not len(cand):
                continue
            keys = key_under_points(kp[cand, tip], quads, pitches)
            last = -(10**9)
            for t, k in zip(cand.tolist(), keys.tolist()):
                if k < 0:
                    continue
                i = row[k]
                if np.linalg.norm(kp[t, tip] - targets[i]) > max_distance * key_width[i]:
                    continue  # resting, but not where a finger presses this key (e.g. back at idle)
                before = kp[max(t - lookback, 0), tip]
                if lookback and np.linalg.norm(before - targets[i]) <= max_distance * key_width[i]:
                    continue  # already on this key before the motion: a held note, not a new strike
                if t - last > refractory:
                    events.append((int(k), int(t)))
                    last = t
    return sorted(set(events), key=lambda e: (e[1], e[0]))


def note_events(notes, fps: float, num_frames: int) -> list[tuple[int, int]]:
    """Notes (dicts or objects with pitch/onset) -> [(pitch, onset_frame)] inside the clip."""
    out = []
    for n in notes:
        pitch, onset = (n["pitch"], n["onset"]) if isinstance(n, dict) else (n.pitch, n.onset)
        frame = int(round(onset * fps))
        if 0 <= frame < num_frames:
            out.append((int(pitch), frame))
    return sorted(out, key=lambda e: (e[1], e[0]))


def match_events(
    predicted: list[tuple[int, int]], reference: list[tuple[int, int]], tolerance: int = 2
) -> tuple[int, int, int]:
    """Greedy one-to-one matching (same pitch, |Δframe| <= tolerance) -> (matches, n_pred, n_ref)."""
    used = np.zeros(len(predicted), dtype=bool)
    by_pitch: dict[int, list[int]] = {}
    for i, (p, _) in enumerate(predicted):
        by_pitch.setdefault(p, []).append(i)
    matches = 0
    for p, t in reference:
        best, best_d = -1, tolerance + 1
        for i in by_pitch.get(p, []):
            d = abs(predicted[i][1] - t)
            if not used[i] and d < best_d:
                best, best_d = i, d
        if best >= 0:
            used[best] = True
            matches += 1
    return matches, len(predicted), len(reference)


def f1_from_counts(matches: int, n_pred: int, n_ref: int) -> dict[str, float]:
    precision = matches / n_pred if n_pred else 0.0
    recall = matches / n_ref if n_ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def note_hits(
    keypoints: np.ndarray,
    keyboard_quads: np.ndarray,
    keyboard_pitches: np.ndarray | list[int],
    events: list[tuple[int, int]],
    tolerance: int = 2,
) -> tuple[int, int]:
    """How many notes have some fingertip over their key within ±`tolerance` frames of the onset.

    A looser, spatial-only check than key-press F1 (no strike needed): (hits, notes).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    tips = [t for h in ("left", "right") for t in FINGERTIPS[h]]
    T = len(kp)
    under = key_under_points(kp[:, tips].reshape(-1, 2), keyboard_quads, keyboard_pitches).reshape(
        T, len(tips)
    )
    hits = 0
    for pitch, frame in events:
        lo, hi = max(0, frame - tolerance), min(T, frame + tolerance + 1)
        hits += bool((under[lo:hi] == pitch).any())
    return hits, len(events)
