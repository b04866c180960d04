#!/usr/bin/env python
"""Evaluate an STU on held-out pieces from ground-truth keypoints, side by side with its ablations.

    python scripts/evaluate_stu.py --model outputs/stu-full/model \
        --compare "no graph=outputs/stu-no-graph/model" "no GRU=outputs/stu-no-gru/model" \
                  "pix2pix UNet=outputs/stu-pix2pix/model" \
        --khp pipelines/apvg-virtual-pianist/khp \
        --dataset data/virtual_pianist_medium --split test --output results.json

Every model renders every test clip from its ground-truth keypoints and visibility, the clip's coarse
frames (the ground truth at the KHP's coarse size) and an appearance reference: the middle frame of
another clip of the same performance. Scores: PSNR and SSIM against the ground-truth frames,
temporal flicker (mean |frame difference error|, 0-255 levels) and PSNR around the hands.
Two trivial rows show what the inputs alone give: the reference frame copied, and the coarse frame
upsampled. With `--khp`, one more row runs the STU on what KHP predicts from the audio (keypoints,
visibility, coarse frames): stage 2 as the pipeline uses it. A compared STU at a lower resolution (one that
divides `--model`'s) renders at its own size, from the reference at that size, and is upscaled (bicubic)
to be scored: e.g. a 128 STU beside a 256 one.

Writes the JSON, a Markdown table beside it (.md) and a grid image (_grid.png): ground truth and
every model on frames of one test clip, with the hands enlarged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from apvg_hf import APVGFeatureExtractor, KHPModel, STUModel
from apvg_hf.data.clips import load_clips, load_frames
from apvg_hf.evaluation import khp_predict
from apvg_hf.evaluation.frames import FrameMetrics, hand_boxes, stu_render_many
from apvg_hf.evaluation.khp import reference_for, reference_source

COLUMNS = [
    ("psnr", "PSNR dB↑", "{:.2f}"),
    ("ssim", "SSIM↑", "{:.4f}"),
    ("hands_psnr", "hands PSNR dB↑", "{:.2f}"),
    ("flicker", "flicker↓", "{:.3f}"),
]


def markdown_table(rows: dict[str, dict], meta: dict) -> str:
    lines = ["| method | " + " | ".join(c[1] for c in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f.format(r[k]) if k in r else "–" for k, _, f in COLUMNS) + " |"
        )
    notes = [
        "",
        f"{meta['clips']} {meta['split']} clips of {meta['pieces']} held-out pieces, {meta['frames']} frames "
        f"({meta['frames_per_clip']}), {meta['resolution']}x{meta['resolution']}, from ground-truth keypoints "
        "and the ground-truth coarse frames unless the row says otherwise."
        + "".join(
            f" {name}: rendered at {r}x{r} and upscaled (bicubic)."
            for name, r in meta.get("upscaled", {}).items()
        ),
        "Flicker: mean absolute error of frame differences, 0-255 levels. Hands PSNR: inside a box of "
        "3/16 of the frame around each visible hand.",
    ]
    return "\n".join(lines + notes) + "\n"


def parse_compare(values: list[str]) -> dict[str, Path]:
    out = {}
    for v in values or []:
        name, eq, path = v.partition("=")
        if not eq or not name or not path:
            raise SystemExit(f"--compare takes NAME=DIR, got {v!r}")
        out[name] = Path(path)
    return out


def upsample(coarse: np.ndarray, size: int) -> torch.Tensor:
    x = torch.as_tensor(np.array(coarse)).float()
    x = x / 255 if coarse.dtype == np.uint8 else x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def upscale(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, h, w) in [0, 1] -> (T, 3, size, size), bicubic (as a user would upscale a video)."""
    return F.interpolate(frames, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def grid_image(path: Path, real: torch.Tensor, fakes: dict, keypoints, visibility, columns: int = 6) -> None:
    """Rows: ground truth, then each model; columns: frames of one clip; right half: the hands x2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.linspace(0, len(real) - 1, columns).round().astype(int)
    rows = {"ground truth": real, **fakes}
    size = real.shape[-1]
    boxes = [b[:2] for b in hand_boxes(keypoints[idx], visibility[idx], size, box=0.25)]
    crop_width = sum(s for b in boxes for _, _, s in b) or 1
    fig, axes = plt.subplots(
        len(rows),
        2,
        figsize=(18, 1.7 * len(rows) + 0.5),
        squeeze=False,
        gridspec_kw={"width_ratios": [columns * size, crop_width * 2]},  # hands shown x2
    )
    for r, (name, video) in enumerate(rows.items()):
        frames = video[idx].clamp(0, 1)
        axes[r, 0].imshow(torch.cat(list(frames), -1).permute(1, 2, 0).numpy())
        crops = [frames[k][:, y0 : y0 + s, x0 : x0 + s] for k in range(len(idx)) for y0, x0, s in boxes[k]]
        if crops:
            axes[r, 1].imshow(torch.cat(crops, -1).permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title(f"frames {', '.join(map(str, idx))}")
    axes[0, 1].set_title("hands (left, right per frame)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="the STU (save_pretrained folder)")
    ap.add_argument("--name", default="STU (graph + ConvGRU)", help="its row name")
    ap.add_argument("--compare", nargs="*", default=[], metavar="NAME=DIR", help="ablations / baselines")
    ap.add_argument("--khp", type=Path, help="also run the STU on this KHP's predictions from the audio")
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "--output", type=Path, required=True, help="results .json (a .md and _grid.png beside it)"
    )
    ap.add_argument("--max-frames", type=int, default=None, help="frames scored per clip, from its start")
    ap.add_argument("--limit", type=int, default=None, help="first N clips only")
    ap.add_argument("--grid-clip", type=int, default=0, help="clip (index) shown in the grid image")
    ap.add_argument("--chunk", type=int, default=32, help="frames per STU call (state carried across)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    # 1. Models: scored at --model's resolution; the others at it or at a resolution that divides it.
    paths = {args.name: args.model} | parse_compare(args.compare)
    for name, p in paths.items():
        if not (p / "config.json").exists():
            raise SystemExit(f"{name}: {p} is not an STU folder (no config.json)")
    models = {name: STUModel.from_pretrained(p).eval() for name, p in paths.items()}
    size = models[args.name].config.resolution
    for name, m in models.items():
        if size % m.config.resolution:
            raise SystemExit(
                f"{name}: resolution {m.config.resolution} must be {size} or divide it (then it is upscaled)"
            )
    by_size: dict[int, dict] = {}  # resolution -> the models rendering at it
    for name, m in models.items():
        by_size.setdefault(m.config.resolution, {})[name] = m
    khp = KHPModel.from_pretrained(args.khp).eval() if args.khp else None
    extractor = APVGFeatureExtractor.from_pretrained(args.khp) if khp else APVGFeatureExtractor()
    coarse_size = khp.config.coarse_size if khp else 32

    # 2. Data: clips (keypoints, coarse frames) and frames at each model resolution.
    clips = load_clips(args.dataset, args.split, extractor, coarse_size)
    frames_at = {r: load_frames(args.dataset, args.split, r) for r in sorted(by_size | {size: {}})}
    frames = frames_at[size]
    ids = list(range(len(clips)))[: args.limit]

    # 3. Render and score, clip by clip.
    khp_row = f"{args.name} on KHP predictions (from audio)"
    rows = ["reference frame (copied)", "coarse frame (upsampled)", *models] + ([khp_row] if khp else [])
    metrics = {name: FrameMetrics() for name in rows}
    started = time.perf_counter()
    grid = None
    for i in tqdm(ids, desc=f"rendering {args.split} clips"):
        c = clips[i]
        T = min(args.max_frames or c.num_frames, c.num_frames)
        src, t = reference_source(c, clips)
        reference = np.array(frames[src][t])
        real = torch.from_numpy(np.array(frames[i][:T]))
        kp, vis = c.keypoints[:T], c.visibility[:T]
        fakes = {}
        for r, group in by_size.items():  # lower resolutions: their own reference, upscaled after
            out = stu_render_many(group, kp, vis, c.coarse[:T], np.array(frames_at[r][src][t]), args.chunk)
            fakes |= {n: v if r == size else upscale(v, size) for n, v in out.items()}
        if khp is not None:
            pred = khp_predict(khp, c.features, *reference_for(c, clips))
            fakes[khp_row] = stu_render_many(
                {khp_row: models[args.name]},
                pred["keypoints"][:T],
                pred["visibility"][:T],
                pred["coarse"][:T],
                reference,
                args.chunk,
            )[khp_row]
        fakes["reference frame (copied)"] = (
            torch.from_numpy(reference).float()[None].expand(T, -1, -1, -1) / 255
        )
        fakes["coarse frame (upsampled)"] = upsample(c.coarse[:T], size)
        for name in rows:
            metrics[name].update(fakes[name], real, kp, vis)
        if i == ids[min(args.grid_clip, len(ids) - 1)]:
            grid = (real.float() / 255, {n: fakes[n] for n in rows if n in models or n == khp_row}, kp, vis)

    # 4. Write the JSON, the table and the grid.
    results = {name: m.compute() for name, m in metrics.items()}
    n_frames = results[args.name]["frames"]
    meta = {
        "dataset": str(args.dataset),
        "split": args.split,
        "clips": len(ids),
        "pieces": len({clips[i].meta["piece_id"] for i in ids}),
        "frames": n_frames,
        "frames_per_clip": f"the first {args.max_frames} of each" if args.max_frames else "all",
        "resolution": size,
        "models": {name: str(p) for name, p in paths.items()} | ({"khp": str(args.khp)} if khp else {}),
        "upscaled": {n: m.config.resolution for n, m in models.items() if m.config.resolution != size},
        "seconds": round(time.perf_counter() - started, 1),  # speed: scripts/benchmark.py
    }
    out = {"meta": meta, "results": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2))
    table = markdown_table(results, meta)
    args.output.with_suffix(".md").write_text(table)
    print(table)
    if not args.no_plots and grid is not None:
        path = args.output.with_name(args.output.stem + "_grid.png")
        grid_image(path, *grid)
        print(f"wrote {path}")
    return out


if __name__ == "__main__":
    torch.set_flush_denormal(
        True
    )  # Gaussian tails are denormal floats, slow on x86 (process-wide: here only)
    main()
    sys.exit(0)
