#!/usr/bin/env python
"""Train a note-aware KHP's transcriber alone, on piano audio rendered from the music corpus.

    python scripts/train_transcriber.py --config pipelines/apvg-virtual-pianist/khp_transcriber.yaml
    # typed overrides: --steps=10 --batch_size=4 --transpose=7; resume where it stopped: --resume
    # several processes: accelerate launch --num_processes 2 ... scripts/train_transcriber.py ...

Every window is a new performance of a corpus piece (held-out pieces never), varied, transposed up to
an octave, rendered with a training SoundFont and coloured like a recording; the rest of the KHP is
frozen. Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits with status 0.
Writes `<output_dir>/model`: the whole KHP (only the transcriber and the decoding thresholds changed).
The config and the loop: `apvg_hf.training.transcriber`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from apvg_hf.training import transcriber


def main(argv: list[str] | None = None) -> Path | None:
    return transcriber.main(argv, __doc__)


if __name__ == "__main__":
    main()
    sys.exit(0)
