"""The virtual pianist dataset: music -> performed notes -> audio + motion -> frames, in clips.

One *performance* is a piece with one augmentation, one appearance and one camera; it is cut into
clips of at most `clip_seconds`. Everything is deterministic for (seed, piece, variant), whatever
the number of workers. Splits are by piece: a piece and all its variants live in one split.

>>> spec = PerformanceSpec("bach/bwv846", variant=0, seed=0, max_seconds=4.0, width=64, height=64)
>>> clips = list(generate_clips(spec, clip_seconds=2.0))
>>> len(clips), clips[0]["keypoints"].shape
(2, (60, 56, 2))
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf

from .. import skeleton as sk
from ..video_io import encode_video
from .audio import render_notes
from .music import augment_notes, get_piece, list_pieces, load_piece_notes, sample_augmentation
from .notes import Note
from .pianist import PerformancePlan, PianistConfig, plan_performance, synthesize_motion
from .render import APPEARANCES, PianistRenderer, compute_visibility
from .scene import ALL_PITCHES, Camera, keyboard_quads, sample_camera

SPLITS = ("train", "validation", "test")


@dataclass
class PerformanceSpec:
    """What to perform: a piece, a variant number (selects augmentation/appearance/camera), a seed."""

    piece_id: str
    variant: int = 0
    seed: int = 0
    max_seconds: float | None = None
    fps: float = 30.0
    width: int = 256
    height: int = 256
    sampling_rate: int = 16000
    augment: bool = True
    soundfont: str | None = None  # a .sf2 path or name; "a,b,c": one of them per performance (rng)
    video_crf: int = 14
    video_pix_fmt: str = "yuv444p"  # keeps thin coloured lines (4:2:0 blurs them); crf 14: ~41 dB
    video_preset: str = "veryfast"  # x264: same size as "medium" here, half the time

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(self.piece_id.encode()), self.variant])


@dataclass
class Performance:
    spec: PerformanceSpec
    notes: list[Note]  # performed (hand, finger, offsets as played)
    n_dropped: int
    audio: np.ndarray  # (N,) float32 mono
    joints: np.ndarray  # (T, 56, 3) world
    augmentation: dict
    appearance_id: int
    camera: Camera
    duration: float
    soundfont: str  # the SoundFont the audio was rendered with (a name or a file name)


def perform(spec: PerformanceSpec) -> Performance:
    """Plan and synthesise one whole performance (audio and 3D motion; frames are drawn per clip)."""
    rng = spec.rng()
    if spec.max_seconds is not None and spec.max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {spec.max_seconds}")
    notes = load_piece_notes(spec.piece_id, max_seconds=spec.max_seconds)
    if not notes:
        raise ValueError(f"{spec.piece_id} has no notes in its first {spec.max_seconds} s")
    aug = (
        sample_augmentation(rng)
        if spec.augment
        else {"tempo": 1.0, "transpose": 0, "timing_jitter_s": 0.0, "velocity_jitter": 0}
    )
    notes = augment_notes(notes, rng=rng, **aug)
    staged = stage_performance(notes, rng, spec.fps, aspect=spec.width / spec.height)
    soundfont = pick_soundfont(spec)
    audio = render_notes(
        staged.plan.notes,
        sampling_rate=spec.sampling_rate,
        soundfont=soundfont or None,
        duration=staged.duration,
    )
    return Performance(
        spec,
        staged.plan.notes,
        len(staged.plan.dropped),
        audio,
        staged.joints,
        aug,
        staged.appearance_id,
        staged.camera,
        staged.duration,
        soundfont,
    )


@dataclass
class StagedPerformance:
    """Who plays the notes, seen from where, and how they move (no audio, no frames)."""

    plan: PerformancePlan  # the notes as performed (hand, finger), and what was dropped
    appearance_id: int
    camera: Camera
    duration: float  # seconds: the last note's end and a second of release, in whole frames
    joints: np.ndarray  # (T, 56, 3) world


def stage_performance(notes: list[Note], rng: np.random.Generator, fps: float, aspect: float = 1.0):
    """A performer (from `rng`), a camera (from `rng`), the planned performance of `notes` and its motion
    (from `rng`): the generator's motion, shared by rendered datasets and motion pools."""
    appearance_id = int(rng.integers(len(APPEARANCES)))
    camera = sample_camera(rng, aspect=aspect)
    plan = plan_performance(notes, body=APPEARANCES[appearance_id].body, config=PianistConfig())
    last = max((n.offset for n in plan.notes), default=0.0)
    duration = np.ceil((last + 1.0) * fps) / fps  # a second of release; whole frames
    joints = synthesize_motion(plan, duration=duration, fps=fps, rng=rng).joints
    return StagedPerformance(plan, appearance_id, camera, float(duration), joints)


