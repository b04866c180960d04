"""The kinematic pianist: a note list -> a performance plan -> 3D joints at the video frame rate.

Two passes:

1. `plan_performance` walks the notes in onset groups (chords) and decides, per group, which hand
   plays which note with which finger (order-preserving finger choices, a hand placement found by a
   small search so every fingertip reaches its key, least hand movement), and how the hands move
   (a move must respect a speed bound; a note still held when its hand has to leave is released
   then). Notes that no hand can reach in time are dropped. The result is the *performed* note
   list: render audio from it, so sound and motion agree exactly.
2. `synthesize_motion` turns the plan into per-frame world joints (T, 56, 3): minimum-jerk hand
   moves arriving before each onset, fingers descending onto their keys in an anticipation window
   and lifting after release, finger chains and arms solved by inverse kinematics with fixed bone
   lengths, the torso leaning towards the active register, head and torso following loudness and
   phrasing, and a rest pose (hands on the lap) in long silences.

>>> from apvg_hf.data.notes import Note
>>> notes = [Note(p, 0.5 * i + 1.0, 0.5 * i + 1.4, 80, "right") for i, p in enumerate([60, 62, 64, 65, 67])]
>>> plan = plan_performance(notes)
>>> [n.finger for n in plan.notes]  # a five-finger position
[1, 2, 3, 4, 5]
>>> synthesize_motion(plan, duration=3.0, fps=30).joints.shape
(90, 56, 3)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .. import skeleton as sk
from .notes import LEFT, RIGHT, Note, sort_notes
from .scene import KEY_DEPTH, key_press_point

HANDS = (LEFT, RIGHT)
_SIGN = {LEFT: -1.0, RIGHT: 1.0}  # local x -> world x (the left hand is the mirror image)

# ---------------------------------------------------------------------------------------------
# Body and hand model (metres, right hand; the left hand mirrors local x)
# ---------------------------------------------------------------------------------------------
# Hand frame: origin at the knuckle line's centre, x across the hand (towards the little finger),
# y forward (along the fingers), z up (back of the hand).
_MCP = np.array(
    [[-0.034, -0.046, -0.016],  # thumb CMC (thumbs abduct wide)
     [-0.026, 0.000, 0.000],  # index MCP
     [-0.008, 0.004, 0.003],  # middle MCP
     [0.010, 0.001, 0.001],  # ring MCP
     [0.027, -0.009, -0.004]]  # pinky MCP
)  # fmt: skip
_WRIST = np.array([0.0, -0.085, 0.012])
_SEGMENTS = np.array(
    [[0.042, 0.033, 0.027],  # thumb: metacarpal, proximal, distal
     [0.044, 0.026, 0.021],
     [0.048, 0.030, 0.022],
     [0.045, 0.028, 0.021],
     [0.036, 0.021, 0.019]]
)  # fmt: skip
# Where each fingertip rests relative to the knuckle centre: one white key apart, thumb a bit back.
_TIP_NOMINAL = np.array([[-0.047, 0.030], [-0.024, 0.055], [0.0, 0.060], [0.023, 0.056], [0.045, 0.043]])
_IDLE_DROP = 0.024  # idle fingertips hang this far below the knuckles
_TIP_RADIUS = 0.006


@dataclass
class BodyProportions:
    """Performer's measurements in metres (appearances vary these)."""

    upper_arm: float = 0.30
    forearm: float = 0.27
    shoulder_width: float = 0.38
    hip_width: float = 0.30
    torso: float = 0.53  # hip centre -> shoulder centre
    neck: float = 0.17  # shoulder centre -> head centre
    hand: float = 1.0  # scale of the hand model

    @property
    def seat(self) -> np.ndarray:
        """Hip centre: the bench's distance follows the arm length, as a pianist adjusts it."""
        return np.array([0.0, -0.73 * (self.upper_arm + self.forearm) - 0.02, -0.14])


@dataclass
class PianistConfig:
    """Timing and motion parameters of the virtual pianist."""

    chord_window: float = 0.035  # onsets closer than this form one group
    anticipation: float = 0.12  # fingers start descending this long before an onset
    release: float = 0.10  # and finish lifting this long after an offset
    arrive_lead: float = 0.025  # hands arrive this long before an onset
    min_dwell: float = 0.045  # a hand stays at least this long after an onset before it moves
    max_hand_speed: float = 1.6  # average speed of a hand move, m/s (peak is 1.875x)
    max_span: int = 14  # semitones one hand may cover at once
    rest_gap: float = 1.6  # silences longer than this send a hand to the lap
    max_reach: float = 0.97  # finger chord / finger length allowed when placing a hand
    speed_limit: float = (
        4.0  # bound on any joint's speed (m/s; fast leaps of pianists' hands reach ~3), checked by tests
    )


