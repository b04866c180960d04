"""Configs: a dataclass with defaults <- a YAML file <- `--key=value` command-line overrides.

Nested fields (a dict, like `model`) are set with dotted keys: `--model.hidden_size=128`. Values
are parsed as YAML scalars, so `--steps=100`, `--lr=3e-4`, `--mixed_precision=bf16` all work.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class C:
...     steps: int = 10
...     model: dict = field(default_factory=dict)
>>> apply_overrides(C(), {"steps": 5, "model.hidden_size": 64})
C(steps=5, model={'hidden_size': 64})
>>> parse_overrides(["--steps=3", "--model.dropout", "0.2", "--lr=3e-4", "--mixed_precision=no"])
{'steps': 3, 'model.dropout': 0.2, 'lr': 0.0003, 'mixed_precision': 'no'}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml


def parse_overrides(args: list[str]) -> dict:
    """['--a=1', '--b.c', 'x'] -> {'a': 1, 'b.c': 'x'} (values parsed as YAML)."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}: overrides look like --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ValueError(f"override --{key} has no value")
            value, i = args[i + 1], i + 1
        out[key.replace("-", "_")] = _scalar(value)
        i += 1
    return out


def _scalar(text: str):
    """A YAML scalar, but numbers YAML 1.1 reads as strings ('3e-4', '1E5') are floats, and its
    yes/no/on/off booleans stay words (`--mixed_precision=no`)."""
    if text.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return text
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(config, overrides: dict):
    """A copy of dataclass `config` with `overrides` applied; unknown keys raise a ValueError."""
    names = {f.name: f for f in dataclasses.fields(config)}
    changes: dict = {}
    for key, value in overrides.items():
        top, _, rest = key.partition(".")
        if top not in names:
            raise ValueError(f"unknown config key {key!r}; known: {', '.join(sorted(names))}")
        if rest:
            nested = dict(changes.get(top, getattr(config, top)) or {})
            nested[rest] = value
            changes[top] = nested
        else:
            changes[top] = value
    return dataclasses.replace(config, **changes)


def load_config(cls, path: str | Path | None, overrides: dict | None = None):
    """Build `cls` from its defaults, a YAML file (optional) and overrides."""
    config = cls()
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of config keys")
        config = apply_overrides(config, _flatten_top(data))
    return apply_overrides(config, overrides or {})


def _flatten_top(data: dict) -> dict:
    """YAML mapping -> overrides: nested dicts are merged key by key (`model: {a: 1}` -> `model.a`)."""
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
