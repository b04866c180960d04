"""Choose a note-aware KHP's key contact on the validation split: `key_contact_frames` (how long the
striking fingertip sits on the key's press point), `key_approach_frames`, `key_release_frames` and
`press_lift` (how it comes down on it and leaves it), `key_contact_reach` (whether a struck key no fingertip points at takes a free one) and `key_contact_hold`
(whether the striking finger is chosen once, at the onset), `free_lift` (how far the fingertips that strike
nothing hover).

Every combination of the given values is tried; the KHP plays the clips from their audio and from
their true notes; of the combinations within `--f1-tolerance` of the best mean key-press F1 of the two,
the one whose hands move most like the true ones (lowest hand velocity error, true notes) is chosen. `--save`
writes it into the model's config.json. Results go to a .json and a .md beside it.

    python scripts/tune_key_contact.py --model pipelines/apvg-virtual-pianist/khp \\
        --dataset data/virtual_pianist_medium --contact 0,2,3,4 --approach 0,1,2,3 --lift 0.15,0.3 \\
        --output pipelines/apvg-virtual-pianist/key_contact_validation.json --save
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.data.clips import load_clips
from apvg_hf.evaluation.khp import sweep_key_contact


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="a note-aware KHP folder (save_pretrained)")
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--split", default="validation", choices=["validation", "test"])
    ap.add_argument("--contact", default="0,2,3,4,6", help="comma list of key_contact_frames")
    ap.add_argument("--approach", default="0", help="comma list of key_approach_frames")
    ap.add_argument("--release", default="0", help="comma list of key_release_frames")
    ap.add_argument("--lift", default="0.5", help="comma list of press_lift")
    ap.add_argument("--reach", default="0", help="comma list of key_contact_reach (0: off)")
    ap.add_argument("--hold", default="0", help="comma list of key_contact_hold (0/1)")
    ap.add_argument("--free-lift", default="0", help="comma list of free_lift (0: off)")
    ap.add_argument(
        "--f1-tolerance", type=float, default=0.005, help="F1 within this of the best counts as as good"
    )
    ap.add_argument("--output", required=True, type=Path, help="results .json (a .md goes beside it)")
    ap.add_argument("--limit", type=int, help="only the first N clips")
    ap.add_argument(
        "--save", action="store_true", help="write the chosen values into the model's config.json"
    )
    args = ap.parse_args(argv)
    if args.save and args.split != "validation":
        ap.error("--save chooses on the validation split only")
    grid = [
        {
            "key_contact_frames": c,
            "key_approach_frames": a,
            "key_release_frames": rel,
            "press_lift": lift,
            "key_contact_reach": reach,
            "key_contact_hold": hold,
            "free_lift": free,
        }
        for c, a, rel, lift, reach, hold, free in itertools.product(
            [int(v) for v in args.contact.split(",")],
            [int(v) for v in args.approach.split(",")],
            [int(v) for v in args.release.split(",")],
            [float(v) for v in args.lift.split(",")],
            [float(v) for v in args.reach.split(",")],
            [bool(int(v)) for v in args.hold.split(",")],
            [float(v) for v in args.free_lift.split(",")],
        )
        if c
        or not (a or rel or reach or hold)  # approaching, reaching or holding without contact: no contact
    ]
    model = KHPModel.from_pretrained(args.model).eval()
    try:  # a training output keeps its feature extractor beside the weights; a pipeline in a sibling folder
        extractor = APVGFeatureExtractor.from_pretrained(args.model)
    except OSError:
        extractor = APVGFeatureExtractor.from_pretrained(args.model.parent / "feature_extractor")
    clips = load_clips(args.dataset, args.split, extractor, 0, args.limit)
    results = sweep_key_contact(model, clips, grid)

    def score(r: dict) -> float:
        return (r["audio"]["keypress"]["f1"] + r["notes"]["keypress"]["f1"]) / 2

    top = max(score(r) for r in results)
    best = min(
        (r for r in results if score(r) >= top - args.f1_tolerance),
        key=lambda r: (r["notes"]["hands"]["velocity_px256"], -score(r)),
    )
    rows = []
    for r in results:
        s, a, n = r["settings"], r["audio"], r["notes"]
        rows.append(
            f"| {s['key_contact_frames']} | {s['key_approach_frames']} | {s['key_release_frames']} | {s['press_lift']:g} "
            f"| {s['key_contact_reach']:g} | {'yes' if s['key_contact_hold'] else 'no'} | {s['free_lift']:g} "
            f"| {a['keypress']['f1']:.3f} | {n['keypress']['f1']:.3f} "
            f"| {n['keypress']['precision']:.3f} / {n['keypress']['recall']:.3f} "
            f"| {n['hands']['mpjpe_px256']:.2f} | {n['hands']['velocity_px256']:.2f} "
            f"| {a['all']['velocity_px256']:.2f} |" + (" **chosen**" if r is best else "")
        )
    command = (
        f"python scripts/tune_key_contact.py --model {args.model} --dataset {args.dataset} --split {args.split} "
        f"--contact {args.contact} --approach {args.approach} --release {args.release} --lift {args.lift} --reach {args.reach} "
        f"--hold {args.hold} --free-lift {args.free_lift} "
        f"--f1-tolerance {args.f1_tolerance} --output {args.output}"
    )
    md = "\n".join(
        [
            f"# Key contact, {args.split} split ({len(clips)} clips of `{args.dataset.name}`)",
            "",
            f"Model: `{args.model}`. Command: `{command}`",
            "",
            "| contact frames | approach frames | release frames | lift | reach | hold | free lift "
            "| key-press F1, audio | key-press F1, true notes | P / R, true notes | hand px@256, true notes "
            "| hand velocity px/frame, true notes | velocity px/frame, all keypoints, audio |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out = {"split": args.split, "clips": len(clips), "chosen": best["settings"], "results": results}
    args.output.write_text(json.dumps(out, indent=2, default=float))
    args.output.with_suffix(".md").write_text(md)
    print(md)
    if args.save:
        for k, v in best["settings"].items():
            setattr(model.config, k, v)
        model.config.to_json_file(args.model / "config.json")
        print(f"saved {best['settings']} to {args.model / 'config.json'}")
    return out


if __name__ == "__main__":
    main()
