"""The canonical keypoint layout: upper body + two 21-point hands, its bone graph, and drawing.

Every part of apvg-hf (data, models, metrics, drawing) uses this one definition. Coordinates are
normalised to [0, 1] of the frame (x right, y down); "left"/"right" are the performer's own sides,
as in OpenPose and MediaPipe. Each hand follows the standard 21-point layout (wrist, then four
points per finger from thumb to little finger), so real videos map onto it.

>>> from apvg_hf import skeleton
>>> skeleton.NUM_KEYPOINTS, len(skeleton.BONES)
(56, 60)
>>> skeleton.KEYPOINT_NAMES[skeleton.FINGERTIPS["right"][1]]
'right_hand_index_tip'
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

BODY_JOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "neck",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
]  # fmt: skip
FINGERS = ["thumb", "index", "middle", "ring", "pinky"]
HAND_JOINTS = ["wrist"] + [
    f"{finger}_{joint}"
    for finger, joints in zip(FINGERS, [["cmc", "mcp", "ip", "tip"]] + [["mcp", "pip", "dip", "tip"]] * 4)
    for joint in joints
]
HANDS = ("left", "right")

NUM_BODY = len(BODY_JOINTS)  # 14
NUM_HAND = len(HAND_JOINTS)  # 21
KEYPOINT_NAMES = BODY_JOINTS + [f"{h}_hand_{j}" for h in HANDS for j in HAND_JOINTS]
NUM_KEYPOINTS = len(KEYPOINT_NAMES)  # 56
INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

BODY_INDICES = list(range(NUM_BODY))
HAND_INDICES = {
    h: list(range(NUM_BODY + k * NUM_HAND, NUM_BODY + (k + 1) * NUM_HAND)) for k, h in enumerate(HANDS)
}
# Fingertips in finger order (thumb .. pinky) for each hand; finger number f (1..5) is FINGERTIPS[h][f - 1].
FINGERTIPS = {h: [INDEX[f"{h}_hand_{f}_tip"] for f in FINGERS] for h in HANDS}

_BODY_BONES = [
    ("neck", "nose"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"),
]  # fmt: skip
# Hand bones in local (0..20) indices: the finger chains, and the palm's knuckle line (as MediaPipe).
_HAND_BONES = [(0, 1), (1, 2), (2, 3), (3, 4)]
for _f in range(1, 5):
    _HAND_BONES += [
        (0, 4 * _f + 1),
        (4 * _f + 1, 4 * _f + 2),
        (4 * _f + 2, 4 * _f + 3),
        (4 * _f + 3, 4 * _f + 4),
    ]
_HAND_BONES += [(5, 9), (9, 13), (13, 17)]

BONES: list[tuple[int, int]] = [(INDEX[a], INDEX[b]) for a, b in _BODY_BONES] + [
    (HAND_INDICES[h][a], HAND_INDICES[h][b]) for h in HANDS for a, b in _HAND_BONES
]
"""Drawn bones and limb heatmaps: 14 body bones + 2 x (20 finger bones + 3 knuckle-line bones) = 60."""
BODY_BONES = BONES[: len(_BODY_BONES)]
HAND_BONES = {h: [(HAND_INDICES[h][a], HAND_INDICES[h][b]) for a, b in _HAND_BONES] for h in HANDS}

# The body wrist and the hand's wrist are the same joint seen by two detectors: joined in the graph only.
WRIST_LINKS = [(INDEX[f"{h}_wrist"], HAND_INDICES[h][0]) for h in HANDS]
GRAPH_EDGES: list[tuple[int, int]] = BONES + WRIST_LINKS
"""Undirected edges of the skeleton graph (for the STU structure module): bones + wrist links."""


def adjacency_matrix(self_loops: bool = True, normalize: bool = True) -> np.ndarray:
    """(K, K) adjacency of `GRAPH_EDGES`, optionally with self-loops and symmetric normalisation.

    >>> adjacency_matrix().shape
    (56, 56)
    """
    a = np.zeros((NUM_KEYPOINTS, NUM_KEYPOINTS), dtype=np.float32)
    for i, j in GRAPH_EDGES:
        a[i, j] = a[j, i] = 1.0
    if self_loops:
        a += np.eye(NUM_KEYPOINTS, dtype=np.float32)
    if normalize:
        d = 1.0 / np.sqrt(a.sum(1))
        a = a * d[:, None] * d[None, :]
    return a


def bone_lengths(keypoints: np.ndarray, bones: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Euclidean bone lengths: (..., K, D) -> (..., B)."""
    bones = BONES if bones is None else bones
    idx = np.asarray(bones)
    return np.linalg.norm(keypoints[..., idx[:, 0], :] - keypoints[..., idx[:, 1], :], axis=-1)


