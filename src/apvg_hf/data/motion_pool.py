"""A motion pool: many virtual-pianist performances, motion and notes only (no audio, no video).

The rendered datasets (`virtual_pianist.generate_clips`) cost audio, video and disk for every second;
a note-aware KHP's motion decoder needs none of that: it plays a piano roll and is scored on keypoints.
Planning a performance is the only cost (~0.1-0.3 s per second of music on one core), so a pool can
hold hours of motion from every training-split piece of the corpus, transposed over the keyboard, in
tempo, camera and appearance varied: far more than a rendered dataset's hour, and the same generator
(`pianist.plan_performance`, `synthesize_motion`, the same cameras and performers).

Each performance is one `.npz` file: keypoints (T, 56, 2) and visibility (T, 56) as in a dataset, the
performed notes (N, 4: pitch, onset, offset, velocity), the keyboard's key quads (88, 4, 2), a few
reference frames (R, 3, s, s) at the KHP's coarse size with their frame indices (R,) -- the reference
a KHP is given -- and its `MotionSpec` (JSON). Deterministic for (seed, piece, variant); a build that stops resumes where it was.

>>> spec = MotionSpec("bach/bwv846", variant=0, max_seconds=3.0)
>>> perf = perform_motion(spec)
>>> perf["keypoints"].shape[1:], perf["reference_frames"].shape[1:]
((56, 2), (3, 32, 32))
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .clips import downsample_frames
from .music import augment_notes, get_piece, load_piece_notes, sample_augmentation
from .render import APPEARANCES, PianistRenderer, compute_visibility, pressed_keys
from .scene import keyboard_quads
from .virtual_pianist import stage_performance

POOL_VERSION = 2  # 2: each file holds its spec


@dataclass
class MotionSpec:
    """One pooled performance: a piece, a variant number (its excerpt, tempo, transposition, camera and
    performer), a seed."""

    piece_id: str
    variant: int = 0
    seed: int = 0
    max_seconds: float = 40.0  # an excerpt of at most this much of the score (before the tempo change)
    transpose: int = 12  # up to this many semitones either way (notes fold back into the playing range)
    fps: float = 30.0
    size: int = 256  # the frame the keypoints are normalised to (square, as the datasets)
    coarse_size: int = 32  # reference frames' size (the KHP's coarse frames)
    references: int = 8  # reference frames kept per performance

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(self.piece_id.encode()), self.variant, 11])

    def to_json(self) -> str:
        """The spec as stored in its performance's file (what a resumed build compares)."""
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def name(self) -> str:
        return f"{self.piece_id.replace('/', '__')}-v{self.variant}"


def perform_motion(spec: MotionSpec) -> dict[str, np.ndarray]:
    """Plan one performance of `spec` and return its arrays (see the module docstring)."""
    rng = spec.rng()
    notes = load_piece_notes(spec.piece_id)
    if not notes:
        raise ValueError(f"{spec.piece_id} has no notes")
    end = max(n.onset for n in notes)
    t0 = float(rng.uniform(0.0, max(end - spec.max_seconds, 0.0)))
    excerpt = [
        n.replace(onset=n.onset - t0, offset=n.offset - t0)
        for n in notes
        if t0 <= n.onset < t0 + spec.max_seconds
    ]
    aug = sample_augmentation(rng) | {"transpose": int(rng.integers(-spec.transpose, spec.transpose + 1))}
    staged = stage_performance(augment_notes(excerpt, rng=rng, **aug), rng, spec.fps)
    joints = staged.joints  # (T, 56, 3)
    uv, _ = staged.camera.project(joints)  # (T, 56, 2) in [0, 1] of the frame
    T = len(joints)
    at = np.sort(rng.choice(T, min(spec.references, T), replace=False))  # (R,)
    renderer = PianistRenderer(APPEARANCES[staged.appearance_id], staged.camera, spec.size, spec.size)
    pressed = pressed_keys(staged.plan.notes, T, spec.fps)
    frames = np.stack([renderer.render_frame(joints[t], pressed[t]) for t in at.tolist()])
    return {
        "keypoints": uv.astype(np.float32),
        "visibility": compute_visibility(joints, staged.camera, uv).astype(np.float32),
        "notes": np.array(
            [[n.pitch, n.onset, n.offset, n.velocity] for n in staged.plan.notes], np.float32
        ).reshape(-1, 4),
        "keyboard_quads": keyboard_quads(staged.camera).astype(np.float32),
        "reference_index": at.astype(np.int64),
        "reference_frames": downsample_frames(frames, spec.coarse_size),  # (R, 3, s, s) uint8
        "spec": np.array(spec.to_json()),
    }


def pool_specs(
    pieces: dict[str, list[str]], variants: dict[str, int], seed: int = 0, **spec: float
) -> list[MotionSpec]:
    """Specs for `variants[kind]` performances of each piece of each kind (`pieces` as
    `virtual_pianist.training_pieces` gives them); `spec`: further `MotionSpec` fields."""
    return [
        MotionSpec(piece, variant=v, seed=seed, **spec)
        for kind, ids in pieces.items()
        for piece in ids
        for v in range(variants.get(kind, 1))
    ]


