#!/usr/bin/env python
"""How well a note-aware KHP hears the notes, beside basic-pitch, and how robust it is to noise.

    python scripts/evaluate_transcription.py --model outputs/khp-notes/model \
        --dataset data/virtual_pianist_medium --split test \
        --output pipelines/apvg-virtual-pianist/transcription_results.json

1. Transcription (mir_eval note metrics, onsets within 50 ms, micro-averaged over all notes) of the
   held-out clips as they are (the training SoundFonts), and of the same notes rendered with a
   SoundFont held out of training (`--heldout-soundfont`, default Csound's GM bank), for the KHP's
   transcriber and for basic-pitch (Spotify's ONNX model, run in its own environment) on the same audio.
2. Noise robustness: each clip with white noise at `--noise-dbfs` added; the mean keypoint distance
   to the clean run (px at 128), and the transcription F1 under noise. And silence: a clip of digital
   silence gives no notes and a resting performer (largest wrist speed, px/frame at 128).
Also: onset recall by octave (where on the keyboard notes are missed), and other KHPs' transcribers
scored beside it (`--compare NAME DIR`, e.g. an earlier release).
Writes the JSON, a Markdown table beside it (same name, .md) and a recall-by-octave bar chart (_octaves.png).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.data.audio import render_notes, save_audio
from apvg_hf.data.clips import load_clips
from apvg_hf.evaluation import khp_predict
from apvg_hf.evaluation.khp import reference_for
from apvg_hf.evaluation.transcription import (
    aggregate,
    basic_pitch_transcribe,
    clip_reference_notes,
    note_metrics,
)
from apvg_hf.skeleton import INDEX


def transcribe(model, extractor, wave, sr, fps) -> list[dict]:
    feats = extractor(wave, sampling_rate=sr, fps=fps)["input_features"][0]
    return khp_predict(model, feats, fps=fps)["notes"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="a note-aware KHP folder")
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--split", default="test", choices=["validation", "test"])
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--heldout-soundfont", default="csound")
    ap.add_argument("--noise-dbfs", type=float, default=-60.0)
    ap.add_argument("--no-basic-pitch", action="store_true")
    ap.add_argument("--limit", type=int)
    ap.add_argument(
        "--compare",
        nargs=2,
        action="append",
        metavar=("NAME", "DIR"),
        default=[],
        help="another note-aware KHP whose transcriber is scored beside it (e.g. an earlier release)",
    )
    ap.add_argument("--no-plot", action="store_true", help="no recall-by-octave PNG")
    args = ap.parse_args(argv)

    model = KHPModel.from_pretrained(args.model).eval()
    if not model.uses_notes:
        ap.error(f"{args.model} is not a note-aware KHP (architecture {model.config.architecture!r})")
    extractor = APVGFeatureExtractor.from_pretrained(args.model)
    clips = load_clips(args.dataset, args.split, extractor, model.config.coarse_size, args.limit)
    sr = clips[0].meta["sampling_rate"]
    rng = np.random.default_rng(0)

    # 1. The audio sets: as in the dataset, and the same notes with the held-out SoundFont.
    sets = {"training SoundFonts": [c.waveform() for c in clips]}
    sets[f"held-out SoundFont ({args.heldout_soundfont})"] = [
        render_notes(
            clip_reference_notes(c),
            sampling_rate=sr,
            soundfont=args.heldout_soundfont,
            duration=c.num_frames / c.meta["fps"],
        )
        for c in clips
    ]
    refs = [clip_reference_notes(c) for c in clips]
    transcribers = [("KHP transcriber", model, extractor)]
    for name, folder in args.compare:
        other = KHPModel.from_pretrained(folder).eval()
        if not other.uses_notes:
            ap.error(f"--compare {folder} is not a note-aware KHP")
        transcribers.append((name, other, APVGFeatureExtractor.from_pretrained(folder)))
    rows, timings = {}, {}
    for set_name, waves in sets.items():
        for name, m, fe in transcribers:
            t = time.time()
            est = [transcribe(m, fe, w, sr, c.meta["fps"]) for w, c in zip(waves, clips)]
            timings[f"{name}, {set_name}"] = time.time() - t
            rows[f"{name} | {set_name}"] = aggregate([note_metrics(r, e) for r, e in zip(refs, est)])
        if not args.no_basic_pitch:
            with tempfile.TemporaryDirectory() as tmp:
                paths = []
                for i, w in enumerate(waves):
                    paths.append(str(Path(tmp) / f"{i}.wav"))
                    save_audio(paths[-1], w, sr)
                t = time.time()
                bp = basic_pitch_transcribe(paths)
                timings[f"basic-pitch, {set_name}"] = time.time() - t
            rows[f"basic-pitch | {set_name}"] = aggregate([note_metrics(r, e) for r, e in zip(refs, bp)])

    # 2. Noise: keypoints with noise added vs clean, at 128 px; transcription under noise.
    shifts, noisy_est = [], []
    for c, w in zip(clips, sets["training SoundFonts"]):
        ref = reference_for(c, clips)
        noise = rng.standard_normal(len(w)).astype(np.float32) * 10 ** (args.noise_dbfs / 20)
        clean, noisy = (
            khp_predict(model, extractor(x, sampling_rate=sr, fps=c.meta["fps"])["input_features"][0], *ref)
            for x in (w, w + noise)
        )
        shifts.append(np.linalg.norm(noisy["keypoints"] - clean["keypoints"], axis=-1).ravel() * 128)
        noisy_est.append(noisy["notes"])
    shifts = np.concatenate(shifts)
    rows[f"KHP transcriber | training SoundFonts + noise at {args.noise_dbfs:g} dBFS"] = aggregate(
        [note_metrics(r, e) for r, e in zip(refs, noisy_est)]
    )
    c = clips[0]
    silence = np.zeros(len(c.waveform()), np.float32)
    feats = extractor(silence, sampling_rate=sr, fps=c.meta["fps"])["input_features"][0]
    quiet = khp_predict(model, feats, *reference_for(c, clips), fps=c.meta["fps"])
    wrists = quiet["keypoints"][:, [INDEX["left_wrist"], INDEX["right_wrist"]]]
    robustness = {
        "noise_dbfs": args.noise_dbfs,
        "keypoint_shift_px128_mean": float(shifts.mean()),
        "keypoint_shift_px128_p99": float(np.percentile(shifts, 99)),
        "keypoint_shift_px128_max": float(shifts.max()),
        "silence_notes": len(quiet["notes"]),
        "silence_max_wrist_speed_px128": float(np.abs(np.diff(wrists, axis=0)).max() * 128),
    }

    meta = {
        "model": str(args.model),
        "dataset": str(args.dataset),
        "split": args.split,
        "clips": len(clips),
        "minutes": sum(c.num_frames / c.meta["fps"] for c in clips) / 60,
        "notes": sum(len(r) for r in refs),
        "soundfonts_in_split": sorted({c.meta.get("soundfont", "?") for c in clips}),
        "seconds": timings,
    }
    result = {"meta": meta, "transcription": rows, "robustness": robustness}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    md = markdown(result)
    args.output.with_suffix(".md").write_text(md)
    if not args.no_plot:
        plot_octaves(result, args.output.with_name(args.output.stem + "_octaves.png"))
    print(md)
    return result


def plot_octaves(result: dict, path: Path) -> None:
    """Onset recall per octave, one bar per transcriber, on the audio as in the dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {
        k.split(" | ")[0]: v
        for k, v in result["transcription"].items()
        if k.endswith("| training SoundFonts")
    }
    octaves = sorted({int(o) for r in rows.values() for o in r["recall_by_octave"]})
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    width = 0.8 / max(len(rows), 1)
    for i, (name, r) in enumerate(rows.items()):
        rec = [r["recall_by_octave"].get(str(o), {}).get("recall", np.nan) for o in octaves]
        ax.bar(np.arange(len(octaves)) + (i - (len(rows) - 1) / 2) * width, rec, width, label=name)
    counts = [
        next(iter(rows.values()))["recall_by_octave"].get(str(o), {}).get("reference", 0) for o in octaves
    ]
    ax.set_xticks(range(len(octaves)), [f"C{o}–B{o}\n{n} notes" for o, n in zip(octaves, counts)], fontsize=8)
    ax.set_ylim(0, 1.25)  # room for the legend above the bars
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("onset recall")
    ax.set_title(
        f"Where notes are missed: {result['meta']['split']} pieces, {result['meta']['notes']} notes",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper center", ncol=len(rows))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(result: dict) -> str:
    lines = [
        "| transcriber | audio | onset P | onset R | onset F1 | onset+offset F1 | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["transcription"].items():
        who, audio = name.split(" | ")
        lines.append(
            f"| {who} | {audio} | {r['onset']['precision']:.3f} | {r['onset']['recall']:.3f} | "
            f"**{r['onset']['f1']:.3f}** | {r['onset_offset']['f1']:.3f} | {r['onset']['reference']} |"
        )
    octaves = sorted(
        {int(o) for r in result["transcription"].values() for o in r.get("recall_by_octave", {})}
    )
    lines += [
        "",
        "Onset recall by octave (MIDI octaves: C4 = 60 is middle C; notes in the split per octave in brackets):",
        "",
        "| transcriber | audio | " + " | ".join(f"C{o}–B{o}" for o in octaves) + " |",
        "|---|---|" + "---|" * len(octaves),
    ]
    for name, r in result["transcription"].items():
        who, audio = name.split(" | ")
        cells = []
        for o in octaves:
            c = r.get("recall_by_octave", {}).get(str(o))
            cells.append(f"{c['recall']:.2f} ({c['reference']})" if c else "–")
        lines.append(f"| {who} | {audio} | " + " | ".join(cells) + " |")
    m, rb = result["meta"], result["robustness"]
    lines += [
        "",
        f"Split `{m['split']}` of `{m['dataset']}`: {m['clips']} clips, {m['minutes']:.1f} min, {m['notes']} notes "
        f"(SoundFonts in the split: {', '.join(m['soundfonts_in_split'])}). mir_eval, onsets within 50 ms, "
        "offsets within 20% of the note or 50 ms; counts summed over clips.",
        "",
        f"Noise robustness: white noise at {rb['noise_dbfs']:g} dBFS moves the keypoints by "
        f"{rb['keypoint_shift_px128_mean']:.3f} px on average at 128 × 128 (99th percentile "
        f"{rb['keypoint_shift_px128_p99']:.2f} px, largest {rb['keypoint_shift_px128_max']:.2f} px). "
        f"Digital silence: {rb['silence_notes']} notes heard, wrists move at most "
        f"{rb['silence_max_wrist_speed_px128']:.2f} px/frame at 128.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
