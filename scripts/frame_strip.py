"""A strip of frames from a video, as one PNG (for READMEs and model cards).

python scripts/frame_strip.py outputs/demo.mp4 -o docs/media/demo_strip.png --frames 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from apvg_hf.video_io import probe_video, read_video


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=6, help="how many frames, evenly spaced")
    ap.add_argument("--height", type=int, default=192, help="height of each frame in the strip")
    args = ap.parse_args(argv)
    n = probe_video(args.video)["frames"]
    video = read_video(args.video)  # (T, H, W, 3)
    picks = np.linspace(0, n - 1, args.frames + 2)[1:-1].round().astype(int)  # skip the very ends
    tiles = []
    for i in picks:
        im = Image.fromarray(video[i])
        tiles.append(
            np.asarray(im.resize((round(im.width * args.height / im.height), args.height), Image.LANCZOS))
        )
    gap = np.full((args.height, 4, 3), 255, np.uint8)
    strip = np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(args.output, optimize=True)
    print(f"wrote {args.output}: frames {picks.tolist()} of {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