def normalize_keypoints(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates (x, y) -> [0, 1] of the frame."""
    return np.asarray(pixels, dtype=np.float32) / np.array([width, height], dtype=np.float32)


def denormalize_keypoints(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """[0, 1] of the frame -> pixel coordinates (x, y)."""
    return np.asarray(keypoints, dtype=np.float32) * np.array([width, height], dtype=np.float32)


# Drawing colours: body in warm yellow, left hand in cyan shades, right hand in magenta shades.
_BODY_COLOR = (255, 210, 40)
_HAND_COLORS = {
    "left": [(0, 255, 255), (0, 200, 255), (0, 150, 255), (60, 110, 255), (120, 80, 255)],
    "right": [(255, 0, 200), (255, 60, 140), (255, 110, 90), (255, 150, 40), (255, 200, 0)],
}


def _bone_color(i: int, j: int) -> tuple[int, int, int]:
    for h in HANDS:
        base = HAND_INDICES[h][0]
        if base <= i < base + NUM_HAND and base <= j < base + NUM_HAND:
            finger = max(i, j) - base - 1
            return (
                _HAND_COLORS[h][min(finger // 4, 4)]
                if (i != base + 5 or j != base + 9)
                else _HAND_COLORS[h][2]
            )
    return _BODY_COLOR


def draw_skeleton(
    frame: np.ndarray,
    keypoints: np.ndarray,
    visibility: np.ndarray | None = None,
    threshold: float = 0.3,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw the skeleton over one frame, antialiased.

    Args:
        frame: (H, W, 3) uint8.
        keypoints: (K, 2) normalised to [0, 1].
        visibility: (K,) in [0, 1]; points below `threshold` (and their bones) are not drawn.
        scale: line width multiplier.

    Returns:
        A new (H, W, 3) uint8 frame.
    """
    h, w = frame.shape[:2]
    ss = 2  # supersampling factor for antialiasing
    vis = np.ones(len(keypoints)) if visibility is None else np.asarray(visibility)
    pts = np.asarray(keypoints, dtype=np.float64) * np.array([w, h]) * ss
    overlay = Image.new("RGBA", (w * ss, h * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    lw = max(1, round(scale * ss * max(w, h) / 256))
    for i, j in BONES:
        if vis[i] >= threshold and vis[j] >= threshold:
            draw.line([tuple(pts[i]), tuple(pts[j])], fill=_bone_color(i, j) + (255,), width=lw)
    r = lw * 0.9
    for k in range(len(pts)):
        if vis[k] >= threshold:
            x, y = pts[k]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255, 255))
    overlay = overlay.resize((w, h), Image.Resampling.BOX)
    out = Image.fromarray(np.ascontiguousarray(frame[..., :3])).convert("RGBA")
    return np.asarray(Image.alpha_composite(out, overlay).convert("RGB"))


def draw_skeleton_video(
    frames: np.ndarray, keypoints: np.ndarray, visibility: np.ndarray | None = None, **kwargs
) -> np.ndarray:
    """`draw_skeleton` over a clip: (T, H, W, 3), (T, K, 2), (T, K) -> (T, H, W, 3)."""
    return np.stack(
        [
            draw_skeleton(f, k, None if visibility is None else visibility[t], **kwargs)
            for t, (f, k) in enumerate(zip(frames, keypoints))
        ]
    )


# Lit keys: white keys in light green, black keys a deeper green (so a lit black key stays visible
# between two lit white ones).
_KEY_COLORS = {False: (90, 255, 140), True: (20, 190, 80)}
_BLACK_PITCH_CLASSES = {1, 3, 6, 8, 10}


def draw_keys(
    frame: np.ndarray,
    quads: np.ndarray,
    pressed: np.ndarray,
    lowest_pitch: int = 21,
    alpha: float = 0.6,
) -> np.ndarray:
    """Tint the keys that sound: fill each pressed key's top with a translucent colour, antialiased.

    Args:
        frame: (H, W, 3) uint8.
        quads: (N, 4, 2) key-top quads normalised to [0, 1] of the frame (an `AppearanceReference`'s
            `keyboard_quads`: N = 88, key i is MIDI pitch `lowest_pitch + i`).
        pressed: (N,) bool, the keys that sound in this frame.
        alpha: opacity of the tint.

    Returns:
        A new (H, W, 3) uint8 frame; the same pixels as `frame` wherever no pressed key lies.
    """
    keys = np.flatnonzero(np.asarray(pressed))
    if len(keys) == 0:
        return np.array(frame[..., :3])
    h, w = frame.shape[:2]
    ss = 2  # supersampling factor for antialiasing
    pts = np.asarray(quads, dtype=np.float64) * np.array([w, h]) * ss
    overlay = Image.new("RGBA", (w * ss, h * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    a = int(round(255 * alpha))
    black = np.array([(lowest_pitch + k) % 12 in _BLACK_PITCH_CLASSES for k in keys])
    for k in list(keys[~black]) + list(keys[black]):  # black keys lie on top of white ones
        is_black = (lowest_pitch + k) % 12 in _BLACK_PITCH_CLASSES
        draw.polygon([tuple(p) for p in pts[k]], fill=_KEY_COLORS[is_black] + (a,))
    overlay = overlay.resize((w, h), Image.Resampling.BOX)
    out = Image.fromarray(np.ascontiguousarray(frame[..., :3])).convert("RGBA")
    return np.asarray(Image.alpha_composite(out, overlay).convert("RGB"))
