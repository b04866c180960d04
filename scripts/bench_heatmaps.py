"""Micro-benchmark of heatmap rendering: dense vs fast (tiled) `keypoints_to_heatmaps`.

Renders the golden test's real poses (tests/golden/default_pipeline.npz) with the STU's default widths,
one frame (B=1, as `STUModel.iter_render` calls it) and four, and prints the median of N calls in ms.

    .venv/bin/python scripts/bench_heatmaps.py [--repeats 20] [--sizes 128 256] [--threads 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from apvg_hf.heatmaps import keypoints_to_heatmaps

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn, repeats: int) -> float:
    """Median wall time of `fn()` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def row(kp: torch.Tensor, vis: torch.Tensor, size: int, repeats: int) -> str:
    """One table row: dense and fast times for keypoints (B, K, 2) at `size`, and their largest gap."""
    ms = {
        m: median_ms(lambda m=m: keypoints_to_heatmaps(kp, size, visibility=vis, method=m), repeats)
        for m in ("dense", "fast")
    }
    gap = (
        (
            keypoints_to_heatmaps(kp, size, visibility=vis, method="dense")
            - keypoints_to_heatmaps(kp, size, visibility=vis, method="fast")
        )
        .abs()
        .max()
    )
    speedup = ms["dense"] / ms["fast"]
    return f"| {size} | {len(kp)} | {ms['dense']:.2f} | {ms['fast']:.2f} | {speedup:.1f}x | {gap:.1e} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    golden = np.load(ROOT / "tests" / "golden" / "default_pipeline.npz")
    kp = torch.from_numpy(golden["keypoints"]).float()  # (T, K, 2)
    vis = torch.from_numpy(golden["visibility"]).float()  # (T, K)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print("| size | B | dense ms | fast ms | speed-up | max abs diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        for b in args.batches:
            print(row(kp[:b], vis[:b], size, args.repeats))


if __name__ == "__main__":
    main()
