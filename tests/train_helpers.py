"""Helpers for the trainer tests: run a trainer script in its own session and stop it the way
`timeout`, CI and schedulers do, with SIGTERM to the whole process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import ROOT


def stop_with_group_sigterm(script: str, args: list[str], out_dir: Path, timeout: float = 240) -> tuple:
    """Run scripts/<script>.py with `args` (which must write a checkpoint every step) in a new session;
    once a first checkpoint is complete (any step: older ones may be pruned already), SIGTERM the whole
    process group and wait for it. Give the run enough steps that it cannot finish before that.

    Returns (exit status, output, step of the newest checkpoint, process group id). Every process
    of the group is killed if the run does not end in time.
    """
    log = out_dir.with_name(out_dir.name + ".log")
    # the same intra-op threads as this process, so that its steps are bit-identical to ours
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, str(ROOT / "scripts" / f"{script}.py"), f"--output_dir={out_dir}", *args]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pgid = proc.pid  # a session leader: its pid is the group id
    from apvg_hf.training import latest_checkpoint

    try:
        deadline = time.time() + timeout
        while latest_checkpoint(out_dir) is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be signalled:\n{log.read_text()[-3000:]}"
        assert latest_checkpoint(out_dir) is not None, f"no first checkpoint:\n{log.read_text()[-3000:]}"
        os.killpg(pgid, signal.SIGTERM)
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    ckpt = latest_checkpoint(out_dir)
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"] if ckpt else None
    return code, log.read_text(), step, pgid


def run_script(script: str, args: list[str], timeout: float = 240) -> None:
    """Run scripts/<script>.py in a fresh process with the environment `stop_with_group_sigterm` uses, so
    runs compared bit for bit share nothing with the test process (thread pools, global torch flags)."""
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, str(ROOT / "scripts" / f"{script}.py"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def group_gone(pgid: int, wait: float = 10.0) -> bool:
    """True once no process of group `pgid` is left (DataLoader workers included)."""
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def assert_same_weights(a: Path, b: Path) -> None:
    """Two safetensors files hold bit-identical tensors."""
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    for k in x:
        assert torch.equal(x[k], y[k]), k
