#!/usr/bin/env python
"""How much of a real performer's wrist speed does the sound explain? A ceiling for "wrist speed r".

    python scripts/wrist_speed_audio.py --dataset data/fourms_pianist --khp pipelines/fourms-pianist/khp \
        --output pipelines/fourms-pianist/wrist_speed_audio.md

For each split, the real wrists' speed (visible in both frames, both wrists) is correlated with two
signals any audio-driven model could compute: the density of the note onsets the KHP's transcriber
hears, and the spectral flux of the features, each smoothed (Gaussian, `--smoothing` frames) and
shifted by `--lags` frames (positive: the sound leads). The best correlation over that sweep is
reported per signal (chosen per split, so it is optimistic), beside the real speed's correlation with
itself smoothed (Gaussian, σ 3 frames): how much of it is motion rather than estimator noise. Lags
wrap around within each clip (np.roll): a few frames at each clip's ends pair with the other end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.data.clips import load_clips
from apvg_hf.evaluation.real import wrist_speed
from apvg_hf.hand_anchor import gaussian_smooth
from apvg_hf.piano_roll import roll_to_notes
from apvg_hf.skeleton import INDEX


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--khp", type=Path, required=True, help="a note-aware KHP (its transcriber is used)")
    ap.add_argument("--splits", nargs="+", default=["train", "validation", "test"])
    ap.add_argument("--smoothing", type=float, nargs="+", default=[1, 3, 6])
    ap.add_argument("--lags", type=int, nargs="+", default=[-6, -3, 0, 3, 6])
    ap.add_argument("--output", type=Path, required=True, help="a Markdown table")
    args = ap.parse_args(argv)
    model = KHPModel.from_pretrained(args.khp).eval()
    fe = APVGFeatureExtractor.from_pretrained(args.khp)
    lines = [
        "| split | frames | onset density: best r (smoothing, lag) | spectral flux: best r (smoothing, lag) "
        "| real speed vs itself smoothed over 3 frames |",
        "|---|---|---|---|---|",
    ]
    for split in args.splits:
        pairs, frames = {}, 0  # (signal, smoothing, lag) -> [(x, speed)]
        for c in load_clips(args.dataset, split, fe, coarse_size=model.config.coarse_size):
            T, fps = c.num_frames, c.meta["fps"]
            frames += T
            probs = model.transcribe(torch.from_numpy(np.array(c.features)))[0].numpy()  # (T, 88, 3)
            onsets = np.zeros(T)
            for n in roll_to_notes(probs, fps, model.config.onset_threshold, model.config.frame_threshold):
                onsets[min(T - 1, int(round(n["onset"] * fps)))] += 1
            feats = np.asarray(c.features)
            flux = np.r_[0.0, np.maximum(np.diff(feats, axis=0), 0).sum(1)]
            kp, vis = np.asarray(c.keypoints), np.asarray(c.visibility)
            for w in ("left_wrist", "right_wrist"):
                speed, ok = wrist_speed(kp, vis, INDEX[w])  # (T - 1,) each
                pairs.setdefault(("self", 3, 0), []).append((gaussian_smooth(speed, 3.0)[ok], speed[ok]))
                for name, sig in (("onsets", onsets), ("flux", flux)):
                    for s in args.smoothing:
                        x = gaussian_smooth(sig, s)[1:]
                        for lag in args.lags:
                            pairs.setdefault((name, s, lag), []).append((np.roll(x, lag)[ok], speed[ok]))
        r = {}
        for key, ps in pairs.items():
            x, y = np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps])
            r[key] = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0
        cells = []
        for name in ("onsets", "flux"):
            k = max((k for k in r if k[0] == name), key=lambda k: r[k])
            cells.append(f"{r[k]:.3f} ({k[1]:g}, {k[2]:+d})")
        lines.append(f"| {split} | {frames} | {cells[0]} | {cells[1]} | {r[('self', 3, 0)]:.3f} |")
    lines += ["", "Command: `python scripts/wrist_speed_audio.py " + " ".join(argv or sys.argv[1:]) + "`", ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
