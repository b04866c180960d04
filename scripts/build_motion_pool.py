#!/usr/bin/env python
"""Build a motion pool: virtual-pianist performances of every training-split corpus piece, motion and
notes only (no audio, no video), for a note-aware KHP's motion stage (`motion_pool` in its recipe).

    python scripts/build_motion_pool.py --output data/motion_pool --held-out-from data/virtual_pianist_medium \
        --keyboard-variants 8 --chorale-variants 1 --workers 2

Pieces of the validation and test splits of `--held-out-from` (and every piece outside the corpus's
training split) are never performed. A stopped build resumes: performances already written are kept.
The pool's format: `apvg_hf.data.motion_pool`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from apvg_hf.data.motion_pool import MotionPool, build_pool, pool_specs
from apvg_hf.data.virtual_pianist import held_out_pieces, training_pieces


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", required=True)
    ap.add_argument("--held-out-from", nargs="*", default=[], help="datasets whose val/test pieces to skip")
    ap.add_argument("--pieces", nargs="*", default=[], help="only these corpus pieces (quick runs)")
    ap.add_argument("--exclude", nargs="*", default=[], help="further pieces never performed")
    ap.add_argument("--keyboard-variants", type=int, default=8)
    ap.add_argument("--chorale-variants", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=40.0, help="excerpt length, in score seconds")
    ap.add_argument("--transpose", type=int, default=12)
    ap.add_argument("--coarse-size", type=int, default=32, help="the KHP's coarse frame size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    if args.keyboard_variants < 0 or args.chorale_variants < 0 or args.max_seconds <= 0:
        ap.error("variants must be >= 0 and --max-seconds > 0")

    pieces = training_pieces(held_out_pieces(args.held_out_from), args.exclude, args.pieces)
    specs = pool_specs(
        pieces,
        {"keyboard": args.keyboard_variants, "chorale": args.chorale_variants},
        seed=args.seed,
        max_seconds=args.max_seconds,
        transpose=args.transpose,
        coarse_size=args.coarse_size,
    )
    t0 = time.time()
    out = build_pool(args.output, specs, workers=args.workers)
    pool = MotionPool(out)
    summary = {
        "performances": len(pool),
        "minutes": round(pool.seconds / 60, 1),
        "pieces": {k: len(v) for k, v in pieces.items()},
        "build_seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(summary))
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
