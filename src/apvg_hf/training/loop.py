"""The parts of a training script that every model here shares: the command line, the Accelerator,
resume, atomic checkpoints, and stopping cleanly on Ctrl-C / SIGTERM.

    cfg, args = parse_args(TrainConfig, argv, __doc__)
    accelerator = make_accelerator(cfg, out_dir)
    ...prepare models and optimizers...
    start = resume_step(accelerator, out_dir, args.resume)
    with GracefulStop() as stop:
        for step in range(start, cfg.steps):
            ...
            if why := stop.reason(accelerator, step + 1, cfg.steps, cfg.stop_after):
                save_checkpoint(accelerator, out_dir, step + 1, cfg, cfg.keep_checkpoints)
                return
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from .checkpoints import latest_checkpoint, prune_checkpoints
from .config import ConfigError, parse_config, save_config


def has_accelerator() -> bool:
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(xpu and xpu.is_available()) or torch.backends.mps.is_available()


def parse_args(cls, argv: list[str] | None, doc: str | None) -> tuple:
    """`--config FILE`, `--resume [latest|DIR]` and typed `--key=value` overrides of dataclass `cls`
    (draccus: see `config.py`). A bad key or value exits with the error (status 2), like argparse."""
    ap = argparse.ArgumentParser(
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        add_help=False,
    )
    ap.add_argument("-h", "--help", action="store_true", help="show this help and the config fields")
    ap.add_argument("--config", "--config_path", type=Path, help=f"YAML file of {cls.__name__} fields")
    ap.add_argument("--resume", nargs="?", const="latest", help="'latest' (default) or a checkpoint folder")
    args, rest = ap.parse_known_args(argv)
    if args.help:
        ap.print_help()
        print(f"\n{cls.__name__} fields (--key=value; nested ones dotted: --model.key=value):\n")
        rest = ["--help"]  # draccus prints the fields and exits
    try:
        cfg = parse_config(cls, rest, args.config)
    except (ConfigError, FileNotFoundError) as e:
        ap.error(str(e))
    return cfg, args


def make_accelerator(cfg, out_dir: Path, find_unused_parameters: bool = False) -> Accelerator:
    """An Accelerator from the config's `cpu`, `gradient_accumulation_steps` and `mixed_precision`.

    On a machine without CUDA/XPU/MPS it is created with `cpu=True`: without it, `accelerate launch
    --num_processes 2` on CPU silently runs two independent single-process trainings.
    """
    return Accelerator(
        cpu=cfg.cpu if cfg.cpu is not None else not has_accelerator(),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=None if cfg.mixed_precision == "no" else cfg.mixed_precision,
        log_with="tensorboard",
        project_dir=str(out_dir),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )


def init_run(accelerator: Accelerator, cfg, out_dir: Path, name: str) -> None:
    """Write the resolved config next to the run and start the TensorBoard tracker."""
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "train_config.yaml")
    accelerator.init_trackers(name, config=hparams(dataclasses.asdict(cfg)))


def hparams(config: dict, prefix: str = "") -> dict:
    """Nested config dict -> flat TensorBoard hyperparameters: `{"model": {"a": 1}}` -> `{"model.a": 1}`;
    lists and None become text."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out |= hparams(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = str(v) if isinstance(v, list | tuple | type(None)) else v
    return out


def resume_step(accelerator: Accelerator, out_dir: Path, resume: str | None) -> int:
    """Load the newest (or the named) checkpoint into everything prepared; return its step (0: fresh)."""
    if not resume:
        return 0
    ckpt = latest_checkpoint(out_dir) if resume == "latest" else Path(resume)
    if ckpt is None or not (ckpt / "trainer_state.json").exists():
        raise SystemExit(
            f"--resume: no complete checkpoint in {out_dir / 'checkpoints'}"
            if ckpt is None
            else f"--resume: {ckpt} is not a complete checkpoint"
        )
    accelerator.load_state(str(ckpt))
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    accelerator.print(f"resumed from {ckpt} at step {step}")
    return step


def save_checkpoint(accelerator: Accelerator, out_dir: Path, step: int, cfg, keep: int) -> Path:
    """`<out>/checkpoints/step-N`: written to `.partial`, then renamed, so a kill leaves no half."""
    final = out_dir / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".partial")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # every process writes its own RNG state
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "config": dataclasses.asdict(cfg)}))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        prune_checkpoints(out_dir, keep)
    accelerator.wait_for_everyone()
    return final


