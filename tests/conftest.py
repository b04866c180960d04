import os
import tempfile

# Tests never reach the network, and keep their parsed-notes cache out of the user's ~/.cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("APVG_HF_CACHE", tempfile.mkdtemp(prefix="apvg_hf_test_cache_"))

import importlib.util  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).parents[1]


def load_script(name: str):
    """Import scripts/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def launch_two_processes(script: str, *args: str, timeout: int = 300):
    """`accelerate launch` two real DDP processes on CPU (gloo) running scripts/<script>.py; the
    completed process is returned after checking it exited 0."""
    import subprocess

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += [str(ROOT / "scripts" / f"{script}.py"), *args]
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def tiny_pipeline(seed: int = 0, reference_seed: int = 1):
    """An APVGPipeline of tiny random components (32x32 frames): KHP and STU from `seed`, the
    appearance reference from `reference_seed`."""
    import torch

    from apvg_hf import AppearanceReference, APVGFeatureExtractor, APVGPipeline, KHPModel, STUModel

    torch.manual_seed(seed)
    khp = KHPModel(tiny_khp_config(hidden_size=16, intermediate_size=16, coarse_channels=8)).eval()
    stu = STUModel(block_channels=(8, 8, 8), graph_hidden=4, resolution=32).eval()
    g = torch.Generator().manual_seed(reference_seed)
    ref = AppearanceReference.from_frame(
        torch.rand(3, 64, 64, generator=g), torch.rand(56, 2, generator=g), 32
    )
    return APVGPipeline(APVGFeatureExtractor(), khp, stu, ref)


def tiny_khp_config(**kw):
    """A KHPConfig small enough for tests that build models in-process."""
    from apvg_hf import KHPConfig

    base = dict(
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=48,
        attention_window=4,
        coarse_size=16,
        coarse_channels=16,
        dropout=0.0,
        heatmap_size=16,
    )
    return KHPConfig(**(base | kw))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The `tiny` preset, built once per session through the real script with 2 worker processes."""
    out = tmp_path_factory.mktemp("ds") / "tiny"
    stats = load_script("build_dataset").main(
        ["--preset", "tiny", "--output", str(out), "--num-workers", "2"]
    )
    return out, stats
