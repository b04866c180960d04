"""Clips as training arrays: a virtual-pianist split -> per-clip features, keypoints, visibility,
coarse frames and what the evaluation needs (notes, key quads), cached on disk; and the clips'
frames at a model resolution (`load_frames`, for the STU).

Decoding every video and featurising every waveform takes minutes for an hour of data, so the
arrays are stored once per (dataset, split, feature extractor, coarse size) in the cache directory
(`$APVG_HF_CACHE`, default `~/.cache/apvg_hf`) and memory-mapped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .virtual_pianist import decode_audio, decode_video

ARRAYS = ("features", "keypoints", "visibility", "coarse")


@dataclass
class Clip:
    """One clip's aligned arrays (T frames) and its metadata."""

    features: np.ndarray  # (T, F) float32 log-mel
    keypoints: np.ndarray  # (T, K, 2) float32 in [0, 1]
    visibility: np.ndarray  # (T, K) float32 0/1
    coarse: np.ndarray | None  # (T, 3, s, s) uint8
    meta: dict  # piece_id, fps, notes, keyboard_quads, keyboard_pitches, sampling_rate, ...
    audio: np.ndarray | None = None  # (N,) int16 waveform at meta["sampling_rate"] (for augmentation)

    def piano_roll(self) -> np.ndarray:
        """The clip's notes as a (T, 88, 3) piano roll (`apvg_hf.piano_roll.notes_to_roll`)."""
        from ..piano_roll import notes_to_roll

        return notes_to_roll(self.meta["notes"], self.num_frames, self.meta["fps"])

    def waveform(self) -> np.ndarray:
        """The clip's audio as (N,) float32 in [-1, 1]."""
        return np.asarray(self.audio, dtype=np.float32) / 32768.0

    @property
    def num_frames(self) -> int:
        return len(self.keypoints)


def cache_dir() -> Path:
    return Path(os.environ.get("APVG_HF_CACHE", Path.home() / ".cache" / "apvg_hf"))


def downsample_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) uint8 by area averaging."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.adaptive_avg_pool2d(x, size) if x.shape[-1] % size == 0 else F.interpolate(x, size, mode="area")
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def _check_split(dataset_dir, split: str) -> Path:
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "dataset_dict.json").exists():
        raise FileNotFoundError(
            f"{dataset_dir} is not a dataset folder (no dataset_dict.json); build one with scripts/build_dataset.py"
        )
    if not (dataset_dir / split).exists():
        raise ValueError(f"{dataset_dir} has no split {split!r}")
    return dataset_dir


def _partial(target: Path) -> Path:
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished cache entry into place (atomically); keep another process's if it won."""
    if target.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(target)


def _fingerprint(dataset_dir: Path, split: str) -> str | None:
    return json.loads((dataset_dir / split / "state.json").read_text()).get("_fingerprint")


