#!/usr/bin/env python
"""Write an mp4 of a virtual-pianist sample: its audio, its frames and the skeleton overlay side by side.

From a built dataset:
    python scripts/preview_sample.py --dataset data/virtual_pianist_small --split test --index 0 -o preview.mp4
Or synthesised on the spot (no dataset needed; this is what `make demo` runs for now):
    python scripts/preview_sample.py --synthesize bach/bwv846 --seconds 20 -o outputs/demo.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from apvg_hf.skeleton import draw_skeleton_video
from apvg_hf.video_io import probe_video, write_video


def from_dataset(path: str, split: str, index: int) -> dict:
    import datasets

    from apvg_hf.data.virtual_pianist import decode_audio, decode_video

    if not Path(path).is_dir():
        sys.exit(f"error: no dataset folder at {path}")
    dd = datasets.load_from_disk(path)
    if isinstance(dd, datasets.Dataset):  # a split's own folder
        ds = dd
    elif split not in dd:
        sys.exit(f"error: split {split!r} not in {path} (has {', '.join(dd.keys())})")
    else:
        ds = dd[split]
    if not 0 <= index < len(ds):
        sys.exit(f"error: index {index} out of range: {split} has {len(ds)} clips")
    row = ds[index]
    audio, sr = decode_audio(row)
    return {
        "frames": decode_video(row),
        "keypoints": np.asarray(row["keypoints"]),
        "visibility": np.asarray(row["visibility"]),
        "audio": audio,
        "sampling_rate": sr,
        "fps": row["fps"],
        "title": f"{row['composer']}: {row['title']} (clip {row['clip_index']}, {row['appearance']})",
    }


def synthesize(piece_id: str, seconds: float, resolution: int, seed: int) -> dict:
    from apvg_hf.data.virtual_pianist import PerformanceSpec, decode_audio, decode_video, generate_clips

    spec = PerformanceSpec(
        piece_id, seed=seed, max_seconds=seconds, width=resolution, height=resolution, augment=False
    )
    row = next(generate_clips(spec, clip_seconds=seconds + 2.0))
    audio, sr = decode_audio(row)
    return {
        "frames": decode_video(row),
        "keypoints": np.asarray(row["keypoints"]),
        "visibility": np.asarray(row["visibility"]),
        "audio": audio,
        "sampling_rate": sr,
        "fps": row["fps"],
        "title": f"{row['composer']}: {row['title']} ({row['appearance']})",
    }


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a folder written by build_dataset.py")
    src.add_argument("--synthesize", metavar="PIECE_ID", help="perform a corpus piece now, e.g. bach/bwv846")
    ap.add_argument("--split", default="test")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20.0, help="with --synthesize: how much of the piece")
    ap.add_argument("--resolution", type=int, default=256, help="with --synthesize")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=Path("outputs/preview.mp4"))
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.resolution <= 0 or args.resolution % 2:
        ap.error("--seconds must be > 0 and --resolution an even number > 0")

    t0 = time.time()
    try:
        s = (
            from_dataset(args.dataset, args.split, args.index)
            if args.dataset
            else synthesize(args.synthesize, args.seconds, args.resolution, args.seed)
        )
    except (KeyError, ValueError) as err:
        sys.exit(f"error: {err.args[0] if err.args else err}")
    overlay = draw_skeleton_video(s["frames"], s["keypoints"], s["visibility"])
    side_by_side = np.concatenate([s["frames"], overlay], axis=2)  # (T, H, 2W, 3)
    write_video(args.output, side_by_side, s["fps"], audio=s["audio"], sampling_rate=s["sampling_rate"])
    info = probe_video(args.output)
    print(f"{s['title']}: {info['frames']} frames {info['width']}x{info['height']} @ {info['fps']:g} fps, "
          f"{len(s['audio']) / s['sampling_rate']:.1f} s audio ({info['audio_codec']}) -> {args.output} "
          f"[{time.time() - t0:.1f} s]")  # fmt: skip
    return args.output


if __name__ == "__main__":
    main()
