#!/usr/bin/env python
"""Build the virtual pianist dataset (a `datasets.DatasetDict` saved with `save_to_disk`).

    python scripts/build_dataset.py --preset small --output data/virtual_pianist_small
    python scripts/build_dataset.py --preset full --output data/vp_full --num-workers 2 --resolution 128

Load it with `datasets.load_from_disk(DIR)`. Splits are by piece; see apvg_hf.data.virtual_pianist.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import datasets

from apvg_hf.data.audio import find_soundfont
from apvg_hf.data.presets import PRESETS, preset_pieces
from apvg_hf.data.virtual_pianist import SPLITS, PerformanceSpec, build_split, split_pieces


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--num-workers", type=_positive(int), default=2)
    ap.add_argument("--resolution", type=_positive(int), help="square frame size (default: the preset's)")
    ap.add_argument("--fps", type=_positive(float), default=30.0)
    ap.add_argument("--sampling-rate", type=_positive(int), default=16000)
    ap.add_argument("--seed", type=int, default=0, help="a non-negative integer")
    ap.add_argument("--variants", type=_positive(int), help="performances per piece (default: the preset's)")
    ap.add_argument("--clip-seconds", type=_positive(float), help="longest clip (default: the preset's)")
    ap.add_argument(
        "--soundfont",
        help="a .sf2 file or a name (timgm6mb, fluidr3, csound); a comma-separated list picks one per "
        "performance (default: timgm6mb, bundled with pretty_midi)",
    )
    ap.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT once the new dataset is complete"
    )
    args = ap.parse_args(argv)

    preset = PRESETS[args.preset]
    res = args.resolution if args.resolution is not None else preset.resolution
    variants = args.variants if args.variants is not None else preset.variants
    clip_seconds = args.clip_seconds if args.clip_seconds is not None else preset.clip_seconds
    if args.seed < 0:
        ap.error(f"--seed must be >= 0, got {args.seed}")
    if clip_seconds * args.fps < 1:
        ap.error(f"--clip-seconds {clip_seconds} is shorter than one frame at {args.fps:g} fps")
    if args.output.exists() and not args.output.is_dir():
        ap.error(f"--output {args.output} exists and is not a folder")
    if args.output.exists() and any(args.output.iterdir()) and not args.overwrite:
        ap.error(
            f"{args.output} exists and is not empty (pass --overwrite to replace it when the build is done)"
        )
    try:
        for name in (args.soundfont or "timgm6mb").split(","):
            find_soundfont(name.strip())
    except FileNotFoundError as err:
        ap.error(str(err))

    pieces = preset_pieces(args.preset)
    max_secs = dict(pieces)
    splits = split_pieces([p for p, _ in pieces])  # by piece, the same in every preset
    print(f"preset {args.preset}: {len(pieces)} pieces x {variants} variants at {res}x{res}, {args.fps:g} fps; "
          + ", ".join(f"{k}: {len(splits[k])} pieces" for k in SPLITS))  # fmt: skip

    t0 = time.time()
    out = {}
    with tempfile.TemporaryDirectory(prefix="apvg_build_") as cache:
        for split in SPLITS:
            specs = [
                PerformanceSpec(piece_id=p, variant=v, seed=args.seed, max_seconds=max_secs[p], fps=args.fps,
                                width=res, height=res, sampling_rate=args.sampling_rate, soundfont=args.soundfont)
                for p in splits[split] for v in range(variants)
            ]  # fmt: skip
            out[split] = build_split(specs, clip_seconds, args.num_workers, cache_dir=cache)
        dd = datasets.DatasetDict(out)
        # Write beside the target and rename at the end: an interrupted build leaves no half dataset.
        partial = args.output.with_name(f".{args.output.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        dd.save_to_disk(str(partial))
    wall = time.time() - t0

    dd = datasets.load_from_disk(str(partial))  # (the generation cache is gone with its temp folder)
    seconds = {k: float(sum(ds["duration"])) for k, ds in dd.items()}
    total = sum(seconds.values())
    size = dir_size(partial)
    stats = {
        "preset": args.preset,
        "resolution": res,
        "fps": args.fps,
        "variants": variants,
        "pieces": {k: splits[k] for k in SPLITS},
        "clips": {k: len(v) for k, v in dd.items()},
        "seconds": seconds,
        "total_seconds": total,
        "wall_seconds": wall,
        "data_seconds_per_wall_second": total / wall,
        "bytes": size,
        "bytes_per_hour": size / max(total, 1e-9) * 3600,
        "num_workers": args.num_workers,
    }
    (partial / "build_info.json").write_text(json.dumps(stats, indent=2))
    if args.output.exists():
        shutil.rmtree(args.output)  # empty, or --overwrite was given: replaced only now, when complete
    partial.rename(args.output)
    print(f"built {total / 60:.1f} min of data ({sum(stats['clips'].values())} clips) in {wall:.0f} s "
          f"= {stats['data_seconds_per_wall_second']:.1f} s of data per wall second; "
          f"{size / 1e6:.1f} MB on disk = {stats['bytes_per_hour'] / 1e6:.0f} MB per hour -> {args.output}")  # fmt: skip
    return stats


if __name__ == "__main__":
    main()
