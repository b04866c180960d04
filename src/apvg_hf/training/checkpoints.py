"""Checkpoint folders: `<output>/checkpoints/step-000123/`, written whole or not at all."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_PATTERN = re.compile(r"^step-(\d+)$")


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (those with `trainer_state.json`), oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.exists():
        return []
    found = [p for p in root.iterdir() if _PATTERN.match(p.name) and (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: int(_PATTERN.match(p.name).group(1)))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(output_dir)
    return dirs[-1] if dirs else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints, and any half-written ones."""
    root = Path(output_dir) / "checkpoints"
    for p in root.glob("*.partial"):
        shutil.rmtree(p, ignore_errors=True)
    for p in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
