"""Typed training configs with draccus: a dataclass with defaults <- a YAML file <- `--key=value`.

Every field has a type, and values are checked against it: `--steps=abc` is an error, `--cpu=no` is
False, `--lr=3e-4` a float. Nested dataclasses take dotted keys (`--model.hidden_size=128`), in a YAML
file they are mappings (`model: {hidden_size: 128}`). An unknown key, on the command line or in the
file, is an error that names the known ones.

>>> from apvg_hf.training.khp import TrainKHPConfig
>>> cfg = parse_config(TrainKHPConfig, ["--steps=5", "--cpu=no", "--model.hidden_size", "64"])
>>> cfg.steps, cfg.cpu, cfg.model.hidden_size, cfg.mixed_precision
(5, False, 64, 'no')
>>> parse_config(TrainKHPConfig, ["--model.hiden_size=64"])
Traceback (most recent call last):
...
apvg_hf.training.config.ConfigError: unknown config key 'model.hiden_size'; the keys of model are ...
>>> parse_config(TrainKHPConfig, ["--steps=abc"])
Traceback (most recent call last):
...
apvg_hf.training.config.ConfigError: `steps`: Couldn't parse 'abc' into an int ...
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import typing
from pathlib import Path
from typing import Literal

import draccus
import yaml
from draccus.parsers.decoding import decode
from draccus.utils import DecodingError, DraccusException, ParsingError

MixedPrecision = Literal["no", "fp16", "bf16"]


def _decode_mixed_precision(raw, path=()) -> str:
    """YAML 1.1 reads an unquoted `no` as False: take it as "no"."""
    value = "no" if raw is False else raw
    if value not in typing.get_args(MixedPrecision):
        raise DecodingError(path, f"mixed_precision must be one of no, fp16, bf16; got {raw!r}")
    return value


decode.register(MixedPrecision, _decode_mixed_precision)


class ConfigError(ValueError):
    """A config that does not fit its dataclass: an unknown key, a value of the wrong type."""


def kwargs_dataclass(
    target, name: str | None = None, exclude: tuple[str, ...] = (), module: str | None = None
) -> type:
    """A dataclass of the keyword arguments of `target` (a class or function): their names, types
    and defaults, so configs of a model are typed and checked like the rest (`**kwargs` is left out).
    Pass `module=__name__` where the class is assigned, so that it pickles.

    >>> class Net:
    ...     def __init__(self, width: int = 8, blocks: tuple[int, ...] = (1, 2), **kwargs): ...
    >>> Args = kwargs_dataclass(Net)
    >>> Args(width=4)
    NetArgs(width=4, blocks=(1, 2))
    """
    fn = target.__init__ if inspect.isclass(target) else target
    params = list(inspect.signature(fn, eval_str=True).parameters.values())
    if inspect.isclass(target):
        params = params[1:]  # self
    specs = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in exclude:
            continue
        if p.default is p.empty or p.annotation is p.empty:
            raise TypeError(f"{target.__name__}: argument {p.name!r} needs a type annotation and a default")
        specs.append((p.name, p.annotation, dataclasses.field(default=p.default)))
    name = name or f"{target.__name__}Args"
    cls = dataclasses.make_dataclass(name, specs)
    cls.__doc__ = f"The keyword arguments of `{target.__module__}.{target.__qualname__}`."
    if module:
        cls.__module__ = module
    return cls


def _field_types(cls) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _check_key(cls, key: str) -> None:
    """Raise a ConfigError naming the known keys if dotted `key` is not a field of dataclass `cls`."""
    parts, t = key.split("."), cls
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        if not (dataclasses.is_dataclass(t) and isinstance(t, type)):
            raise ConfigError(f"config key {key!r}: {where} takes a value, not sub-keys")
        types = _field_types(t)
        if part not in types:
            of = f"the keys of {where} are" if where else "known keys:"
            raise ConfigError(f"unknown config key {key!r}; {of} {', '.join(sorted(types))}")
        t = types[part]


def _mapping_keys(cls, data: dict, prefix: str = "") -> list[str]:
    """The dotted keys of a YAML mapping, descending into the fields that are dataclasses."""
    types = _field_types(cls)
    keys = []
    for k, v in data.items():
        t = types.get(k)
        if dataclasses.is_dataclass(t) and isinstance(v, dict):
            keys += _mapping_keys(t, v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


def _arg_keys(args: list[str]) -> list[str]:
    """['--a=1', '--b.c', 'x'] -> ['a', 'b.c']."""
    keys = []
    for arg in args:
        if arg.startswith("--"):
            keys.append(arg[2:].partition("=")[0])
        elif not keys:
            raise ConfigError(f"unexpected argument {arg!r}: overrides look like --key=value")
    return keys


def parse_config(cls, args: list[str] | tuple[str, ...] = (), config_path: str | Path | None = None):
    """Build dataclass `cls` from its defaults, a YAML file (optional) and `--key=value` overrides.

    Raises a ConfigError for an unknown key or a value that does not fit the field's type.
    """
    args = list(args)
    if config_path is not None:
        config_path = Path(config_path)
        if not config_path.exists():
            raise FileNotFoundError(f"config file {config_path} does not exist")
        data = yaml.safe_load(config_path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path} must hold a mapping of config keys")
        for key in _mapping_keys(cls, data):
            _check_key(cls, key)
    if "-h" not in args and "--help" not in args:
        for key in _arg_keys(args):
            _check_key(cls, key)
    try:
        return draccus.parse(cls, config_path=config_path, args=args, exit_on_error=False)
    except (DecodingError, ParsingError, DraccusException) as e:
        cause = f" ({e.__cause__})" if e.__cause__ else ""
        raise ConfigError(f"{e}{cause}") from e
    except Exception as e:  # argparse errors (a value not among a field's choices)
        if type(e).__name__ == "ArgumentError":
            raise ConfigError(str(e)) from e
        raise


def load_config(cls, path: str | Path, args: list[str] | tuple[str, ...] = ()):
    """A config saved by `save_config` (or a recipe), with optional overrides."""
    return parse_config(cls, args, path)


def dump_config(config) -> str:
    """The config as YAML text, every field written out, in field order."""
    stream = io.StringIO()
    draccus.dump(config, stream, sort_keys=False)
    return stream.getvalue()


def save_config(config, path: str | Path) -> None:
    """Write the config as YAML; `load_config(type(config), path) == config`."""
    Path(path).write_text(dump_config(config))