def _stored_spec(path: Path) -> str:
    with np.load(path) as z:
        return str(z["spec"]) if "spec" in z else ""


def _build_one(args: tuple[MotionSpec, str]) -> str:
    spec, out = args
    target = Path(out) / f"{spec.name}.npz"
    if target.exists():  # resuming: it must be this very performance, not one of another build
        if _stored_spec(target) != spec.to_json():
            raise ValueError(
                f"{target} was built with other settings (seed, excerpt, transposition, size): build "
                "into a new folder, or delete that one"
            )
    else:
        arrays = perform_motion(spec)
        tmp = target.with_suffix(".partial.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, target)  # whole files only: a stopped build resumes at the next missing one
    return spec.name


def build_pool(
    out_dir: str | os.PathLike,
    specs: Iterable[MotionSpec],
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write one `.npz` per spec under `out_dir` (those already there are kept) and `index.json`
    (the specs, each with its piece's kind). Returns `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = list(specs)
    if not specs:
        raise ValueError("no performances to build: no pieces are left, or every variant count is 0")
    jobs = [(s, str(out)) for s in specs]
    bar = tqdm(total=len(jobs), desc="planning performances", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_build_one, jobs, chunksize=1):
                bar.update()
    else:
        for job in jobs:
            _build_one(job)
            bar.update()
    bar.close()
    index = {
        "version": POOL_VERSION,
        "performances": [
            asdict(s) | {"kind": get_piece(s.piece_id).kind, "file": f"{s.name}.npz"} for s in specs
        ],
    }
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return out


@dataclass
class PooledPerformance:
    piece_id: str
    kind: str
    fps: float
    keypoints: np.ndarray  # (T, 56, 2)
    visibility: np.ndarray  # (T, 56)
    notes: list[dict]  # pitch, onset, offset, velocity (seconds from the performance's start)
    keyboard_quads: np.ndarray  # (88, 4, 2)
    reference_index: np.ndarray  # (R,)
    reference_frames: np.ndarray  # (R, 3, s, s) uint8

    @property
    def num_frames(self) -> int:
        return len(self.keypoints)


class MotionPool:
    """A pool written by `build_pool`, in memory. `sample(rng)` draws a performance: a keyboard piece
    with probability `keyboard_share` (when both kinds are there), then one of that kind in proportion
    to its length.

    >>> # pool = MotionPool("data/motion_pool"); perf = pool.sample(np.random.default_rng(0))
    """

    def __init__(self, pool_dir: str | os.PathLike, keyboard_share: float = 0.5):
        pool_dir = Path(pool_dir)
        index = pool_dir / "index.json"
        if not index.exists():
            raise FileNotFoundError(f"{index} is missing: build the pool with scripts/build_motion_pool.py")
        info = json.loads(index.read_text())
        if info.get("version") != POOL_VERSION:
            raise ValueError(f"{pool_dir} is a version {info.get('version')} pool; rebuild it")
        if not 0.0 <= keyboard_share <= 1.0:
            raise ValueError(f"keyboard_share (pool_keyboard_share) must be in [0, 1], got {keyboard_share}")
        self.performances: list[PooledPerformance] = []
        for p in info["performances"]:
            with np.load(pool_dir / p["file"]) as z:
                spec = json.loads(str(z["spec"]))
                self.performances.append(
                    PooledPerformance(
                        p["piece_id"],
                        p["kind"],
                        float(spec["fps"]),
                        z["keypoints"],
                        z["visibility"],
                        [
                            {"pitch": int(a), "onset": float(b), "offset": float(c), "velocity": int(d)}
                            for a, b, c, d in z["notes"]
                        ],
                        z["keyboard_quads"],
                        z["reference_index"],
                        z["reference_frames"],
                    )
                )
        found = {(p.fps, p.reference_frames.shape[-1]) for p in self.performances}
        if len(found) > 1:
            raise ValueError(f"{pool_dir} mixes frame rates or reference sizes {sorted(found)}: rebuild it")
        self.fps, self.coarse_size = found.pop()
        kinds = sorted({p.kind for p in self.performances})
        share = {"keyboard": keyboard_share, "chorale": 1.0 - keyboard_share} if len(kinds) == 2 else {}
        self.kinds = kinds
        self.kind_p = np.array([share.get(k, 1.0) for k in kinds])
        self.kind_p = self.kind_p / self.kind_p.sum()
        self.members = [[i for i, p in enumerate(self.performances) if p.kind == k] for k in kinds]
        self.member_p = []
        for m in self.members:
            lengths = np.array([self.performances[i].num_frames for i in m], np.float64)
            self.member_p.append(lengths / lengths.sum())

    def __len__(self) -> int:
        return len(self.performances)

    @property
    def seconds(self) -> float:
        return sum(p.num_frames / p.fps for p in self.performances)

    def sample(self, rng: np.random.Generator) -> PooledPerformance:
        k = int(rng.choice(len(self.kinds), p=self.kind_p))
        return self.performances[self.members[k][int(rng.choice(len(self.members[k]), p=self.member_p[k]))]]
