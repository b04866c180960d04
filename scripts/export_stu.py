#!/usr/bin/env python
"""The STU of a training run that stopped early (a signal or `stop_after`), from its checkpoint.

    python scripts/export_stu.py --run outputs/stu-256 [--checkpoint outputs/stu-256/checkpoints/step-000500]

Writes `<run>/model` (save_pretrained) with the run's config, `stop_after` set to the checkpoint's step:
what a finished run writes, for the weights of that step (`apvg_hf.training.stu.export_checkpoint`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apvg_hf.training.stu import export_checkpoint


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the run's output_dir")
    ap.add_argument("--checkpoint", type=Path, help="a checkpoint folder (default: the newest)")
    args = ap.parse_args(argv)
    try:
        out = export_checkpoint(args.run, args.checkpoint)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
