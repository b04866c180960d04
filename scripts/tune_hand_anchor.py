#!/usr/bin/env python
"""Choose hand anchoring's time width and dead zone for a personalised KHP on the validation split.

    python scripts/tune_hand_anchor.py --dataset data/fourms_pianist --khp pipelines/fourms-pianist/khp \
        --output pipelines/fourms-pianist/hand_anchor_tuning.json

For each `--sigmas` value the offsets and the body's lean are fitted on the training split
(`apvg_hf.training.khp.fit_hand_anchor`); each `--dead-zones` value is then scored on `--split`
(default: validation; never the test split, which is for reporting) with the same reference as
`scripts/evaluate_real.py`: mean per-joint error against the real keypoints (visible joints), and the
wrists' speed correlation, beside the network alone. Writes the JSON and a Markdown table beside it;
put the chosen values under `hand_anchor:` in the recipe's `personalise.yaml`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.data.clips import load_clips
from apvg_hf.evaluation import khp_predict
from apvg_hf.evaluation.real import KeypointScores, training_reference
from apvg_hf.training.khp import fit_hand_anchor


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--khp", type=Path, required=True, help="a personalised note-aware KHP")
    ap.add_argument("--split", default="validation")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.15, 0.25, 0.5])
    ap.add_argument("--dead-zones", type=float, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--reference-clip", type=int, default=3)
    ap.add_argument("--reference-frame", type=int, default=0)
    ap.add_argument("--size", type=int, default=128, help="errors in pixels at this resolution")
    ap.add_argument("--output", type=Path, required=True, help=".json (a .md is written beside it)")
    args = ap.parse_args(argv)
    if args.split == "test":
        print("warning: tuning on the test split makes its numbers optimistic", file=sys.stderr)

    model = KHPModel.from_pretrained(args.khp).eval()
    fe = APVGFeatureExtractor.from_pretrained(args.khp)
    cs = model.config.coarse_size
    train = load_clips(args.dataset, "train", fe, coarse_size=cs)
    held = load_clips(args.dataset, args.split, fe, coarse_size=cs)
    rc, rf = args.reference_clip, args.reference_frame
    chosen = training_reference(args.dataset, train, rc, rf, cs)
    ref_kp, ref_keys, ref_small = chosen["keypoints"], chosen["keys"], chosen["coarse"]

    def score(anchor: dict | None) -> dict:
        model.config.hand_anchor = anchor
        s = KeypointScores(args.size)
        for c in held:
            s.update(np.asarray(khp_predict(model, c.features, ref_kp, ref_small, ref_keys)["keypoints"]), c)
        return s.compute()

    rows = [{"sigma_s": None, "dead_zone_keys": None, **score(None)}]
    for sigma in args.sigmas:
        fitted = fit_hand_anchor(model, train, progress=False, sigma_s=sigma)
        for dead in args.dead_zones:
            rows.append(
                {"sigma_s": sigma, "dead_zone_keys": dead, **score(fitted | {"dead_zone_keys": dead})}
            )
            print(rows[-1], file=sys.stderr)
    best = min(rows[1:], key=lambda r: r[f"all_px{args.size}"])
    result = {"khp": str(args.khp), "dataset": str(args.dataset), "split": args.split, "rows": rows,
              "best": {"sigma_s": best["sigma_s"], "dead_zone_keys": best["dead_zone_keys"]},
              "command": "python scripts/tune_hand_anchor.py " + " ".join(argv if argv is not None else sys.argv[1:])}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    px = f"all_px{args.size}"
    lines = [
        f"## Hand anchoring on the {args.split} split ({rows[0]['frames']} frames), px at {args.size}",
        "",
        "| σ (s) | dead zone (white keys) | all joints px↓ | body px↓ | hands px↓ | wrist speed r↑ |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = (
            ("network only", "–")
            if r["sigma_s"] is None
            else (f"{r['sigma_s']:g}", f"{r['dead_zone_keys']:g}")
        )
        cells = [f"{r[px]:.2f}", f"{r[f'body_px{args.size}']:.2f}", f"{r[f'hands_px{args.size}']:.2f}"]
        lines.append(f"| {name[0]} | {name[1]} | " + " | ".join(cells) + f" | {r['wrist_speed_r']:.3f} |")
    lines += ["", f"Best: σ {best['sigma_s']:g} s, dead zone {best['dead_zone_keys']:g} white keys.",
              f"Command: `{result['command']}`", ""]  # fmt: skip
    args.output.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
