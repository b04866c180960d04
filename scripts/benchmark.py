#!/usr/bin/env python
"""Speed benchmarks, written as JSON + Markdown (never asserted in tests: machines here are noisy).

    python scripts/benchmark.py stu --model pipelines/apvg-virtual-pianist/stu \
        --resolutions 128 256 --output benchmarks/stu_cpu.json

`stu`: frames per second of STU inference, streaming in chunks with the GRU state carried, batch 1,
split into heatmap rendering and the network, in float32 and under bfloat16 autocast. At a
resolution other than the model's, a model of the same architecture with random weights is timed
(speed does not depend on the weights). Ratios between rows come from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from apvg_hf import STUModel


def _timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def bench_resolution(model: STUModel, chunk: int, repeats: int, device: str) -> list[dict]:
    res = model.config.resolution
    g = torch.Generator().manual_seed(0)
    kp = (0.3 + 0.4 * torch.rand(chunk, model.config.num_keypoints, 2, generator=g)).to(device)
    coarse = torch.rand(1, chunk, 3, 32, 32, generator=g).to(device)
    ref = torch.rand(1, 3, res, res, generator=g).to(device)
    heatmaps = model.render_heatmaps(kp)[None]  # (1, T, K + L, R, R)
    t_maps = _timeit(lambda: (model.render_heatmaps(kp), _sync(device)), repeats)
    rows = []
    for precision in ("fp32", "bf16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32

        def step(dtype=dtype):
            with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                model(heatmaps, coarse, ref)
            _sync(device)

        t_net = _timeit(step, repeats)
        rows.append(
            {
                "resolution": res,
                "precision": precision,
                "chunk_frames": chunk,
                "heatmaps_ms_per_frame": 1000 * t_maps / chunk,
                "network_ms_per_frame": 1000 * t_net / chunk,
                "fps": chunk / (t_maps + t_net),
                "network_fps": chunk / t_net,
            }
        )
        print(rows[-1])
    return rows


def bench_stu(
    model_dir: Path | None, resolutions: list[int], chunk: int, repeats: int, device: str
) -> list[dict]:
    base = STUModel.from_pretrained(model_dir) if model_dir else STUModel()
    rows = []
    for res in resolutions:
        model = (
            base
            if res == base.config.resolution
            else STUModel.from_config({**base.config, "resolution": res})
        )
        rows += bench_resolution(model.to(device).eval(), chunk, repeats, device)
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "CPU"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"STU inference on {meta['device']} ({meta['threads']} threads), batch 1, "
        f"{rows[0]['chunk_frames']}-frame chunks, median of {meta['repeats']}.",
        "",
        "| resolution | precision | heatmaps ms/frame | network ms/frame | frames/s (total) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['resolution']} | {r['precision']} | {r['heatmaps_ms_per_frame']:.1f} | "
            f"{r['network_ms_per_frame']:.1f} | {r['fps']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["stu"])
    ap.add_argument("--model", type=Path, help="STU folder (default: a fresh default STUModel)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--output", type=Path, required=True, help="results .json (a .md beside it)")
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)
    rows = bench_stu(args.model, args.resolutions, args.chunk, args.repeats, args.device)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    meta = {
        "device": device,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "torch": torch.__version__,
        "model": str(args.model) if args.model else None,
    }
    out = {"meta": meta, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2))
    args.output.with_suffix(".md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
