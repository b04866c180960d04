#!/usr/bin/env python
"""Personalise a pipeline to one performer with the recipe in a folder (see apvg_hf.training.personalise):

    python scripts/personalise.py pipelines/fourms-pianist              # fetch, preprocess, train, assemble
    python scripts/personalise.py pipelines/fourms-pianist --no-train   # with the committed weights

Stages whose outputs exist are skipped; training resumes from its newest checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from apvg_hf.training.personalise import personalise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="a folder with personalise.yaml, e.g. pipelines/fourms-pianist")
    ap.add_argument("--no-train", action="store_true", help="use the weights already in the folder")
    args = ap.parse_args(argv)
    out = personalise(args.recipe, train_stage=not args.no_train)
    print(f"pipeline ready: {out}\n  apvg generate AUDIO --model {out} -o video.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
