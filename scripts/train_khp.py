#!/usr/bin/env python
"""Train a KHP model (audio -> keypoints, visibility, coarse frames) with Accelerate.

    accelerate launch scripts/train_khp.py --config pipelines/apvg-virtual-pianist/khp.yaml [--key=value ...]
    # typed overrides, nested ones dotted: --steps=10 --model.hidden_size=64 --cpu=true
    # two real processes on CPU (DDP over gloo):
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no scripts/train_khp.py --config ... --steps=10
    # resume exactly where the newest checkpoint (or a named one: --resume DIR) left off:
    accelerate launch scripts/train_khp.py --config ... --resume

Ctrl-C or SIGTERM (also sent to the whole process group, as `timeout` and schedulers do) finishes the
step in progress, writes a checkpoint and exits with status 0; `--resume` continues bit for bit.
Writes `<output_dir>/model` (save_pretrained + feature extractor + the resolved config),
`<output_dir>/checkpoints/step-N`, TensorBoard logs. The config and the loop: `apvg_hf.training.khp`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from apvg_hf.training import khp


def main(argv: list[str] | None = None) -> Path | None:
    return khp.main(argv, __doc__)


if __name__ == "__main__":
    main()
    sys.exit(0)
