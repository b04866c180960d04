#!/usr/bin/env python
"""Training curves from TensorBoard logs: a PNG and a Markdown table of the validation metrics.

python scripts/plot_training.py --run outputs/khp-virtual-pianist --output pipelines/apvg-virtual-pianist/khp_training
python scripts/plot_training.py --run outputs/stu-full outputs/stu-no-graph --output stu_training   # overlaid

The panels follow the run: KHP runs (keypoint metrics), transcriber runs (note F1) or STU runs (PSNR,
SSIM, flicker).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def read_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run.rglob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files under {run}")
    out: dict[str, dict[int, float]] = {}
    for f in files:  # a resumed run appends new files: later values win
        ea = EventAccumulator(str(f), size_guidance={"scalars": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in ea.Scalars(tag)})
    return {k: sorted(v.items()) for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, nargs="+", help="training output_dir(s)")
    ap.add_argument("--output", required=True, type=Path, help="path stem: writes STEM.png and STEM.md")
    args = ap.parse_args(argv)
    runs = {run.name: read_scalars(run) for run in args.run}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if any("val/psnr" in scalars for scalars in runs.values()):
        panels = STU_PANELS
    elif any("val/onset_f1" in scalars for scalars in runs.values()):
        panels = TRANSCRIBER_PANELS
    else:
        panels = KHP_PANELS
    rows = (len(panels) + 2) // 3
    fig, axes = plt.subplots(rows, 3, figsize=(13, 3.25 * rows), squeeze=False)
    for ax, (keys, title) in zip(axes.flat, panels):
        keys = (keys,) if isinstance(keys, str) else keys
        for run, scalars in runs.items():
            for tag, points in sorted(scalars.items()):
                key = next(
                    (k for k in keys if tag == k or (not tag.startswith("train/") and tag.endswith("/" + k))),
                    None,
                )
                if key is not None:
                    steps, values = zip(*points)
                    label = tag if len(keys) > 1 else tag.split("/")[0]
                    label = f"{run}: {label}" if len(runs) > 1 else label
                    ax.plot(steps, values, label=label, marker="o" if len(points) < 30 else None, ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output.with_suffix(".png"), dpi=90)

    sections = []
    for run, scalars in runs.items():
        val_tags = sorted(t for t in scalars if not t.startswith("train/"))
        steps = sorted({s for t in val_tags for s, _ in scalars[t]})
        lines = [
            f"## {run}",
            "",
            "| step | " + " | ".join(val_tags) + " |",
            "|" + "---|" * (len(val_tags) + 1),
        ]
        for s in steps:
            row = [dict(scalars[t]).get(s) for t in val_tags]
            lines.append(f"| {s} | " + " | ".join("" if v is None else f"{v:.4g}" for v in row) + " |")
        sections.append("\n".join(lines))
    names = ", ".join(f"`{r}`" for r in runs)
    args.output.with_suffix(".md").write_text(
        f"# Training curves: {names}\n\n![curves]({args.output.with_suffix('.png').name})\n\n"
        + "\n\n".join(sections)
        + "\n"
    )
    print(f"wrote {args.output.with_suffix('.png')} and {args.output.with_suffix('.md')}")


KHP_PANELS = [
    ("train/loss", "training loss"),
    ("hands_mpjpe_px256", "hand error (px at 256)"),
    ("body_mpjpe_px256", "body error (px at 256)"),
    ("hands_pck@0.05", "hand PCK@0.05"),
    (("keypress_f1", "note_hit_rate"), "key-press F1, note hit rate"),
    ("coarse_l1", "coarse-frame L1"),
]
TRANSCRIBER_PANELS = [
    ("train/loss", "training loss"),
    (("onset_f1", "onset_precision", "onset_recall"), "validation onsets (50 ms)"),
    ("onset_offset_f1", "validation onset+offset F1"),
]
STU_PANELS = [
    ("train/loss", "training loss"),
    (("train/l1", "train/temporal"), "L1, temporal"),
    (("train/adversarial", "train/discriminator"), "adversarial (LSGAN)"),
    (("psnr", "hands_psnr"), "validation PSNR (dB): frame, hands"),
    ("ssim", "validation SSIM"),
    ("flicker", "validation flicker (0-255)"),
]


if __name__ == "__main__":
    main()
