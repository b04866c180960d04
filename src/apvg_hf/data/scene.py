"""World geometry of the virtual pianist's scene: the keyboard, and a pinhole camera.

World frame, metres: X along the keyboard (pitch rises with X, the performer's right), Y from the
performer towards the piano (white key fronts at Y=0, keys reach Y=0.15), Z up (white key tops at
Z=0). The performer sits at Y<0 facing +Y; the camera stands beyond the piano, facing the performer,
so the performer's right hand (high notes) appears on the left of the image.

>>> round(key_x(60) - key_x(59), 4)  # C4 and B3 are neighbouring white keys
0.0235
>>> cam = Camera()
>>> uv, depth = cam.project(np.array([0.0, 0.0, 0.0]))
>>> bool(0 < uv[0] < 1 and 0 < uv[1] < 1 and depth > 0)
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..piano_roll import is_black_key
from .notes import PIANO_HIGH, PIANO_LOW, PLAY_HIGH, PLAY_LOW

WHITE_WIDTH = 0.0235
WHITE_LENGTH = 0.150
BLACK_WIDTH = 0.0137
BLACK_LENGTH = 0.095
BLACK_HEIGHT = 0.012  # black key tops above white key tops
KEY_DEPTH = 0.010  # how far a key goes down when pressed


def is_black(pitch: int) -> bool:
    return is_black_key(pitch)


def white_index(pitch: int) -> float:
    """Position in white-key units: white keys get integers, black keys sit halfway between."""
    octave, pc = divmod(pitch, 12)
    whites_before = [0, 0.5, 1, 1.5, 2, 3, 3.5, 4, 4.5, 5, 5.5, 6][pc]
    return octave * 7 + whites_before


_CENTER = (white_index(PLAY_LOW) + white_index(PLAY_HIGH)) / 2


def key_x(pitch: int) -> float:
    """X of the key's centre line (metres); 0 is the middle of the playable range C2..C7."""
    return (white_index(pitch) - _CENTER) * WHITE_WIDTH


def key_press_point(pitch: int) -> np.ndarray:
    """Where a fingertip presses the key: (3,) world point on its top surface, at rest height."""
    if is_black(pitch):
        return np.array([key_x(pitch), WHITE_LENGTH - BLACK_LENGTH * 0.35, BLACK_HEIGHT])
    return np.array([key_x(pitch), 0.035, 0.0])


def key_top_quad(pitch: int, pressed: bool = False) -> np.ndarray:
    """(4, 3) corners of the key's top surface (front-left, front-right, back-right, back-left)."""
    x = key_x(pitch)
    if is_black(pitch):
        hw, y0, z = BLACK_WIDTH / 2, WHITE_LENGTH - BLACK_LENGTH, BLACK_HEIGHT
    else:
        hw, y0, z = WHITE_WIDTH / 2 - 0.0004, 0.0, 0.0
    # A pressed key pivots at its back end: its front goes down by KEY_DEPTH.
    zf = z - (KEY_DEPTH if pressed else 0.0)
    return np.array(
        [[x - hw, y0, zf], [x + hw, y0, zf], [x + hw, WHITE_LENGTH, z], [x - hw, WHITE_LENGTH, z]]
    )


ALL_PITCHES = list(range(PIANO_LOW, PIANO_HIGH + 1))


def keyboard_outline() -> np.ndarray:
    """(4, 3) corners of the whole keyboard's top (front-left, front-right, back-right, back-left)."""
    lo, hi = key_top_quad(ALL_PITCHES[0]), key_top_quad(ALL_PITCHES[-1])
    return np.array([lo[0], hi[1], hi[2], lo[3]])


@dataclass
class Camera:
    """A pinhole camera looking at the performer from beyond the piano.

    `focal` is in units of the image width; `aspect` is width / height.
    """

    position: tuple[float, float, float] = (0.0, 0.95, 0.95)
    target: tuple[float, float, float] = (0.0, -0.20, 0.19)
    focal: float = 1.32
    aspect: float = 1.0

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = np.asarray(self.target, float) - np.asarray(self.position, float)
        f /= np.linalg.norm(f)
        r = np.cross(f, [0.0, 0.0, 1.0])
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        return r, u, f

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> normalised image coordinates (..., 2) and depth (...)."""
        r, u, f = self.basis()
        d = np.asarray(points, float) - np.asarray(self.position, float)
        x, y, z = d @ r, d @ u, d @ f
        z_safe = np.maximum(z, 1e-6)
        px = 0.5 + self.focal * x / z_safe
        py = 0.5 - self.focal * self.aspect * y / z_safe
        return np.stack([px, py], axis=-1), z

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def sample_camera(rng: np.random.Generator, aspect: float = 1.0) -> Camera:
    """Small camera variation around the default placement: height, distance, side, zoom, aim."""
    d = Camera()
    return Camera(
        position=(
            float(rng.uniform(-0.08, 0.08)),
            float(d.position[1] * rng.uniform(0.94, 1.06)),
            float(d.position[2] + rng.uniform(-0.06, 0.06)),
        ),
        target=(
            float(rng.uniform(-0.03, 0.03)),
            float(d.target[1] + rng.uniform(-0.03, 0.03)),
            float(d.target[2] + rng.uniform(-0.03, 0.03)),
        ),
        focal=float(d.focal * rng.uniform(0.95, 1.05)),
        aspect=aspect,
    )


def keyboard_quads(camera: Camera, pitches: list[int] | None = None) -> np.ndarray:
    """(N, 4, 2) normalised image quads of the keys' top surfaces (stored with each sample)."""
    pitches = ALL_PITCHES if pitches is None else pitches
    quads = np.stack([key_top_quad(p) for p in pitches])
    uv, _ = camera.project(quads)
    return uv.astype(np.float32)


def _points_in_quads(points: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """(P, 2) points, (N, 4, 2) convex quads -> (P, N) bool: is the point inside the quad."""
    a = quads[None, :, :, :]  # (1, N, 4, 2)
    b = np.roll(quads, -1, axis=1)[None]
    p = points[:, None, None, :]  # (P, 1, 1, 2)
    cross = (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        p[..., 0] - a[..., 0]
    )
    return np.all(cross >= 0, axis=-1) | np.all(cross <= 0, axis=-1)


def key_under_points(points: np.ndarray, quads: np.ndarray, pitches: np.ndarray | list[int]) -> np.ndarray:
    """Which key lies under each image point: (P, 2) normalised points -> (P,) pitch, or -1 for none.

    Black keys lie on top of white ones, so they win where both contain the point.

    >>> cam = Camera()
    >>> quads, pitches = keyboard_quads(cam), np.array(ALL_PITCHES)
    >>> uv, _ = cam.project(np.stack([key_press_point(60), key_press_point(61)]))
    >>> key_under_points(uv, quads, pitches).tolist()
    [60, 61]
    """
    pitches = np.asarray(pitches)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = _points_in_quads(points, np.asarray(quads, dtype=np.float64))
    black = np.array([is_black(int(p)) for p in pitches])
    out = np.full(len(points), -1, dtype=np.int64)
    for mask in (~black, black):  # black last: overrides white
        hit = inside & mask[None, :]
        has = hit.any(1)
        out[has] = pitches[hit[has].argmax(1)]
    return out
