"""scripts/train_khp.py: a short CPU run, exact resume, two real processes, clear errors; and
scripts/evaluate_khp.py on the result."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

import apvg_hf  # noqa: F401  (registers the Auto classes)
from apvg_hf import KHPModel
from conftest import ROOT, launch_two_processes, load_script

TINY = [
    "--model.hidden_size=32",
    "--model.num_layers=1",
    "--model.num_heads=2",
    "--model.intermediate_size=48",
    "--model.coarse_size=16",
    "--model.coarse_channels=16",
    "--batch_size=2",
    "--window_frames=40",
    "--coarse_frames=8",
    "--eval_clips=2",
    "--log_every=1",
    "--warmup_steps=1",
]


@pytest.fixture(scope="module")
def train_script():
    return load_script("train_khp")


def run(train_script, dataset, out, *extra):
    return train_script.main([f"--dataset={dataset}", f"--output_dir={out}", *TINY, *extra])


def test_two_step_run_saves_a_loadable_model(train_script, tiny_dataset, tmp_path):
    model_dir = run(
        train_script, tiny_dataset[0], tmp_path, "--steps=2", "--eval_every=2", "--checkpoint_every=2"
    )
    assert isinstance(AutoModel.from_pretrained(model_dir), KHPModel)
    assert (model_dir / "preprocessor_config.json").exists() and (model_dir / "train_config.yaml").exists()
    assert (tmp_path / "checkpoints" / "step-000002" / "trainer_state.json").exists()
    assert list((tmp_path / "khp").glob("events.out.tfevents.*")), "no TensorBoard log"


def test_resume_is_exact(train_script, tiny_dataset, tmp_path):
    """4 steps straight == 2 steps, stop, resume for 2 more: bit-identical weights (dropout on)."""
    common = ["--steps=4", "--eval_every=0", "--checkpoint_every=0", "--model.dropout=0.2"]
    straight = run(train_script, tiny_dataset[0], tmp_path / "a", *common)
    assert run(train_script, tiny_dataset[0], tmp_path / "b", *common, "--stop_after=2") is None
    resumed = train_script.main(
        [f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'b'}", *TINY, *common, "--resume"]
    )
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ref = load_file(tmp_path / "b" / "checkpoints" / "step-000002" / "model.safetensors")
    assert any(not torch.equal(a[k], ref[k]) for k in a)  # and the resumed steps did train


def test_two_real_processes(tiny_dataset, tmp_path):
    proc = launch_two_processes(
        "train_khp",
        f"--dataset={tiny_dataset[0]}",
        f"--output_dir={tmp_path}",
        *TINY,
        "--steps=2",
        "--eval_every=2",
        "--checkpoint_every=2",
    )
    ckpt = tmp_path / "checkpoints" / "step-000002"
    assert (ckpt / "random_states_0.pkl").exists() and (ckpt / "random_states_1.pkl").exists()
    assert proc.stdout.count("saved ") == 1  # only the main process saves
    assert isinstance(AutoModel.from_pretrained(tmp_path / "model"), KHPModel)


def test_clear_errors(train_script, tiny_dataset, tmp_path):
    with pytest.raises(SystemExit):
        train_script.main([f"--output_dir={tmp_path}", "--no_such_key=1"])
    with pytest.raises(FileNotFoundError, match="build_dataset"):
        train_script.main(
            [f"--dataset={tmp_path / 'missing'}", f"--output_dir={tmp_path}", *TINY, "--steps=1"]
        )
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        run(train_script, tiny_dataset[0], tmp_path / "fresh", "--steps=1", "--resume")


def test_evaluate_script_with_baselines(train_script, tiny_dataset, tmp_path):
    model_dir = run(
        train_script, tiny_dataset[0], tmp_path / "run", "--steps=1", "--eval_every=0", "--checkpoint_every=0"
    )
    out = tmp_path / "eval" / "results.json"
    load_script("evaluate_khp").main(
        [
            "--model",
            str(model_dir),
            "--dataset",
            str(tiny_dataset[0]),
            "--output",
            str(out),
            "--lstm-steps",
            "3",
        ]
    )
    result = json.loads(out.read_text())
    rows = result["results"]
    assert set(rows) == {
        "KHP (audio + reference)",
        "KHP (audio only)",
        "reference pose",
        "mean pose",
        "nearest neighbour",
        "LSTM (Shlizerman et al.)",
        "ground truth (decoder ceiling)",
    }
    for name, r in rows.items():
        assert 0 <= r["hands"]["pck@0.05"] <= 1 and 0 <= r["keypress"]["f1"] <= 1, name
    assert rows["ground truth (decoder ceiling)"]["hands"]["mpjpe"] == 0
    assert result["meta"]["split"] == "test" and "bach/bwv846" in result["meta"]["pieces"]
    assert "| KHP (audio only) |" in out.with_suffix(".md").read_text()
    assert (tmp_path / "eval" / "results_trajectories.png").stat().st_size > 10_000
    assert (tmp_path / "eval" / "results_strip.png").stat().st_size > 1_000


def test_interrupt_saves_a_checkpoint_and_resumes(tiny_dataset, tmp_path):
    """SIGINT mid-run: the step in progress finishes, a checkpoint is written, the process exits 0."""
    import signal
    import time

    cmd = [
        sys.executable, str(ROOT / "scripts" / "train_khp.py"), f"--dataset={tiny_dataset[0]}",
        f"--output_dir={tmp_path}", *TINY, "--steps=100000", "--eval_every=0", "--checkpoint_every=0",
    ]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 120
    while not (tmp_path / "khp").exists() and time.time() < deadline:  # trackers start right before training
        time.sleep(0.5)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    assert "interrupted" in out
    from apvg_hf.training import latest_checkpoint

    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and json.loads((ckpt / "trainer_state.json").read_text())["step"] > 0


def test_fine_tune_from_a_saved_model_on_several_datasets(train_script, tiny_dataset, tmp_path):
    first = run(
        train_script, tiny_dataset[0], tmp_path / "a", "--steps=1", "--eval_every=0", "--checkpoint_every=0"
    )
    d = tiny_dataset[0]
    tuned = train_script.main(
        [f"--dataset=[{d}, {d}]", f"--output_dir={tmp_path / 'b'}", f"--init_from={first}", *TINY[6:]]
        + ["--steps=1", "--eval_every=0", "--checkpoint_every=0", "--learning_rate=0"]
    )
    a, b = load_file(first / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the weights it started from, unchanged
