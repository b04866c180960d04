#!/usr/bin/env python
"""Measure a real keyboard's transposition: does the instrument sound the keys it shows?

    python scripts/calibrate_keyboard.py --dataset data/fourms_pianist \
        --model pipelines/apvg-virtual-pianist/khp --output pipelines/fourms-pianist/keyboard_calibration.md

A note-aware KHP transcribes the training split's audio; for every note heard, the distance along the
keyboard from the key of that pitch (the dataset's key quads, from the corners given to `apvg
preprocess`) to the nearest visible fingertip is measured, for every transposition from -24 to +24
semitones. The smallest median distance names the transposition (a digital piano's octave shift, or a
transcriber hearing an octave off): pass it to `apvg preprocess --keyboard-transpose` (it is relative
to the transposition the dataset was made with). Training split only: nothing of the test part is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.data.clips import load_clips
from apvg_hf.data.real import fit_keyboard_transpose
from apvg_hf.piano_roll import roll_to_notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True, help="a note-aware KHP (its transcriber is used)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--output", type=Path, help="a Markdown table of the fit")
    args = ap.parse_args(argv)
    khp = KHPModel.from_pretrained(args.model).eval()
    fe = APVGFeatureExtractor.from_pretrained(args.model)
    clips = load_clips(args.dataset, args.split, fe, coarse_size=0)
    if clips[0].meta.get("keyboard_quads") is None:
        raise SystemExit(f"{args.dataset} has no keyboard quads: preprocess with --keyboard-corners")
    fps = clips[0].meta["fps"]
    notes = []
    for c in clips:
        probs = khp.transcribe(torch.from_numpy(np.array(c.features)))[0].numpy()
        notes.append(roll_to_notes(probs, fps, khp.config.onset_threshold, khp.config.frame_threshold))
    quads = np.asarray(clips[0].meta["keyboard_quads"], np.float32)
    fit = fit_keyboard_transpose(
        notes, [c.keypoints for c in clips], [c.visibility for c in clips], quads, fps
    )
    best = min(fit, key=fit.get)
    lines = [
        f"# Keyboard calibration: `{args.dataset}` ({args.split} split, {sum(map(len, notes))} notes heard "
        f"by `{args.model}`)",
        "",
        "| transpose (semitones) | median distance, key to nearest fingertip (fraction of the frame) |",
        "|---|---|",
    ] + [
        f"| {s:+d}{' ← best' if s == best else ''} | {d:.4f} |"
        for s, d in fit.items()
        if s % 2 == 0 or s == best
    ]
    lines += ["", f"Best: {best:+d} (relative to the dataset's current quads).", ""]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
