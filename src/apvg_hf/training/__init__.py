"""Training helpers shared by `scripts/train_khp.py` (and the STU trainer): configs that flow from a
YAML file and `--key=value` overrides, deterministic batches for exact resume, checkpoints."""

from .checkpoints import latest_checkpoint, prune_checkpoints
from .config import apply_overrides, load_config, parse_overrides

__all__ = ["apply_overrides", "latest_checkpoint", "load_config", "parse_overrides", "prune_checkpoints"]
