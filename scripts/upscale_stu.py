"""A pixel-shuffle STU at a multiple of a trained STU's resolution, starting where that STU is (the
starting point of `pipelines/apvg-virtual-pianist/stu_256.yaml`).

    python scripts/upscale_stu.py --model pipelines/apvg-virtual-pianist/stu --factor 2 \
        --output outputs/stu-256-init

The new STU runs the same network on the same maps at the old resolution; the reference enters
pixel-unshuffled and the frame leaves pixel-shuffled (`STUModel.upscaled_from`): before training it gives
the old STU's frames upsampled (nearest), blended with the full-resolution reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apvg_hf.modeling_stu import STUModel


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="a trained STU folder (save_pretrained)")
    ap.add_argument("--factor", type=int, default=2, choices=(2, 4), help="resolution multiple")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args(argv)
    if not (args.model / "config.json").exists():
        raise SystemExit(f"{args.model} is not an STU folder (no config.json)")
    try:
        big = STUModel.upscaled_from(STUModel.from_pretrained(args.model), args.factor)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    big.save_pretrained(args.output)
    c = big.config
    net = big.map_resolution
    print(
        f"{args.output}: {c.resolution} x {c.resolution}, the network at {net} (pixel_shuffle={c.pixel_shuffle})"
    )
    return args.output


if __name__ == "__main__":
    main()