# ---------------------------------------------------------------------------------------------
# Hand geometry helpers
# ---------------------------------------------------------------------------------------------
def _rot(axis: str, a: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a world axis by angles (...,)."""
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    if axis == "x":
        m = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "y":
        m = [[c, z, s], [z, o, z], [-s, z, c]]
    else:
        m = [[c, -s, z], [s, c, z], [z, z, o]]
    return np.stack([np.stack(row, -1) for row in m], -2)


def hand_yaw(anchor: np.ndarray, hand: str, body: BodyProportions) -> np.ndarray:
    """Hands turn a little with the forearm: yaw (rad) from the shoulder-to-knuckle direction."""
    shoulder_x = _SIGN[hand] * body.shoulder_width / 2
    dx = anchor[..., 0] - shoulder_x
    dy = anchor[..., 1] - body.seat[1]
    return np.clip(-0.5 * np.arctan2(dx, dy), -0.35, 0.35)


def _local(points: np.ndarray, hand: str, scale: float) -> np.ndarray:
    return points * np.array([_SIGN[hand], 1.0, 1.0]) * scale


def _hand_points(anchor: np.ndarray, yaw: np.ndarray, hand: str, body: BodyProportions):
    """World wrist (..., 3) and finger bases (..., 5, 3) for hand anchors (..., 3)."""
    rot = _rot("z", np.asarray(yaw))  # (..., 3, 3)
    base = np.einsum("...ij,fj->...fi", rot, _local(_MCP, hand, body.hand)) + anchor[..., None, :]
    wrist = np.einsum("...ij,j->...i", rot, _local(_WRIST, hand, body.hand)) + anchor
    return wrist, base


def _chain_chord(phi: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Chord length of a 3-segment chain whose joints all bend by phi: (...,) and (..., 3)."""
    x = seg[..., 0] + seg[..., 1] * np.cos(phi) + seg[..., 2] * np.cos(2 * phi)
    y = -seg[..., 1] * np.sin(phi) - seg[..., 2] * np.sin(2 * phi)
    return np.hypot(x, y)


# Flexion per finger joint stays within [MIN, MAX] (rad): beyond either end the chain is near a
# singularity (fully curled or straight) where joints whip for small target moves. Hand placements
# keep pressing fingers inside this band (max_reach 0.97 ~ 0.3 rad).
MIN_FLEXION, MAX_FLEXION = 0.25, 1.3


def solve_finger_chain(
    base: np.ndarray,
    tip: np.ndarray,
    seg: np.ndarray,
    up: np.ndarray,
    flexion: tuple[float, float] = (MIN_FLEXION, MAX_FLEXION),
) -> np.ndarray:
    """Inverse kinematics of a finger with equal flexion at its joints (bone lengths fixed).

    Args:
        base: (..., 3) knuckle (or thumb CMC); tip: (..., 3) fingertip target; seg: (..., 3) segment
        lengths; up: (..., 3) the back-of-hand direction (the finger curls away from it).

    Returns:
        (..., 4, 3) the chain's points base, joint, joint, fingertip. Targets outside the band the
        `flexion` range reaches are approached along their direction as closely as it allows, which
        keeps the joints a smooth function of the target (no whipping).
    """
    chord = tip - base
    dist = np.linalg.norm(chord, axis=-1)
    lo, hi = np.full_like(dist, flexion[0]), np.full_like(dist, flexion[1])
    for _ in range(40):  # bisection on the flexion angle: the chord shrinks as phi grows
        mid = (lo + hi) / 2
        longer = _chain_chord(mid, seg) > dist
        lo = np.where(longer, mid, lo)
        hi = np.where(longer, hi, mid)
    phi = ((lo + hi) / 2)[..., None]
    # 2D chain in its own plane: first segment along +x, then bending downwards by phi each joint.
    angles = np.concatenate([np.zeros_like(phi), -phi, -2 * phi], -1)  # (..., 3)
    steps = seg[..., None] * np.stack([np.cos(angles), np.sin(angles)], -1)  # (..., 3, 2)
    pts2 = np.concatenate([np.zeros_like(steps[..., :1, :]), np.cumsum(steps, -2)], -2)  # (..., 4, 2)
    end = pts2[..., 3, :]
    rot = -np.arctan2(end[..., 1], end[..., 0])[..., None]  # turn the chain so its end lies on the chord
    c, s = np.cos(rot), np.sin(rot)
    px = pts2[..., 0] * c - pts2[..., 1] * s
    py = pts2[..., 0] * s + pts2[..., 1] * c
    e1 = chord / np.maximum(dist, 1e-9)[..., None]
    e2 = up - (up * e1).sum(-1, keepdims=True) * e1
    e2 /= np.maximum(np.linalg.norm(e2, axis=-1, keepdims=True), 1e-9)
    return base[..., None, :] + px[..., None] * e1[..., None, :] + py[..., None] * e2[..., None, :]


def _press_target(pitch: int, pressed: bool = True) -> np.ndarray:
    p = key_press_point(pitch).copy()
    p[2] += _TIP_RADIUS - (KEY_DEPTH if pressed else 0.0)
    return p


def _fit_hand(
    pitches: list[int],
    fingers: tuple[int, ...],
    hand: str,
    body: BodyProportions,
    cfg: PianistConfig,
    current: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Find a hand placement whose fingers reach `pitches`: returns (anchor (3,), worst constraint excess).

    A coarse box of candidates around the ideal placement (and the `current` one: staying put and
    reaching is preferred to moving, as a pianist keeps a hand position through a passage), then a
    finer grid around the best. Feasible (excess 0): every finger within reach and not curled past
    MAX_FLEXION, pointing forward from its knuckle, and the arm able to reach the wrist."""
    targets = np.stack([_press_target(p) for p in pitches])  # (n, 3)
    f = np.asarray(fingers) - 1
    nominal = _local(np.c_[_TIP_NOMINAL, np.zeros(5)], hand, body.hand)[f]
    guess = (targets - nominal).mean(0)
    for _ in range(2):  # the hand turns with its position: place the turned fingers over their keys
        turned = nominal @ _rot("z", hand_yaw(guess, hand, body)).T
        guess[:2] = (targets - turned).mean(0)[:2]
    # Fingers reach in to black keys: the hand goes only a quarter of the way forward.
    guess[1] = (targets[:, 1] - turned[:, 1]).min() + 0.25 * np.ptp(targets[:, 1])
    guess[2] = targets[:, 2].max() + 0.042 * body.hand
    axes = (np.linspace(-0.04, 0.04, 9), np.linspace(-0.04, 0.10, 8), np.linspace(-0.02, 0.03, 5))
    cands = guess + np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    if current is not None and abs(current[0] - guess[0]) < 0.06 and abs(current[1] - guess[1]) < 0.025:
        cands = np.concatenate([current[None], cands])
    best, _ = _best_placement(cands, targets, f, hand, body, cfg, guess, current)
    fine = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return _best_placement(
        best + fine * np.array([0.005, 0.01, 0.006]), targets, f, hand, body, cfg, guess, current
    )


def _best_placement(cands, targets, f, hand, body: BodyProportions, cfg: PianistConfig, guess, current):
    """The best of candidate knuckle-centre placements (C, 3): feasible first, then near `current`/`guess`."""
    yaw = hand_yaw(cands, hand, body)
    wrist, base = _hand_points(cands, yaw, hand, body)  # (C, 3), (C, 5, 3)
    reach = targets[None] - base[:, f]  # (C, n, 3)
    chord = np.linalg.norm(reach, axis=-1)  # (C, n)
    seg = _SEGMENTS[f] * body.hand
    ratio = chord / seg.sum(-1)
    min_ratio = _chain_chord(np.full(len(f), MAX_FLEXION), seg) / seg.sum(-1)
    forward = np.stack([-np.sin(yaw), np.cos(yaw)], -1)  # (C, 2)
    ahead = (reach[..., :2] * forward[:, None]).sum(-1) / np.maximum(chord, 1e-9)  # (C, n)
    # The arm must reach the wrist (the shoulder of an upright torso leaning at most 6 cm that way).
    shoulder = body.seat + np.array([_SIGN[hand] * body.shoulder_width / 2, 0.05, body.torso * 0.99])
    shoulder = shoulder + np.c_[np.clip(wrist[:, 0] - shoulder[0], -0.06, 0.06), np.zeros((len(cands), 2))]
    arm = np.linalg.norm(wrist - shoulder, axis=-1) / (body.upper_arm + body.forearm)
    bad = np.concatenate(
        [
            np.maximum(ratio - cfg.max_reach, 0),  # too far
            np.maximum(min_ratio[None] + 0.02 - ratio, 0),  # too close (curled past MAX_FLEXION)
            np.maximum(0.05 - ahead, 0),  # pointing back under the palm
            np.maximum(arm - 0.95, 0)[:, None],  # out of the arm's reach
        ],
        1,
    ).max(1)
    ref = guess if current is None else current
    near = (np.abs(cands - ref) / np.array([0.02, 0.06, 0.06])).sum(1) * 0.01 + 0.3 * np.abs(
        cands - guess
    ).sum(1)
    best = int(np.argmin(bad * 100 + near))
    return cands[best], float(bad[best])


def _stretch(pitches: list[int], fingers: tuple[int, ...], hand: str) -> float:
    """How far the keys' spacing departs from the fingers' natural spacing (metres, summed)."""
    if len(pitches) < 2:
        return 0.0
    keys = np.array([key_press_point(p)[0] for p in pitches])
    nat = _SIGN[hand] * _TIP_NOMINAL[np.asarray(fingers) - 1, 0]
    return float(np.abs(np.diff(keys) - np.diff(nat)).sum())


def _rest_anchor(hand: str, body: BodyProportions) -> np.ndarray:
    """Hands rest on the thighs in silences."""
    seat = body.seat
    return np.array([_SIGN[hand] * 0.11, seat[1] + 0.30, seat[2] + 0.11])


# ---------------------------------------------------------------------------------------------
# Pass 1: planning
# ---------------------------------------------------------------------------------------------
@dataclass
class HandMove:
    """The hand holds `anchor` from `arrive` (until its next move starts)."""

    start: float  # the move towards `anchor` starts
    arrive: float
    anchor: np.ndarray
    group_onset: float
    distance: float = 0.0  # how far the hand travels (0: it stays where it is)


@dataclass
class PerformancePlan:
    notes: list[Note]  # performed notes: hand, finger and (possibly shortened) offsets set
    moves: dict[str, list[HandMove]]
    dropped: list[Note]
    body: BodyProportions
    config: PianistConfig


def group_onsets(notes: list[Note], window: float) -> list[list[Note]]:
    groups: list[list[Note]] = []
    for n in sort_notes(notes):
        if groups and n.onset - groups[-1][0].onset < window:
            groups[-1].append(n)
        else:
            groups.append([n])
    return groups


@dataclass
class _HandState:
    anchor: np.ndarray
    last_onset: float = -1e9
    last_offset: float = -1e9
    held: list[int] = field(default_factory=list)  # indices into the output note list
    finger_of: dict[int, int] = field(default_factory=dict)  # finger -> pitch last pressed


def _fingerings(pitches: list[int], hand: str):
    """Order-preserving finger choices: the right hand plays low->high with 1..5, the left with 5..1."""
    for combo in itertools.combinations(range(1, 6), len(pitches)):
        yield combo if hand == RIGHT else tuple(reversed(combo))


def _best_fingering(pitches, hand, state: _HandState, onset, body, cfg, reference=None):
    """Cheapest feasible fingering of `pitches` (sorted) for `hand`, or None."""
    best = None
    for fingers in _fingerings(pitches, hand):
        anchor, bad = _fit_hand(
            pitches, fingers, hand, body, cfg, current=state.anchor if reference is None else None
        )
        if bad > 0:
            continue
        dist = float(np.linalg.norm(anchor - state.anchor))
        ref = state.anchor if reference is None else reference
        move = np.abs(anchor - ref) / np.array([0.02, 0.06, 0.06])
        free_time = onset - cfg.arrive_lead - (state.last_onset + cfg.min_dwell)
        if dist > 0.01 and dist / max(free_time, 1e-3) > cfg.max_hand_speed:
            continue  # cannot get there in time
        cost = float(move.sum()) + _stretch(pitches, fingers, hand) / 0.01
        # Fingers play near their natural places on the hand (not the thumb reaching for everything);
        # only the chord's common offset counts here, its spread is `_stretch`'s.
        nat = anchor[0] + _SIGN[hand] * _TIP_NOMINAL[np.asarray(fingers) - 1, 0] * body.hand
        offset = np.array([key_press_point(p)[0] for p in pitches]) - nat
        cost += len(pitches) * abs(float(offset.mean())) / 0.012
        for p, f in zip(pitches, fingers):
            if f == 1 and p % 12 in (1, 3, 6, 8, 10):
                cost += 1.0  # thumbs prefer white keys
            prev = state.finger_of.get(f)
            if prev is not None and prev != p and onset - state.last_onset < 1.0:
                cost += 2.0 if onset - state.last_onset < 0.3 else 0.8  # the same finger on another key
        cost += 0.2 * sum(f == 5 for f in fingers)
        if best is None or cost < best[0]:
            best = (cost, fingers, anchor)
    return best


def plan_performance(
    notes: list[Note], body: BodyProportions | None = None, config: PianistConfig | None = None
) -> PerformancePlan:
    """Assign hands and fingers, plan hand moves, shorten held notes a moving hand must release."""
    body = body or BodyProportions()
    cfg = config or PianistConfig()
    state = {h: _HandState(anchor=_rest_anchor(h, body)) for h in HANDS}
    out: list[Note] = []
    moves: dict[str, list[HandMove]] = {h: [] for h in HANDS}
    dropped: list[Note] = []

    groups = group_onsets(notes, cfg.chord_window)
    hinted = {h: sorted((n.onset, key_press_point(n.pitch)[0]) for n in notes if n.hand == h) for h in HANDS}
    for group in groups:
        onset = min(n.onset for n in group)
        # A hand coming back from rest aims for the middle of the passage ahead (its next notes).
        reference = {}
        for h in HANDS:
            if onset - state[h].last_onset > cfg.rest_gap:
                ahead = [x for t, x in hinted[h] if onset - 1e-6 <= t < onset + 3.0][:6]
                if ahead:
                    reference[h] = np.array([np.mean(ahead), -0.01, 0.045])
        group = sorted(group, key=lambda n: n.pitch)
        # Try every split low notes -> left hand, high notes -> right hand; fewer notes if none fits.
        choice = None
        keep = list(range(len(group)))
        while keep and choice is None:
            cand = [group[i] for i in keep]
            for k in range(len(cand) + 1):
                parts = {LEFT: cand[:k], RIGHT: cand[k:]}
                total, plan_h = 0.0, {}
                for h, part in parts.items():
                    if not part:
                        continue
                    pitches = [n.pitch for n in part]
                    if len(part) > 5 or pitches[-1] - pitches[0] > cfg.max_span:
                        break
                    best = _best_fingering(pitches, h, state[h], onset, body, cfg, reference.get(h))
                    if best is None:
                        break
                    total += best[0] + 6.0 * sum(n.hand not in (None, h) for n in part)  # the score's staff
                    plan_h[h] = best
                else:
                    if choice is None or total < choice[0]:
                        choice = (total, parts, plan_h)
            if choice is None:  # drop an inner note (keep melody and bass as long as possible)
                dropped.append(group[keep.pop(len(keep) // 2 if len(keep) > 2 else 0)])
        if choice is None:
            continue
        _, parts, plan_h = choice
        for h, (_, fingers, anchor) in plan_h.items():
            st = state[h]
            dist = float(np.linalg.norm(anchor - st.anchor))
            arrive = onset - cfg.arrive_lead
            move_time = float(np.clip(dist / 0.6, 0.08, 0.35))
            start = max(st.last_onset + cfg.min_dwell, arrive - move_time) if dist > 1e-3 else arrive
            start = min(start, arrive)
            # Release what this hand still holds: everything if it moves, else re-used fingers/keys.
            new_pitches = {n.pitch for n in parts[h]}
            still = []
            for i in st.held:
                n = out[i]
                if n.offset <= start:
                    continue
                if dist > 0.004:  # the hand leaves: release when it starts moving (>= min_dwell after onset)
                    out[i] = n.replace(offset=start)
                elif n.finger in fingers or n.pitch in new_pitches:  # the finger/key is needed again
                    # Leave the finger time to travel to its next key (<= ~1.2 m/s on average).
                    nxt = next(
                        (p for p, f in zip([m.pitch for m in parts[h]], fingers) if f == n.finger), n.pitch
                    )
                    travel = float(np.linalg.norm(key_press_point(nxt) - key_press_point(n.pitch)))
                    out[i] = n.replace(offset=max(onset - max(0.03, travel / 1.2), n.onset + 0.03))
                else:
                    still.append(i)
            st.held = still
            for n, f in zip(parts[h], fingers):
                st.held.append(len(out))
                out.append(n.replace(hand=h, finger=f))
                st.finger_of[f] = n.pitch
            moves[h].append(
                HandMove(start=start, arrive=arrive, anchor=anchor, group_onset=onset, distance=dist)
            )
            st.anchor = anchor
            st.last_onset = onset
        # The same key in the other hand must be released before it is struck again.
        for h in HANDS:
            if h in plan_h:
                continue
            for i in state[h].held:
                if out[i].pitch in {n.pitch for n in group} and out[i].offset > onset - 0.03:
                    out[i] = out[i].replace(offset=max(onset - 0.03, out[i].onset + 0.04))
    return PerformancePlan(notes=sort_notes(out), moves=moves, dropped=dropped, body=body, config=cfg)


# ---------------------------------------------------------------------------------------------
# Pass 2: motion synthesis
# ---------------------------------------------------------------------------------------------
def _min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def _keyframe_track(keys: list[tuple[float, np.ndarray]], t: np.ndarray) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through (time, value) keyframes: (T,) -> (T, D)."""
    times = np.array([k[0] for k in keys])
    vals = np.stack([k[1] for k in keys])
    times = np.maximum.accumulate(times)
    out = np.repeat(vals[:1], len(t), 0).astype(np.float64)
    for i in range(len(keys) - 1):
        t0, t1 = times[i], times[i + 1]
        sel = t >= t0
        if t1 - t0 < 1e-9:
            out[sel] = vals[i + 1]
            continue
        s = _min_jerk((t[sel] - t0) / (t1 - t0))[:, None]
        out[sel] = vals[i] + (vals[i + 1] - vals[i]) * s
    return out


def _hand_track(plan: PerformancePlan, hand: str, t: np.ndarray) -> np.ndarray:
    """(T, 3) knuckle-centre trajectory of one hand, with rests in long silences."""
    cfg, body = plan.config, plan.body
    rest = _rest_anchor(hand, body)
    notes = [n for n in plan.notes if n.hand == hand]
    keys: list[tuple[float, np.ndarray]] = [(-1.0, rest)]
    last_anchor, last_end = rest, -1e9
    for mv in plan.moves[hand]:
        group_end = max(
            (n.offset for n in notes if abs(n.onset - mv.group_onset) < cfg.chord_window), default=mv.arrive
        )
        if mv.group_onset - last_end > cfg.rest_gap:  # silence: (go to and) come back from the lap
            if last_end > -1e8:
                keys += [(last_end + 0.08, last_anchor), (last_end + 0.65, rest)]
            keys += [(mv.arrive - 0.55, rest), (mv.arrive, mv.anchor)]
        else:
            keys += [(mv.start, last_anchor), (mv.arrive, mv.anchor)]
        last_anchor, last_end = mv.anchor, max(last_end, group_end)
    if last_end > -1e8:
        keys += [(last_end + 0.08, last_anchor), (last_end + 0.65, rest)]
    return _keyframe_track(keys, t)


def _at(t: np.ndarray, time: float) -> int:
    """Index of the first frame at or after `time` (clipped to the clip)."""
    return min(int(np.searchsorted(t, time)), len(t) - 1)


def _finger_tracks(
    plan: PerformancePlan, hand: str, t: np.ndarray, idle: np.ndarray, anchor: np.ndarray
) -> np.ndarray:
    """(T, 5, 3) fingertip targets: idle positions (moving with the hand) blended with key presses.

    Per finger, two continuous functions of time: `key(t)`, the key the finger is on or travelling
    between (key to key in a lifted arc when presses follow closely), and a weight `w(t)` that is 1
    while pressing or travelling key to key and eases to 0 (idle) across longer gaps. A released
    finger is carried along by its hand (`anchor`, (T, 3)) while it lifts.
    """
    cfg = plan.config
    out = idle.copy()
    move_starts = np.array(sorted(mv.start for mv in plan.moves[hand] if mv.distance > 0.004) + [1e9])
    for f in range(1, 6):
        presses = sorted((n for n in plan.notes if n.hand == hand and n.finger == f), key=lambda n: n.onset)
        if not presses:
            continue
        on = np.array(
            [n.onset - 0.01 for n in presses]
        )  # the fingertip is on the key a little before it sounds
        off = np.array([max(n.offset, n.onset) for n in presses])
        up = np.stack([_press_target(n.pitch, pressed=False) for n in presses])
        down = np.stack([_press_target(n.pitch, pressed=True) for n in presses])
        key = np.repeat(up[:1], len(t), 0)
        lift = np.zeros(len(t))
        w = np.zeros(len(t))
        for i in range(len(presses)):
            # Pressing: on the key, pushing it down through the onset, letting it up by the release.
            during = (t >= on[i]) & (t <= off[i])
            push = np.clip((t[during] - on[i]) / 0.025, 0, 1) * np.clip((off[i] - t[during]) / 0.025, 0, 1)
            push = _min_jerk(push)
            key[during] = up[i] + (down[i] - up[i]) * push[:, None]
            w[during] = 1.0
            nxt = on[i + 1] if i + 1 < len(presses) else np.inf
            leaves = move_starts[np.searchsorted(move_starts, off[i] - 1e-6)]
            gap = nxt - off[i]
            if gap <= cfg.anticipation + cfg.release and (
                leaves >= nxt or gap < 0.08
            ):  # straight on to the next key
                between = (t > off[i]) & (t < nxt)
                s = _min_jerk((t[between] - off[i]) / max(gap, 1e-6))
                key[between] = up[i] + (up[i + 1] - up[i]) * s[:, None]
                lift[between] = np.sin(np.pi * s) * min(1.0, gap / 0.08)  # quick repeats: a small lift
                w[between] = 1.0
                continue
            # Otherwise: release (lift off before the hand leaves), idle, and approach the next key.
            r = max(0.02, min(cfg.release, gap / 2))
            after = (t > off[i]) & (t < off[i] + r)
            key[after] = up[i] + (anchor[after] - anchor[_at(t, off[i])])  # lifted, moving with the hand
            w[after] = 1.0 - _min_jerk((t[after] - off[i]) / r)
            lift[after] = 1.0 - w[after]
            if np.isfinite(nxt):
                a = max(0.02, min(cfg.anticipation, gap / 2))
                before = (t >= nxt - a) & (t < nxt)
                key[before] = up[i + 1] + (
                    anchor[before] - anchor[_at(t, nxt)]
                )  # rides with the arriving hand
                w[before] = _min_jerk((t[before] - (nxt - a)) / a)
                lift[before] = 1.0 - w[before]
                key[(t > off[i] + r) & (t < nxt - a)] = up[i + 1]
        first = t < on[0]
        a0 = cfg.anticipation
        key[first] = up[0] + (anchor[first] - anchor[_at(t, on[0])])
        w[first] = _min_jerk((t[first] - (on[0] - a0)) / a0)
        lift[first] = 1.0 - w[first]
        key[t > off[-1]] = up[-1]
        target = key + np.array([0.0, 0.0, 0.012]) * lift[:, None]  # approach and leave from above
        out[:, f - 1] = idle[:, f - 1] + (target - idle[:, f - 1]) * w[:, None]
    return out


@dataclass
class Motion:
    """Per-frame world joints (T, 56, 3) and what drove them."""

    joints: np.ndarray
    fps: float
    times: np.ndarray
    loudness: np.ndarray  # (T,) in [0, 1]


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames <= 0:
        return x
    r = int(3 * sigma_frames) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_frames) ** 2)
    k /= k.sum()
    pad = np.pad(x, [(r, r)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, pad)


def _arm_ik(shoulder: np.ndarray, wrist: np.ndarray, a: float, b: float, side: float) -> np.ndarray:
    """Elbow (T, 3) of a two-bone arm, bending outwards and down."""
    d_vec = wrist - shoulder
    d = np.clip(np.linalg.norm(d_vec, axis=-1), abs(a - b) + 1e-6, a + b - 1e-6)
    n = d_vec / np.linalg.norm(d_vec, axis=-1, keepdims=True)
    cos_a = (a**2 + d**2 - b**2) / (2 * a * d)
    pole = np.array([0.8 * side, -0.25, -0.6])
    m = pole - (n @ pole)[:, None] * n
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    return shoulder + a * (cos_a[:, None] * n + np.sqrt(1 - cos_a**2)[:, None] * m)


def synthesize_motion(
    plan: PerformancePlan, duration: float, fps: float = 30.0, rng: np.random.Generator | None = None
) -> Motion:
    """World joints for every frame of a `duration`-second performance."""
    rng = rng or np.random.default_rng(0)
    body = plan.body
    T = int(round(duration * fps))
    t = np.arange(T) / fps
    J = np.zeros((T, sk.NUM_KEYPOINTS, 3))

    # Loudness: velocity-weighted sounding notes, smoothed over ~0.4 s, in [0, 1].
    loud = np.zeros(T)
    for n in plan.notes:
        i0, i1 = int(n.onset * fps), int(np.ceil(min(n.offset, n.onset + 1.0) * fps))
        loud[max(i0, 0) : max(i1, 0)] += n.velocity / 127
    loud = _smooth(loud, 0.4 * fps)
    loud = loud / max(loud.max(), 1e-6) if loud.max() > 0 else loud
    accents = np.zeros(T)
    for n in plan.notes:
        if n.velocity >= 90 and 0 <= int(n.onset * fps) < T:
            accents[int(n.onset * fps)] += 1
    nod = _smooth(np.minimum(accents, 1.0), 0.12 * fps)

    # Hands first (they drive the torso's lean).
    anchors = {h: _hand_track(plan, h, t) for h in HANDS}
    register = _smooth((anchors[LEFT][:, 0] + anchors[RIGHT][:, 0]) / 2, 0.3 * fps)

    # Torso: pivot at the hips; lean sideways to the register, forward with loudness, phrase sway.
    period, phase = rng.uniform(3.0, 5.0), rng.uniform(0, 2 * np.pi)
    sway = 0.025 * np.sin(2 * np.pi * t / period + phase) * (0.4 + loud)
    roll = np.clip(0.45 * register / body.torso, -0.2, 0.2) + sway
    pitch = 0.12 + 0.07 * loud + 0.015 * np.sin(2 * np.pi * t / (period * 1.7) + 1.0)
    yaw = 0.25 * np.arctan2(register, 0.6)
    torso_rot = _rot("z", yaw) @ _rot("y", roll) @ _rot("x", -pitch)  # (T, 3, 3)
    hip = np.broadcast_to(body.seat, (T, 3))
    spine = torso_rot @ np.array([0.0, 0.0, body.torso])
    across = torso_rot @ np.array([1.0, 0.0, 0.0])
    neck = hip + spine
    shoulders = {h: neck + _SIGN[h] * across * body.shoulder_width / 2 for h in HANDS}

    # Head: looks towards the hands, nods on accents.
    head_yaw = 0.5 * np.arctan2(register - neck[:, 0], 0.55) - yaw
    head_rot = torso_rot @ _rot("z", head_yaw) @ _rot("x", -(0.25 + 0.08 * nod - 0.12))
    head = neck + head_rot @ np.array([0.0, 0.02, body.neck])
    ix = sk.INDEX
    J[:, ix["neck"]] = neck
    for name, off in {
        "nose": (0.0, 0.095, -0.02),
        "left_eye": (-0.032, 0.08, 0.018),
        "right_eye": (0.032, 0.08, 0.018),
        "left_ear": (-0.078, 0.0, 0.0),
        "right_ear": (0.078, 0.0, 0.0),
    }.items():
        J[:, ix[name]] = head + head_rot @ np.array(off)
    for h in HANDS:
        J[:, ix[f"{h}_hip"]] = hip + _SIGN[h] * across * body.hip_width / 2  # the pelvis turns with the torso
        J[:, ix[f"{h}_shoulder"]] = shoulders[h]

    # Hands: palm from the anchor track, fingers by IK onto their targets, arm by IK onto the wrist.
    for h in HANDS:
        anchor = anchors[h]
        yaw_h = hand_yaw(anchor, h, body)
        rot = _rot("z", yaw_h)
        wrist, base = _hand_points(anchor, yaw_h, h, body)
        idle_local = _local(np.c_[_TIP_NOMINAL, np.full(5, -_IDLE_DROP)], h, body.hand)
        idle = np.einsum("tij,fj->tfi", rot, idle_local) + anchor[:, None]
        tips = _finger_tracks(plan, h, t, idle, anchor)
        # Fingers bulge up-and-forward: never parallel to a finger's chord, so the IK plane never flips.
        up = np.broadcast_to((rot[:, :, 2] + rot[:, :, 1])[:, None], (T, 5, 3))
        chains = solve_finger_chain(base, tips, np.broadcast_to(_SEGMENTS * body.hand, (T, 5, 3)), up)
        hand_idx = sk.HAND_INDICES[h]
        J[:, hand_idx[0]] = wrist
        for f in range(5):
            J[:, hand_idx[1 + 4 * f : 5 + 4 * f]] = chains[:, f]
        J[:, ix[f"{h}_wrist"]] = wrist
        J[:, ix[f"{h}_elbow"]] = _arm_ik(shoulders[h], wrist, body.upper_arm, body.forearm, _SIGN[h])
    return Motion(joints=J, fps=fps, times=t, loudness=loud)
