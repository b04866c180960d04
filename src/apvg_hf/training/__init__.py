"""Training: typed configs (draccus) that flow from a YAML recipe and `--key=value` overrides, the
shared loop pieces (Accelerator, exact resume, atomic checkpoints, stopping on a signal), and the
trainers themselves: `training.khp` (stage 1) and `training.stu` (stage 2), which the scripts call."""

from .checkpoints import latest_checkpoint, prune_checkpoints
from .config import ConfigError, kwargs_dataclass, load_config, parse_config, save_config

__all__ = [
    "ConfigError",
    "kwargs_dataclass",
    "latest_checkpoint",
    "load_config",
    "parse_config",
    "prune_checkpoints",
    "save_config",
]
