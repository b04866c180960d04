"""Assemble a pipeline folder (the Hub layout) from trained KHP and STU folders and one training frame.

    python scripts/assemble_pipeline.py --khp pipelines/apvg-virtual-pianist/khp \
        --stu pipelines/apvg-virtual-pianist/stu --dataset data/virtual_pianist_medium \
        --output pipelines/apvg-virtual-pianist

Writes model_index.json, config.json (for `transformers.pipeline`), feature_extractor/, khp/, stu/ and
reference/ (the appearance reference: a frame of a TRAINING clip, its keypoints and the keyboard's key-top
quads), then checks that the folder loads every way a user would load it and gives the same frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def reference_from_dataset(dataset_dir: Path, split: str, index: int, frame: int | None, resolution: int):
    """(AppearanceReference, description) from one clip of a saved dataset: the frame, its keypoints and
    the keyboard's geometry (the clip's key-top quads, where the dataset has them)."""
    import datasets

    from apvg_hf import AppearanceReference
    from apvg_hf.data.virtual_pianist import decode_video

    ds = datasets.load_from_disk(str(dataset_dir / split))
    row = ds[index]
    frames = decode_video(row)  # (T, H, W, 3)
    t = len(frames) // 2 if frame is None else frame
    quads = row.get("keyboard_quads")
    ref = AppearanceReference.from_frame(
        frames[t],
        np.asarray(row["keypoints"][t]),
        resolution=resolution,
        keyboard_quads=None if quads is None else np.asarray(quads, dtype=np.float32),
    )
    return ref, {
        "split": split,
        "clip": index,
        "frame": t,
        "piece_id": row["piece_id"],
        "appearance": row.get("appearance"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--khp", type=Path, required=True, help="a KHPModel folder (with preprocessor_config.json)"
    )
    ap.add_argument("--stu", type=Path, required=True, help="an STUModel folder")
    ap.add_argument(
        "--dataset", type=Path, required=True, help="the training dataset (for the reference frame)"
    )
    ap.add_argument("--split", default="train", help="take the reference from this split (default: train)")
    ap.add_argument("--index", type=int, default=0, help="clip index in the split")
    ap.add_argument("--frame", type=int, default=None, help="frame in the clip (default: the middle one)")
    ap.add_argument("--reference-resolution", type=int, default=256)
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args(argv)

    from apvg_hf import APVGFeatureExtractor, APVGPipeline, KHPModel, STUModel

    if args.split != "train":
        print(
            "note: the reference should come from the training data (it is part of the model)",
            file=sys.stderr,
        )
    khp = KHPModel.from_pretrained(args.khp).eval()
    stu = STUModel.from_pretrained(args.stu).eval()
    fe = APVGFeatureExtractor.from_pretrained(args.khp)
    ref, where = reference_from_dataset(
        args.dataset, args.split, args.index, args.frame, args.reference_resolution
    )
    pipe = APVGPipeline(fe, khp, stu, ref)
    with tempfile.TemporaryDirectory() as tmp:  # khp/ and stu/ may be the output's own subfolders
        pipe.save_pretrained(tmp)
        args.output.mkdir(parents=True, exist_ok=True)
        for sub in ("feature_extractor", "khp", "stu", "reference"):
            for f in sorted((Path(tmp) / sub).iterdir()):
                (args.output / sub).mkdir(exist_ok=True)
                data = f.read_bytes()
                if f.name == "config.json":  # no machine-specific paths in the published configs
                    cfg = json.loads(data)
                    cfg.pop("_name_or_path", None)
                    data = (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()
                (args.output / sub / f.name).write_bytes(data)
        for f in ("model_index.json", "config.json"):
            (args.output / f).write_bytes((Path(tmp) / f).read_bytes())
    (args.output / "reference" / "source.json").write_text(json.dumps(where, indent=1) + "\n")

    # Check: the folder loads and renders what the objects render.
    wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    a = pipe(wave, sampling_rate=16000, output_type="pt", show_progress=False).frames
    b = APVGPipeline.from_pretrained(args.output)(
        wave, sampling_rate=16000, output_type="pt", show_progress=False
    )
    if not torch.equal(a, b.frames):
        print("error: the saved folder does not reproduce the pipeline", file=sys.stderr)
        return 1
    size = sum(
        f.stat().st_size
        for sub in ("feature_extractor", "khp", "stu", "reference")
        for f in (args.output / sub).iterdir()
    )
    print(f"wrote {args.output} (components {size / 2**20:.1f} MB); reference: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