def adamw(module: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over `module`'s parameters, with weight decay on matrices and kernels only (not on biases,
    norms or embeddings' 1-D parameters)."""
    params = list(module.parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=learning_rate,
    )


def step_log(loss: float, scheduler, done: int, start: int, t0: float) -> dict[str, float]:
    """The scalars every trainer logs: loss, learning rate, steps per second since (re)start."""
    return {
        "train/loss": loss,
        "train/lr": scheduler.get_last_lr()[0],
        "train/steps_per_s": (done - start) / (time.time() - t0),
    }


def after_step(
    accelerator: Accelerator, stop: GracefulStop, cfg, out_dir: Path, done: int, bar, validate
) -> bool:
    """Validation (every `cfg.eval_every`), checkpoint (every `cfg.checkpoint_every`, and on a stop)
    after optimizer step `done`. Returns True when the run stops here (signal or `stop_after`)."""
    if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps):
        metrics = validate(done)
        if metrics:
            bar.write(
                f"step {done}: " + ", ".join(f"{k.removeprefix('val/')}={v:.3f}" for k, v in metrics.items())
            )
    why = stop.reason(accelerator, done, cfg.steps, cfg.stop_after)
    if why or (cfg.checkpoint_every and (done % cfg.checkpoint_every == 0 or done == cfg.steps)):
        save_checkpoint(accelerator, out_dir, done, cfg, cfg.keep_checkpoints)
    if why:
        bar.close()
        accelerator.print(f"stopped after step {done} ({why}); checkpoint saved, continue with --resume")
        accelerator.end_training()
        return True
    return False


class GracefulStop:
    """Ctrl-C (SIGINT) or SIGTERM sets a flag instead of killing the run, so the loop can finish the
    step and checkpoint; a second Ctrl-C stops at once. Handlers are restored on exit.

    A second SIGTERM does not: `timeout`, schedulers and launchers (`accelerate launch` forwards the
    signal it got to its child) often send several. DataLoader workers must ignore both signals
    (`worker_init_fn=ignore_stop_signals`), or a signal sent to the whole process group kills them
    and the main process fails on the dead worker instead of checkpointing.
    """

    def __enter__(self) -> GracefulStop:
        self.flag = False
        self.previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _on_signal(self, signum, frame) -> None:
        if self.flag and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.flag = True

    def requested(self, accelerator: Accelerator) -> bool:
        """True on every process when any process was signalled."""
        mine = torch.tensor(float(self.flag), device=accelerator.device)
        return accelerator.reduce(mine, reduction="sum").item() > 0

    def reason(self, accelerator: Accelerator, done: int, total: int, stop_after: int | None) -> str | None:
        """Why to stop after step `done` before `total`: 'interrupted', 'stop_after', or None."""
        if done >= total:
            return None
        if self.requested(accelerator):
            return "interrupted"
        return "stop_after" if stop_after is not None and done >= stop_after else None

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """DataLoader `worker_init_fn`: the worker ignores SIGINT and SIGTERM and leaves stopping to the
    main process (its GracefulStop), which then shuts the workers down. A worker whose main process
    is gone exits by itself (PyTorch's worker watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextmanager
def closing_loader(loader: torch.utils.data.DataLoader) -> Iterator:
    """An iterator over `loader` whose worker processes are stopped on leaving the block, however it
    is left (they would otherwise stay until the iterator is garbage-collected)."""
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)  # absent without workers
        if shutdown is not None:
            shutdown()


def save_final(accelerator: Accelerator, out_dir: Path, cfg, model, *extras) -> Path:
    """`<out>/model`: the trained model's `save_pretrained` (main process), any `extras` saved beside it
    (e.g. the feature extractor) and the resolved config; ends the run. Returns the folder."""
    accelerator.wait_for_everyone()
    model_dir = out_dir / "model"
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(model_dir)
        for extra in extras:
            extra.save_pretrained(model_dir)
        save_config(cfg, model_dir / "train_config.yaml")
        accelerator.print(f"saved {model_dir}")
    accelerator.end_training()
    return model_dir