def pick_soundfont(spec: PerformanceSpec) -> str:
    """The SoundFont of a performance: `spec.soundfont`, or one of a comma-separated list chosen from
    (seed, piece, variant) alone, so adding SoundFonts changes nothing else of the performance."""
    if not spec.soundfont or "," not in spec.soundfont:
        return spec.soundfont or ""
    names = [n.strip() for n in spec.soundfont.split(",") if n.strip()]
    pick = np.random.default_rng([spec.seed, zlib.crc32(spec.piece_id.encode()), spec.variant, 7])
    return names[int(pick.integers(len(names)))]


def _flac_bytes(audio: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def generate_clips(
    spec: PerformanceSpec, clip_seconds: float = 20.0, min_clip_seconds: float = 2.0
) -> Iterator[dict]:
    """Perform `spec` and yield dataset rows, one per clip of at most `clip_seconds` (a last piece
    shorter than `min_clip_seconds` joins the clip before it).

    Times in a row are relative to its clip. A note sounding across a clip edge is kept with its
    true times: a negative onset (it began before the clip) or an offset past `duration` (it goes on).
    """
    clip_frames = int(round(clip_seconds * spec.fps))
    if clip_frames < 1:
        raise ValueError(f"clip_seconds={clip_seconds} is shorter than one frame at {spec.fps} fps")
    perf = perform(spec)
    fps, sr = spec.fps, spec.sampling_rate
    info = get_piece(spec.piece_id)
    renderer = PianistRenderer(APPEARANCES[perf.appearance_id], perf.camera, spec.width, spec.height)
    quads = keyboard_quads(perf.camera)
    uv, _ = perf.camera.project(perf.joints)
    vis = compute_visibility(perf.joints, perf.camera, uv)
    T = len(perf.joints)
    bounds = list(range(0, T, clip_frames)) + [T]
    if len(bounds) > 2 and T - bounds[-2] < min_clip_seconds * fps:
        del bounds[-2]  # a short tail joins the clip before it
    for ci, (f0, f1) in enumerate(zip(bounds[:-1], bounds[1:])):
        t0, t1 = f0 / fps, f1 / fps
        a0, a1 = int(round(t0 * sr)), int(round(t1 * sr))
        clip_notes = [
            n.replace(onset=n.onset - t0, offset=n.offset - t0)
            for n in perf.notes
            if n.offset > t0 and n.onset < t1
        ]
        frames = renderer.render_clip(perf.joints[f0:f1], clip_notes, fps)
        audio = perf.audio[a0:a1]
        yield {
            "piece_id": spec.piece_id,
            "title": info.title,
            "composer": info.composer,
            "licence": info.licence,
            "variant": spec.variant,
            "clip_index": ci,
            "start_time": float(t0),
            "duration": float(t1 - t0),
            "fps": float(fps),
            "num_frames": int(f1 - f0),
            "width": spec.width,
            "height": spec.height,
            "sampling_rate": sr,
            "audio": {"bytes": _flac_bytes(audio, sr), "path": None},
            "video": encode_video(
                frames, fps, crf=spec.video_crf, pix_fmt=spec.video_pix_fmt, preset=spec.video_preset
            ),
            "keypoints": uv[f0:f1].astype(np.float32),
            "visibility": vis[f0:f1],
            "notes": [
                {
                    "pitch": n.pitch,
                    "onset": n.onset,
                    "offset": n.offset,
                    "velocity": n.velocity,
                    "hand": n.hand,
                    "finger": n.finger,
                }
                for n in clip_notes
            ],
            "keyboard_pitches": ALL_PITCHES,
            "keyboard_quads": quads,
            "appearance": APPEARANCES[perf.appearance_id].name,
            "camera": perf.camera.to_dict(),
            "augmentation": {k: float(v) for k, v in perf.augmentation.items()},
            "dropped_notes": perf.n_dropped,
            "seed": spec.seed,
            "soundfont": perf.soundfont or "timgm6mb",
        }


def features(sampling_rate: int = 16000, audio_feature: bool = True) -> datasets.Features:
    """The dataset's schema, shared by the virtual pianist and real videos (`apvg_hf.data.real`).

    What the real world cannot give is None in a real video's rows: `notes`, `camera`, `augmentation`,
    `dropped_notes`, `seed`, `soundfont`, and `keyboard_pitches` / `keyboard_quads` when no keyboard
    corners were given. Readers treat None as "unknown", never as "empty".

    `audio_feature=False` gives the `Audio` column's plain storage struct:
    datasets >= 4 imports torchcodec to *encode* an `Audio` value, even bytes, and torchcodec has
    no CPU-torch build here, so rows are written as the struct and cast to `Audio` afterwards."""
    f32 = datasets.Value("float32")
    audio = (
        datasets.Audio(sampling_rate=sampling_rate, decode=False)
        if audio_feature
        else {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    )
    return datasets.Features(
        {
            "piece_id": datasets.Value("string"),
            "title": datasets.Value("string"),
            "composer": datasets.Value("string"),
            "licence": datasets.Value("string"),
            "variant": datasets.Value("int32"),
            "clip_index": datasets.Value("int32"),
            "start_time": f32,
            "duration": f32,
            "fps": f32,
            "num_frames": datasets.Value("int32"),
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "sampling_rate": datasets.Value("int32"),
            # FLAC bytes. decode=False: datasets >= 4 decodes through torchcodec, which has no CPU-torch
            # build here; decode with `decode_audio` (soundfile) instead.
            "audio": audio,
            "video": datasets.Value("binary"),  # H.264 mp4 bytes; decode with `decode_video`
            "keypoints": datasets.Array3D(shape=(None, sk.NUM_KEYPOINTS, 2), dtype="float32"),
            "visibility": datasets.Array2D(shape=(None, sk.NUM_KEYPOINTS), dtype="float32"),
            "notes": datasets.List(
                {
                    "pitch": datasets.Value("int32"),
                    "onset": f32,
                    "offset": f32,
                    "velocity": datasets.Value("int32"),
                    "hand": datasets.Value("string"),
                    "finger": datasets.Value("int32"),
                }
            ),
            "keyboard_pitches": datasets.List(datasets.Value("int32")),
            "keyboard_quads": datasets.Array3D(shape=(len(ALL_PITCHES), 4, 2), dtype="float32"),
            "appearance": datasets.Value("string"),
            "camera": {
                "position": datasets.List(f32),
                "target": datasets.List(f32),
                "focal": f32,
                "aspect": f32,
            },
            "augmentation": {"tempo": f32, "transpose": f32, "timing_jitter_s": f32, "velocity_jitter": f32},
            "dropped_notes": datasets.Value(
                "int32"
            ),  # score notes of the whole performance it could not play
            "seed": datasets.Value("int64"),
            "soundfont": datasets.Value("string"),  # what rendered the audio (a name in SOUNDFONTS or a file)
        }
    )


def decode_audio(row: dict) -> tuple[np.ndarray, int]:
    """A row's audio -> (N,) float32, sampling rate."""
    audio, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
    return audio, sr


def decode_video(row: dict) -> np.ndarray:
    """A row's frames -> (T, H, W, 3) uint8."""
    from ..video_io import read_video

    return read_video(row["video"])


def piece_group(piece_id: str) -> str:
    """Versions of one piece share a group: `bach/bwv18.5-lz` and `bach/bwv18.5-w` are `bach/bwv18.5`."""
    return re.sub(r"-[a-z]+$", "", piece_id)


DEMO_PIECE = "bach/bwv846"  # WTC I, Prelude in C major: the README's demo audio; never trained on


def piece_split(piece_id: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """The split of a piece, from a hash of its group alone: the same in every preset and dataset.

    >>> piece_split("bach/bwv846"), piece_split("bach/bwv18.5-lz") == piece_split("bach/bwv18.5-w")
    ('test', True)
    """
    if piece_group(piece_id) == piece_group(DEMO_PIECE):
        return "test"
    u = zlib.crc32(piece_group(piece_id).encode()) / 2**32
    return "test" if u < test_fraction else "validation" if u < test_fraction + val_fraction else "train"


def split_pieces(piece_ids: list[str]) -> dict[str, list[str]]:
    """Group pieces by `piece_split` (order kept)."""
    return {s: [p for p in piece_ids if piece_split(p) == s] for s in SPLITS}


def held_out_pieces(datasets: Iterable[str | os.PathLike]) -> set[str]:
    """The validation and test pieces of datasets written by `scripts/build_dataset.py`: what a stage
    that trains on the corpus itself (not on a dataset's clips) must never see."""
    out: set[str] = set()
    for d in datasets:
        info = Path(d) / "build_info.json"
        if not info.exists():
            raise FileNotFoundError(f"{info} is missing: {d} is not a dataset from scripts/build_dataset.py")
        pieces = json.loads(info.read_text())["pieces"]
        out |= set(pieces.get("validation", [])) | set(pieces.get("test", []))
    return out


def training_pieces(
    held_out: set[str] = frozenset(), exclude: Iterable[str] = (), only: Iterable[str] = ()
) -> dict[str, list[str]]:
    """{"keyboard": [...], "chorale": [...]}: the corpus pieces a stage may train on: those of the
    training split (`piece_split`, the same in every dataset), minus `held_out` and `exclude`, and only
    those in `only` when it is given (quick runs)."""
    wanted, exclude = set(only), set(exclude)
    out: dict[str, list[str]] = {"keyboard": [], "chorale": []}
    for p in list_pieces():
        heard = piece_split(p.piece_id) == "train" and p.piece_id not in held_out
        if heard and p.piece_id not in exclude and (not wanted or p.piece_id in wanted):
            out.setdefault(p.kind, []).append(p.piece_id)
    return out


def _generate_rows(specs: list[dict], clip_seconds: float) -> Iterator[dict]:
    for s in specs:
        yield from generate_clips(PerformanceSpec(**s), clip_seconds=clip_seconds)


def build_split(
    specs: list[PerformanceSpec], clip_seconds: float, num_proc: int | None, cache_dir: str
) -> datasets.Dataset:
    """Generate one split with `datasets.Dataset.from_generator` (parallel over performances)."""
    kw = {"specs": [asdict(s) for s in specs], "clip_seconds": clip_seconds}
    sr = specs[0].sampling_rate if specs else 16000
    ds = datasets.Dataset.from_generator(
        _generate_rows,
        gen_kwargs=kw,
        features=features(sr, audio_feature=False),
        num_proc=num_proc if num_proc and num_proc > 1 and len(specs) > 1 else None,
        cache_dir=cache_dir,
    )
    return ds.cast_column("audio", datasets.Audio(sampling_rate=sr, decode=False))
