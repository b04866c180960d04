#!/usr/bin/env python
"""Evaluate a KHP model on held-out pieces, side by side with the baselines.

    python scripts/evaluate_khp.py --model outputs/khp-virtual-pianist/model \
        --dataset data/virtual_pianist_medium --split test --output pipelines/apvg-virtual-pianist/khp_results.json

Rows: KHP given the audio and a reference (one frame of the performer in the scene: keypoints,
coarse image and, for a note-aware KHP, the keyboard's key quads; from another clip of the same
performance), KHP given the audio alone; for a note-aware KHP also the true notes as input (what MIDI
gives), "transcribe then plan" (the virtual pianist's own planner fed the KHP's transcription) and
the planner fed the true notes (with their hands, and with the hands left to its guess, as MIDI
without hand tracks would give them); another KHP (--compare-khp, e.g. the first audio-only one); the reference
pose copied to every frame; mean pose; nearest-neighbour audio retrieval; the LSTM of *Audio to Body Dynamics*
(trained here on the same training split, or loaded with --lstm DIR); and "ground truth", whose
key-press F1 is the ceiling of the key-press decoder. Writes the JSON, a Markdown table beside it
(same name, .md) and two plots: wrist/fingertip trajectories of one test clip, and a strip of
skeleton overlays (ground truth vs KHP).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.data.clips import load_clips
from apvg_hf.evaluation import (
    LSTMBaseline,
    MeanPoseBaseline,
    NearestNeighbourBaseline,
    evaluate_predictor,
    khp_predict,
)
from apvg_hf.evaluation.khp import reference_for

COLUMNS = [
    ("body", "mpjpe_px256", "body MPJPE px↓"),
    ("hands", "mpjpe_px256", "hand MPJPE px↓"),
    ("body", "pck@0.05", "body PCK@.05↑"),
    ("hands", "pck@0.05", "hand PCK@.05↑"),
    ("body", "pck@0.1", "body PCK@.1↑"),
    ("hands", "pck@0.1", "hand PCK@.1↑"),
    ("all", "velocity_px256", "velocity err px/frame↓"),
    ("keypress", "f1", "key-press F1↑"),
    ("keypress", "note_hit_rate", "note hit rate↑"),
]


def markdown_table(rows: dict[str, dict], meta: dict) -> str:
    head = "| method | " + " | ".join(c[2] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in rows.items():
        cells = []
        for group, key, _ in COLUMNS:
            v = r[group][key]
            cells.append(f"{v:.3f}" if key in ("pck@0.05", "pck@0.1", "f1", "note_hit_rate") else f"{v:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [
        "",
        f"Split `{meta['split']}` of `{meta['dataset']}`: {meta['clips']} clips, {meta['minutes']:.1f} min, "
        f"pieces: {', '.join(meta['pieces'])}.",
        "Errors in pixels at 256 × 256 on visible keypoints; PCK thresholds are fractions of the image side. "
        "Key-press F1: strikes decoded from the keypoints vs the notes, onsets within ±2 frames; the "
        "ground-truth row is the decoder's ceiling. Note hit rate: notes with some predicted fingertip "
        "over their key within ±2 frames of the onset (no strike needed; spatial only).",
    ]
    for name, r in rows.items():
        if "coarse_l1" in r:
            notes.append(f"{name}: coarse frames, mean L1 {r['coarse_l1']:.4f} (0-1 scale).")
    notes.append(
        "Reference: keypoints (and, for KHP, the coarse frame) of one frame from another clip of the same "
        "performance (same performer and camera), never from the scored clip unless it is the only one."
    )
    return "\n".join(lines + notes) + "\n"


def plot_trajectories(path: Path, clip, preds: dict[str, np.ndarray], seconds: float = 8.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from apvg_hf.skeleton import FINGERTIPS, INDEX

    fps = clip.meta["fps"]
    n = min(clip.num_frames, int(seconds * fps))
    t = np.arange(n) / fps
    joints = [
        ("right wrist", INDEX["right_wrist"]),
        ("right index tip", FINGERTIPS["right"][1]),
        ("left wrist", INDEX["left_wrist"]),
        ("left index tip", FINGERTIPS["left"][1]),
    ]
    fig, axes = plt.subplots(len(joints), 2, figsize=(12, 2.2 * len(joints)), sharex=True)
    for r, (name, j) in enumerate(joints):
        for c, axis in enumerate("xy"):
            ax = axes[r, c]
            ax.plot(t, clip.keypoints[:n, j, c] * 256, "k-", lw=2, label="ground truth")
            for label, kp in preds.items():
                ax.plot(t, kp[:n, j, c] * 256, lw=1, label=label)
            ax.set_ylabel(f"{name}\n{axis} (px)")
    axes[0, 0].legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("time (s)")
    fig.suptitle(f"{clip.meta['piece_id']} (clip {clip.meta['clip_index']}): trajectories, held-out piece")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def skeleton_strip(path: Path, dataset: str, split: str, clip, pred: np.ndarray, frames: int = 6) -> None:
    import datasets
    from PIL import Image, ImageDraw

    from apvg_hf.data.virtual_pianist import decode_video
    from apvg_hf.skeleton import draw_skeleton

    ds = datasets.load_from_disk(str(Path(dataset) / split))
    row = next(
        r for r in ds if r["piece_id"] == clip.meta["piece_id"] and r["clip_index"] == clip.meta["clip_index"]
    )
    video = decode_video(row)
    idx = np.linspace(0, clip.num_frames - 1, frames + 2).round().astype(int)[1:-1]
    top = np.concatenate(
        [draw_skeleton(video[i], clip.keypoints[i], clip.visibility[i]) for i in idx], axis=1
    )
    bottom = np.concatenate([draw_skeleton(video[i], pred[i]) for i in idx], axis=1)
    image = Image.fromarray(np.concatenate([top, bottom], axis=0))
    draw = ImageDraw.Draw(image)
    fps = clip.meta["fps"]
    for r, label in enumerate(["ground truth", "KHP (audio + reference)"]):
        for c, i in enumerate(idx):
            x, y = c * video.shape[2] + 4, r * video.shape[1] + 4
            draw.text((x, y), f"{label}  t={i / fps:.1f}s", fill=(0, 0, 0))
    image.save(path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="a KHP folder (save_pretrained) or Hub id")
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument(
        "--train-dataset",
        type=Path,
        nargs="+",
        help="dataset folder(s) whose train split fits the baselines (default: --dataset); give the KHP's own",
    )
    ap.add_argument("--split", default="test", choices=["train", "validation", "test"])
    ap.add_argument("--output", required=True, type=Path, help="results .json (a .md and plots go beside it)")
    ap.add_argument("--baselines", default="mean,nn,lstm", help="comma list of mean,nn,lstm (or 'none')")
    ap.add_argument("--lstm", type=Path, help="load a trained LSTM baseline instead of training one")
    ap.add_argument("--lstm-steps", type=int, default=3000)
    ap.add_argument("--save-lstm", type=Path, help="save the LSTM baseline trained here to this folder")
    ap.add_argument("--limit", type=int, help="evaluate only the first N clips")
    ap.add_argument(
        "--compare-khp",
        nargs=2,
        action="append",
        metavar=("NAME", "DIR"),
        default=[],
        help="another KHP to score beside it (its own feature extractor), e.g. 'KHP v1 (audio)' DIR",
    )
    ap.add_argument("--no-planner", action="store_true", help="skip the planner baselines")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    if args.split == "train":
        print("warning: scoring on the training split is not a held-out evaluation", file=sys.stderr)

    model = KHPModel.from_pretrained(args.model).eval()
    try:
        extractor = APVGFeatureExtractor.from_pretrained(args.model)
    except OSError:
        extractor = APVGFeatureExtractor()
    clips = load_clips(args.dataset, args.split, extractor, model.config.coarse_size, args.limit)
    wanted = [] if args.baselines == "none" else [b.strip() for b in args.baselines.split(",")]
    unknown = set(wanted) - {"mean", "nn", "lstm"}
    if unknown:
        ap.error(f"unknown baselines: {sorted(unknown)}")
    train_sets = args.train_dataset or [args.dataset]
    train = [c for d in train_sets for c in load_clips(d, "train", extractor, 0)] if wanted else []

    rows, timings, preds = {}, {}, {}
    notes_model = model.uses_notes
    heard: dict[int, list] = {}  # clip index -> the notes the KHP transcribed

    def with_reference(c):
        out = khp_predict(model, c.features, *reference_for(c, clips), fps=c.meta["fps"])
        if "notes" in out:
            heard[id(c)] = out["notes"]
        return out

    name = "KHP (audio + reference)"
    t = time.time()
    rows[name] = evaluate_predictor(with_reference, clips)
    timings[name] = time.time() - t
    if notes_model:
        t = time.time()
        rows["KHP (true notes, as from MIDI, + reference)"] = evaluate_predictor(
            lambda c: khp_predict(model, c.features, *reference_for(c, clips), piano_roll=c.piano_roll()),
            clips,
        )
        timings["KHP (true notes, as from MIDI, + reference)"] = time.time() - t
    t = time.time()
    rows["KHP (audio only)"] = evaluate_predictor(lambda c: khp_predict(model, c.features), clips)
    timings["KHP (audio only)"] = time.time() - t
    for label, folder in args.compare_khp:
        other = KHPModel.from_pretrained(folder).eval()
        other_clips = load_clips(
            args.dataset,
            args.split,
            APVGFeatureExtractor.from_pretrained(folder),
            other.config.coarse_size,
            args.limit,
        )
        t = time.time()
        rows[f"{label} (audio + reference)"] = evaluate_predictor(
            lambda c, m=other, cs=other_clips: khp_predict(m, c.features, *reference_for(c, cs)), other_clips
        )
        timings[f"{label} (audio + reference)"] = time.time() - t
    if notes_model and not args.no_planner:
        from apvg_hf.evaluation.baselines import planned_keypoints

        def plan(c, notes):
            m = c.meta
            kp, _ = planned_keypoints(notes, c.num_frames, m["fps"], m["appearance"], m["camera"])
            return kp

        t = time.time()
        rows["transcribe then plan (KHP's notes -> the data generator's planner; oracle camera and body)"] = (
            evaluate_predictor(lambda c: plan(c, heard[id(c)]), clips)
        )
        timings["transcribe then plan"] = time.time() - t
        # the notes as MIDI without hand tracks gives them: which hand plays each is the planner's guess
        unhanded = {
            id(c): [{k: v for k, v in n.items() if k != "hand"} for n in c.meta["notes"]] for c in clips
        }
        rows[
            "plan from the true notes, hands guessed (the data generator's planner; oracle camera and body)"
        ] = evaluate_predictor(lambda c: plan(c, unhanded[id(c)]), clips)
        rows["plan from the true notes and hands (the data generator's planner; oracle camera and body)"] = (
            evaluate_predictor(lambda c: plan(c, c.meta["notes"]), clips)
        )
    rows["reference pose"] = evaluate_predictor(
        lambda c: np.repeat(reference_for(c, clips)[0][None], c.num_frames, 0), clips
    )
    predictors = {}
    if "mean" in wanted:
        predictors["mean pose"] = MeanPoseBaseline().fit(train)
    if "nn" in wanted:
        predictors["nearest neighbour"] = NearestNeighbourBaseline().fit(train)
    if "lstm" in wanted:
        if args.lstm:
            predictors["LSTM (Shlizerman et al.)"] = LSTMBaseline.load(args.lstm)
        else:
            torch.manual_seed(0)
            lstm = LSTMBaseline().fit(train, steps=args.lstm_steps)
            if args.save_lstm:
                lstm.save(args.save_lstm)
            predictors["LSTM (Shlizerman et al.)"] = lstm
    for name, p in predictors.items():
        t = time.time()
        rows[name] = evaluate_predictor(lambda c, p=p: p.predict(c.features), clips)
        timings[name] = time.time() - t
    rows["ground truth (decoder ceiling)"] = evaluate_predictor(lambda c: c.keypoints, clips)

    meta = {
        "model": str(args.model),
        "dataset": str(args.dataset),
        "split": args.split,
        "baselines_trained_on": [str(d) for d in train_sets] if wanted else [],
        "clips": len(clips),
        "minutes": sum(c.num_frames / c.meta["fps"] for c in clips) / 60,
        "pieces": sorted({c.meta["piece_id"] for c in clips}),
        "eval_seconds": timings,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    md = markdown_table(rows, meta)
    args.output.with_suffix(".md").write_text(md)
    print(md)
    if not args.no_plots and clips:
        clip = max(clips, key=lambda c: c.num_frames)
        khp = khp_predict(model, clip.features, *reference_for(clip, clips))["keypoints"]
        preds = {"KHP (audio + reference)": khp} | {
            n: p.predict(clip.features) for n, p in predictors.items() if n != "mean pose"
        }
        plot_trajectories(args.output.with_name(args.output.stem + "_trajectories.png"), clip, preds)
        skeleton_strip(
            args.output.with_name(args.output.stem + "_strip.png"), args.dataset, args.split, clip, khp
        )
    return {"meta": meta, "results": rows}


if __name__ == "__main__":
    main()
