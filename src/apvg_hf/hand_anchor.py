"""Hand anchoring: put the hands where the keys of the notes are.

A KHP personalised on a minute of one performer's video learns where he *usually* sits more than
where the notes lie: the fourMs pianist's training part covers a few places on the keyboard, and when
he plays an octave higher in the held-out part his generated double stays near the middle. Anchoring
corrects that with the keyboard's geometry, after the network:

1. `note_anchors`: each note heard (or read from MIDI) is given to a hand (around each note, within
   `window_s`, notes spanning at least `split_span` semitones are split at their median pitch; a
   narrower group goes to the left hand below `split_pitch`, else the right), and each hand's anchor
   is the Gaussian-weighted (`sigma_s`) mean of its notes' key centres in the frame, with a weight that
   says how many notes are near in time (0 far from any).
2. `anchor_hands`: where a hand's fingertips (their centroid) are further than `dead_zone_keys`
   white-key widths from its anchor plus a fitted offset (where on average this performer's
   fingertips sit relative to the keys he plays, in this camera), the hand (its 21 joints and the
   body's wrist; the elbow half way) moves the rest of the way, in proportion to the anchor's weight.
   Inside the dead zone (a hand reaches a few keys each way) the network's placement stays. The
   body (other joints) follows the hands' mean move by `body_follow` per axis: a pianist leans
   towards where he plays.

The offsets and `body_follow` are fitted on a performer's training part
(`apvg_hf.training.khp.fit_hand_anchor`) and stored in the KHP's config (`hand_anchor`), which
applies them at inference; `sigma_s` and the dead zone were chosen on the validation split. Every
operation is per frame given the whole input's notes, so chunked inference stays exact.
"""

from __future__ import annotations

import copy

import numpy as np

from .piano_roll import LOWEST_PITCH, NUM_KEYS, is_black_key
from .skeleton import FINGERTIPS, HAND_INDICES, HANDS, INDEX, NUM_BODY

DEFAULTS = {
    "sigma_s": 0.15,  # Gaussian width in time of a hand's anchor (seconds)
    "window_s": 1.0,  # notes this near in time decide the split between the hands
    "split_span": 7,  # semitones: a wider group is split at its median pitch
    "split_pitch": 60,  # a narrower group goes to the left hand below this pitch
    "dead_zone_keys": 2.0,  # white-key widths around the anchor where the network's hand stays
    "full_weight": 0.05,  # note density (notes per frame, smoothed) at which the anchor fully applies
    "offsets": [[0.0, 0.0], [0.0, 0.0]],  # (left, right) fingertip centroid - anchor, image units
    "body_follow": [0.0, 0.0],  # (x, y) body move per unit of the hands' mean move
}
# body joints that move with the body, not with a hand
TORSO_JOINTS = [
    i for i in range(NUM_BODY) if i not in {INDEX[f"{h}_{j}"] for h in HANDS for j in ("elbow", "wrist")}
]


