"""Choose a note-aware KHP's key contact (`key_contact_frames`) on the validation split.

For each value, the KHP plays the validation clips from their audio and from their true notes; the
value with the best mean key-press F1 of the two is chosen. `--save` writes it into the model's
config.json. Results go to a .json and a .md beside it.

    python scripts/tune_key_contact.py --model pipelines/apvg-virtual-pianist/khp \\
        --dataset data/virtual_pianist_medium --frames 0,2,3,4,5,6,8 \\
        --output pipelines/apvg-virtual-pianist/key_contact_validation.json --save
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--frames", default="0,2,3,4,5,6,8", help="comma list of key_contact_frames to try")
    ap.add_argument("--output", required=True, type=Path, help="results .json (a .md goes beside it)")
    ap.add_argument("--limit", type=int, help="only the first N clips")
    ap.add_argument("--save", action="store_true", help="write the chosen value into the model's config.json")
    args = ap.parse_args(argv)
    if args.save and args.split != "validation":
        ap.error("--save chooses on the validation split only")
    frames = [int(v) for v in args.frames.split(",")]
    model = KHPModel.from_pretrained(args.model).eval()
    extractor = APVGFeatureExtractor.from_pretrained(args.model.parent / "feature_extractor")
    clips = load_clips(args.dataset, args.split, extractor, 0, args.limit)
    results = sweep_key_contact(model, clips, frames)

    def f1(n: int, source: str) -> float:
        return results[n][source]["keypress"]["f1"]

    best = max(frames, key=lambda n: (f1(n, "audio") + f1(n, "notes")) / 2)
    rows = [
        f"| {n} | {f1(n, 'audio'):.3f} | {f1(n, 'notes'):.3f} | "
        f"{results[n]['notes']['keypress']['precision']:.3f} / {results[n]['notes']['keypress']['recall']:.3f} | "
        f"{results[n]['notes']['hands']['mpjpe_px256']:.2f} | {results[n]['notes']['hands']['velocity_px256']:.2f} |"
        + (" **chosen**" if n == best else "")
        for n in frames
    ]
    md = "\n".join(
        [
            f"# Key contact, {args.split} split ({len(clips)} clips of `{args.dataset.name}`)",
            "",
            f"Model: `{args.model}`. Command: `python scripts/tune_key_contact.py --model {args.model} "
            f"--dataset {args.dataset} --frames {args.frames} --output {args.output}`",
            "",
            "| key_contact_frames | key-press F1, audio | key-press F1, true notes | P / R, true notes "
            "| hand px@256, true notes | hand velocity px/frame |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out = {"split": args.split, "clips": len(clips), "chosen": best, "results": results}
    args.output.write_text(json.dumps(out, indent=2, default=float))
    args.output.with_suffix(".md").write_text(md)
    print(md)
    if args.save:
        model.config.key_contact_frames = best
        model.config.to_json_file(args.model / "config.json")
        print(f"saved key_contact_frames={best} to {args.model / 'config.json'}")
    return out


if __name__ == "__main__":
    main()