def _key(dataset_dir: Path, split: str, **settings) -> str:
    """Cache key: the dataset (path and fingerprint of the split) and what the arrays depend on."""
    info = {"dataset": str(dataset_dir.resolve()), "fingerprint": _fingerprint(dataset_dir, split)} | settings
    return hashlib.sha1(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def load_clips(
    dataset_dir: str | os.PathLike,
    split: str,
    feature_extractor,
    coarse_size: int = 32,
    limit: int | None = None,
    progress: bool = True,
) -> list[Clip]:
    """Load (and cache) a split of a dataset written by `scripts/build_dataset.py`.

    >>> # clips = load_clips("data/virtual_pianist_small", "train", APVGFeatureExtractor())
    """
    import datasets

    dataset_dir = _check_split(dataset_dir, split)
    key = _key(
        dataset_dir, split, extractor=feature_extractor.to_json_string(), coarse=coarse_size, version=2
    )
    target = cache_dir() / "clips" / f"{split}-{key}"
    if not (target / "index.json").exists():
        ds = datasets.load_from_disk(str(dataset_dir / split))
        tmp = _partial(target)
        metas, parts, audios = [], {k: [] for k in ARRAYS}, []
        for row in tqdm(ds, desc=f"preparing {split} clips", disable=not progress):
            audio, sr = decode_audio(row)
            T = int(row["num_frames"])
            feats = feature_extractor(audio, sampling_rate=sr, fps=row["fps"])["input_features"][0]
            if len(feats) != T:
                raise ValueError(f"{row['piece_id']}: {len(feats)} feature rows for {T} frames")
            parts["features"].append(feats.astype(np.float32))
            audios.append(np.round(np.clip(audio, -1, 1 - 2**-15) * 32768).astype(np.int16))
            parts["keypoints"].append(np.asarray(row["keypoints"], dtype=np.float32))
            parts["visibility"].append(np.asarray(row["visibility"], dtype=np.float32))
            parts["coarse"].append(
                downsample_frames(decode_video(row), coarse_size)
                if coarse_size
                else np.zeros((T, 0), np.uint8)
            )
            metas.append(
                {
                    k: row[k]
                    for k in (
                        "piece_id",
                        "clip_index",
                        "start_time",
                        "fps",
                        "num_frames",
                        "width",
                        "height",
                        "notes",
                        "keyboard_pitches",
                        "appearance",
                        "camera",
                    )
                }
                | {  # None for real videos preprocessed without keyboard corners
                    "keyboard_quads": None
                    if row["keyboard_quads"] is None
                    else np.asarray(row["keyboard_quads"], dtype=np.float32).tolist()
                }
                | {"sampling_rate": int(sr), "soundfont": row.get("soundfont") or "timgm6mb"}
            )
        for k, v in parts.items():
            np.save(tmp / f"{k}.npy", np.concatenate(v))
        np.save(tmp / "audio.npy", np.concatenate(audios))
        (tmp / "index.json").write_text(
            json.dumps(
                {
                    "lengths": [m["num_frames"] for m in metas],
                    "audio_lengths": [len(a) for a in audios],
                    "meta": metas,
                }
            )
        )
        _publish(tmp, target)
    index = json.loads((target / "index.json").read_text())
    arrays = {k: np.load(target / f"{k}.npy", mmap_mode="r") for k in ARRAYS}
    bounds = np.r_[0, np.cumsum(index["lengths"])]
    audio = np.load(target / "audio.npy", mmap_mode="r")
    audio_bounds = np.r_[0, np.cumsum(index["audio_lengths"])]
    clips = []
    for i, meta in enumerate(index["meta"][:limit]):
        a, b = bounds[i], bounds[i + 1]
        clips.append(
            Clip(
                features=np.asarray(arrays["features"][a:b]),
                keypoints=np.asarray(arrays["keypoints"][a:b]),
                visibility=np.asarray(arrays["visibility"][a:b]),
                coarse=np.asarray(arrays["coarse"][a:b]) if coarse_size else None,
                meta=meta,
                audio=np.asarray(audio[audio_bounds[i] : audio_bounds[i + 1]]),
            )
        )
    return clips


def load_frames(
    dataset_dir: str | os.PathLike,
    split: str,
    size: int,
    limit: int | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """A split's frames at `size` x `size`: one (T, 3, size, size) uint8 array per clip, in the
    order of `load_clips`, cached on disk and memory-mapped (an hour at 128 x 128 is 5.3 GB).

    >>> # frames = load_frames("data/virtual_pianist_small", "train", 128)
    """
    import datasets

    dataset_dir = _check_split(dataset_dir, split)
    key = _key(dataset_dir, split, size=size)
    target = cache_dir() / "frames" / f"{split}-{size}-{key}"
    if not (target / "index.json").exists():
        ds = datasets.load_from_disk(str(dataset_dir / split))
        lengths = [int(n) for n in ds["num_frames"]]
        tmp = _partial(target)
        out = np.lib.format.open_memmap(tmp / "frames.npy", "w+", np.uint8, (sum(lengths), 3, size, size))
        at = 0
        for row, n in zip(tqdm(ds, desc=f"decoding {split} frames at {size}", disable=not progress), lengths):
            out[at : at + n] = downsample_frames(decode_video(row), size)
            at += n
        out.flush()
        del out
        (tmp / "index.json").write_text(json.dumps({"lengths": lengths}))
        _publish(tmp, target)
    lengths = json.loads((target / "index.json").read_text())["lengths"]
    frames = np.load(target / "frames.npy", mmap_mode="r")
    bounds = np.r_[0, np.cumsum(lengths)]
    return [frames[bounds[i] : bounds[i + 1]] for i in range(len(lengths))][:limit]
