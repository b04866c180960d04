#!/usr/bin/env python
"""Check the virtual pianist's kinematics over the catalogue and write JSON + Markdown.

For each piece, one performance exactly as the dataset builder makes it (its sampled tempo,
transposition, humanisation, appearance/body and camera; `--seconds` of the score): the share of notes
whose assigned fingertip is over the sounding key at the onset frame (in the image, through the
sample's camera and key geometry), the share of score notes the pianist could not play (dropped from
audio and video alike), the fastest joint (m/s at the data frame rate) and the bone-length spread.

    python scripts/check_pianist.py --output outputs/pianist_check            # keyboard + 20 chorales
    python scripts/check_pianist.py --chorales 0 --seconds 30 --output /tmp/c # quicker
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from apvg_hf import skeleton as sk
from apvg_hf.data.music import list_pieces
from apvg_hf.data.pianist import PianistConfig
from apvg_hf.data.render import APPEARANCES
from apvg_hf.data.scene import ALL_PITCHES, key_under_points, keyboard_quads
from apvg_hf.data.virtual_pianist import PerformanceSpec, perform


def check_piece(piece_id: str, seconds: float, seed: int = 0, variant: int = 0) -> dict:
    """One performance exactly as the dataset builder makes it (its own augmentation, camera, body)."""
    perf = perform(PerformanceSpec(piece_id, variant=variant, seed=seed, max_seconds=seconds))
    fps, notes = perf.spec.fps, perf.notes
    quads, pitches = keyboard_quads(perf.camera), np.array(ALL_PITCHES)
    tips = np.stack(
        [perf.joints[int(round(n.onset * fps)), sk.FINGERTIPS[n.hand][n.finger - 1]] for n in notes]
    )
    uv, _ = perf.camera.project(tips)
    over_key = key_under_points(uv, quads, pitches) == np.array([n.pitch for n in notes])
    speed = np.linalg.norm(np.diff(perf.joints, axis=0), axis=-1) * fps
    lengths = sk.bone_lengths(perf.joints)
    return {
        "piece_id": piece_id,
        "augmentation": perf.augmentation,
        "appearance": APPEARANCES[perf.appearance_id].name,
        "notes": len(notes) + perf.n_dropped,
        "played": len(notes),
        "fingertip_over_key": float(over_key.mean()),
        "dropped": perf.n_dropped / (len(notes) + perf.n_dropped),
        "max_speed": float(speed.max()),
        "fastest_joint": sk.KEYPOINT_NAMES[int(speed.max(0).argmax())],
        "bone_length_spread": float(np.abs(lengths / lengths.mean(0) - 1).max()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path, required=True, help="folder for results.json and results.md")
    ap.add_argument("--seconds", type=float, default=60.0, help="how much of each piece")
    ap.add_argument("--chorales", type=int, default=20, help="how many chorales (spread over the catalogue)")
    ap.add_argument("--keyboard", type=int, default=None, help="how many keyboard pieces (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    keyboard = list_pieces(kinds=("keyboard",))[: args.keyboard]
    chorales = list_pieces(kinds=("chorale",))
    chorales = chorales[:: max(1, len(chorales) // args.chorales)][: args.chorales] if args.chorales else []
    rows = [
        check_piece(p.piece_id, args.seconds, seed=args.seed)
        for p in tqdm(keyboard + chorales, desc="pieces")
    ]
    played = np.array([r["played"] for r in rows])
    summary = {
        "pieces": len(rows),
        "notes": int(sum(r["notes"] for r in rows)),
        "fingertip_over_key": float(np.average([r["fingertip_over_key"] for r in rows], weights=played)),
        "worst_piece_fingertip_over_key": min(r["fingertip_over_key"] for r in rows),
        "dropped": 1.0 - played.sum() / sum(r["notes"] for r in rows),
        "max_speed": max(r["max_speed"] for r in rows),
        "speed_limit": PianistConfig().speed_limit,
        "bone_length_spread": max(r["bone_length_spread"] for r in rows),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps({"summary": summary, "pieces": rows}, indent=2))
    lines = [
        "| piece | tempo | transpose | notes | fingertip over key | dropped | max speed (m/s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r['piece_id']} | {r['augmentation']['tempo']:.2f} | {int(r['augmentation']['transpose']):+d} | {r['notes']} "
            f"| {r['fingertip_over_key']:.3f} | {r['dropped']:.3f} | {r['max_speed']:.2f} |"
            for r in rows
        ),
        f"| **all {summary['pieces']}** | | | {summary['notes']} | {summary['fingertip_over_key']:.4f} | "
        f"{summary['dropped']:.3f} | {summary['max_speed']:.2f} |",
    ]
    (args.output / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main()
