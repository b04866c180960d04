#!/usr/bin/env python
"""Real performance videos -> a dataset in the virtual pianist's schema (the same as `apvg preprocess`).

    python scripts/preprocess.py pianist.avi -o data/fourms_pianist --performer fourms-pianist \
        --keyboard-corners 513 282 186 237 178 244 507 298

Pose comes from MediaPipe 0.10.21 Holistic in its own environment (`.venv-mediapipe`, made on first
use); see apvg_hf.data.real for the crop, the cleaning and the split by time.
"""

from __future__ import annotations

import argparse
import sys

from apvg_hf.cli import add_preprocess_arguments, cmd_preprocess


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_preprocess_arguments(ap)
    return cmd_preprocess(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