def resolve(settings: dict | None) -> dict:
    """Settings (e.g. a KHP config's `hand_anchor`) with the defaults filled in; clear errors."""
    unknown = set(settings or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown hand_anchor settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    out = copy.deepcopy(DEFAULTS | dict(settings or {}))
    if np.shape(out["offsets"]) != (2, 2) or np.shape(out["body_follow"]) != (2,):
        raise ValueError("hand_anchor offsets must be [[x, y], [x, y]] (left, right), body_follow [x, y]")
    if out["sigma_s"] <= 0 or out["window_s"] <= 0 or out["dead_zone_keys"] < 0 or out["full_weight"] <= 0:
        raise ValueError(
            f"hand_anchor: sigma_s, window_s, full_weight must be > 0, dead_zone_keys >= 0: {out}"
        )
    return out


def white_key_width(centres: np.ndarray) -> float:
    """(88, 2) key centres -> the mean distance between neighbouring white keys' centres."""
    white = [i for i in range(NUM_KEYS) if not is_black_key(LOWEST_PITCH + i)]
    return float(np.linalg.norm(np.diff(np.asarray(centres)[white], axis=0), axis=-1).mean())


def gaussian_smooth(x: np.ndarray, sigma: float, mode: str = "edge") -> np.ndarray:
    """Gaussian smoothing along axis 0, kernel normalised; beyond the ends `mode` "edge" repeats the
    end values (a signal), "constant" is zero (events: one onset stays one onset)."""
    r = max(1, int(4 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(x, [(r, r)] + [(0, 0)] * (x.ndim - 1), mode=mode)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, pad)


def split_hands(notes: list[dict], settings: dict) -> list[int]:
    """Each note's hand: 0 left, 1 right (see the module doc)."""
    s = resolve(settings)
    onsets = np.array([n["onset"] for n in notes], np.float64)
    pitches = np.array([n["pitch"] for n in notes], np.float64)
    order = np.argsort(onsets, kind="stable")
    by_time, pitch_by_time = onsets[order], pitches[order]
    # each note's neighbours (|onset difference| < window_s) are a slice of the notes sorted by onset
    lo = np.searchsorted(by_time, onsets - s["window_s"], side="right")
    hi = np.searchsorted(by_time, onsets + s["window_s"], side="left")
    hands = []
    for p, a, b in zip(pitches, lo, hi):
        near = pitch_by_time[a:b]
        if near.max() - near.min() >= s["split_span"]:
            hands.append(0 if p <= np.median(near) else 1)
        else:
            hands.append(0 if p < s["split_pitch"] else 1)
    return hands


def note_anchors(
    notes: list[dict], num_frames: int, fps: float, centres: np.ndarray, settings: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Notes (dicts with pitch, onset) and the (88, 2) key centres in the frame -> each hand's anchor
    (2, T, 2) and weight (2, T) in [0, 1] (0: no note near in time; the anchor is then meaningless)."""
    s = resolve(settings)
    centres = np.asarray(centres, np.float64)
    count, where = np.zeros((2, num_frames)), np.zeros((2, num_frames, 2))
    notes = [n for n in notes if 0 <= n["pitch"] - LOWEST_PITCH < NUM_KEYS]
    for n, h in zip(notes, split_hands(notes, s) if notes else []):
        f = int(round(n["onset"] * fps))
        if 0 <= f < num_frames:  # (a note that began before the input has no onset in it)
            count[h, f] += 1
            where[h, f] += centres[n["pitch"] - LOWEST_PITCH]
    sigma = s["sigma_s"] * fps
    density = gaussian_smooth(count.T, sigma, "constant").T  # (2, T) notes per frame
    anchors = gaussian_smooth(where.transpose(1, 0, 2).reshape(num_frames, 4), sigma, "constant")
    anchors = anchors.reshape(num_frames, 2, 2)
    anchors = anchors.transpose(1, 0, 2) / np.maximum(density, 1e-9)[..., None]  # (2, T, 2)
    return anchors, np.clip(density / s["full_weight"], 0.0, 1.0)


def move_hands(keypoints: np.ndarray, moves: dict) -> np.ndarray:
    """(T, K, 2) keypoints with each hand moved by moves[hand], (2,) or per frame (T, 2): its 21
    joints and the body's wrist fully, the elbow half way (the shoulders and the rest stay)."""
    kp = np.array(keypoints, copy=True)
    for h, d in moves.items():
        d = np.asarray(d, kp.dtype).reshape(-1, 1, 2) if np.ndim(d) == 2 else np.asarray(d, kp.dtype)
        kp[:, HAND_INDICES[h]] += d
        kp[:, [INDEX[f"{h}_wrist"]]] += d
        kp[:, [INDEX[f"{h}_elbow"]]] += d / 2
    return kp


def anchor_hands(
    keypoints: np.ndarray, anchors: np.ndarray, weights: np.ndarray, centres: np.ndarray, settings: dict
) -> np.ndarray:
    """(T, K, 2) predicted keypoints, `note_anchors`' (2, T, 2) anchors and (2, T) weights, the (88, 2)
    key centres -> the keypoints with the hands (and, by `body_follow`, the body) moved (module doc)."""
    s = resolve(settings)
    kp = np.asarray(keypoints)
    dead = s["dead_zone_keys"] * white_key_width(centres)
    moves = {}
    for i, h in enumerate(HANDS):
        tips = kp[:, FINGERTIPS[h]].mean(1)  # (T, 2)
        gap = anchors[i] + np.asarray(s["offsets"][i]) - tips  # (T, 2)
        dist = np.linalg.norm(gap, axis=-1, keepdims=True)
        moves[h] = gap * (np.clip(dist - dead, 0, None) / np.maximum(dist, 1e-9)) * weights[i][:, None]
    out = move_hands(kp, moves)
    body = (moves["left"] + moves["right"]) / 2 * np.asarray(s["body_follow"])  # (T, 2)
    out[:, TORSO_JOINTS] += body[:, None].astype(out.dtype)
    return out
