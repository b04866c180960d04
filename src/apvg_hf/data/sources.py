"""Real footage fetched at run time from package registries (never committed).

The fourMs pianist: a 97.5 s clip (640x480, 30 fps, sound) of a pianist recorded in the fourMs lab,
University of Oslo, shipped as `musicalgestures/examples/pianist.avi` in the PyPI wheel
`musicalgestures==1.32.0` (GPL-3.0). `fetch_fourms_pianist` downloads the wheel with pip (no
dependencies, no install) and extracts the one file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

FOURMS_WHEEL = "musicalgestures==1.32.0"
FOURMS_MEMBER = "musicalgestures/examples/pianist.avi"
FOURMS_CREDIT = (
    "fourMs lab, RITMO, University of Oslo: the pianist example of the Musical Gestures Toolbox "
    "(musicalgestures 1.32.0 on PyPI), GPL-3.0"
)


def fetch_fourms_pianist(directory: str | os.PathLike = "data/real") -> Path:
    """The fourMs pianist clip at `<directory>/pianist.avi`, downloaded once (about 20 MB)."""
    directory = Path(directory)
    target = directory / "pianist.avi"
    if target.is_file() and target.stat().st_size > 0:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    wheels = sorted(directory.glob("musicalgestures-1.32.0-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               FOURMS_WHEEL, "-d", str(directory)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(directory.glob("musicalgestures-1.32.0-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {FOURMS_WHEEL} with pip:\n{proc.stderr[-2000:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        tmp = target.with_name(target.name + ".partial")
        tmp.write_bytes(z.read(FOURMS_MEMBER))
        tmp.rename(target)
    return target
