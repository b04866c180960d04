#!/usr/bin/env python
"""Train an STU (keypoint heatmaps + coarse frames + reference -> frames) with Accelerate.

    accelerate launch scripts/train_stu.py --config pipelines/apvg-virtual-pianist/stu.yaml [--key=value ...]
    # ablations: --model.use_graph=false, --model.use_gru=false, --loss.ssim=0; resume: --resume [DIR]
    # two real processes on CPU (DDP over gloo):
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no scripts/train_stu.py --config ... --steps=10

Ctrl-C or SIGTERM (also sent to the whole process group, as `timeout` and schedulers do: the
DataLoader workers ignore it) finishes the step in progress, writes a checkpoint and exits with
status 0; `--resume` continues bit for bit. Writes `<output_dir>/model` (save_pretrained),
`<output_dir>/checkpoints/step-N`, TensorBoard logs with validation images. The config, the batches
and the loop: `apvg_hf.training.stu`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from apvg_hf.training import stu


def main(argv: list[str] | None = None) -> Path | None:
    return stu.main(argv, __doc__)


if __name__ == "__main__":
    main()
    sys.exit(0)
