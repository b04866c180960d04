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


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The `tiny` preset, built once per session through the real script with 2 worker processes."""
    out = tmp_path_factory.mktemp("ds") / "tiny"
    stats = load_script("build_dataset").main(
        ["--preset", "tiny", "--output", str(out), "--num-workers", "2"]
    )
    return out, stats
