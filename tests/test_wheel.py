"""The wheel, as a user gets it: built with `python -m build`, installed into a fresh virtual environment
outside the repository (runtime dependencies only, at the lock's versions), and the README's three lines
run offline with the embedded default pipeline that the wheel carries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apvg_hf.video_io import probe_video

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "apvg-virtual-pianist"
pytestmark = pytest.mark.slow

THREE_LINES = """\
import apvg_hf                                   # registers the task and the Auto classes
from transformers import pipeline
pipeline("audio-to-performance-video")("etude.wav", output_path="etude.mp4")
"""


def _torch_source() -> list[str]:
    """Where uv finds the CPU build of torch the lock pins: a local wheel folder, or $TORCH_INDEX."""
    links = os.environ.get("PIP_FIND_LINKS") or ("/opt/wheels" if Path("/opt/wheels").is_dir() else None)
    if links:
        return ["--find-links", links]
    if os.environ.get("TORCH_INDEX"):
        return ["--extra-index-url", os.environ["TORCH_INDEX"], "--index-strategy", "unsafe-best-match"]
    pytest.skip("no source for the CPU torch wheel: set PIP_FIND_LINKS or TORCH_INDEX")


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_wheel_in_a_fresh_venv_runs_the_three_lines_offline(tmp_path):
    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        pytest.skip("uv is not in this environment (make install puts it there)")
    # 1. Build the wheel from a copy of the tracked tree (no build/ or egg-info left in the checkout).
    src = tmp_path / "src"
    files = run(["git", "ls-files", "-z"], ROOT).split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(tmp_path / "dist"), "."], src)
    (wheel,) = (tmp_path / "dist").glob("apvg_hf-*.whl")
    import zipfile

    weights = {  # it carries the default pipeline's weights, byte for byte
        f"apvg_hf/default_pipeline/{p.relative_to(PIPELINE).as_posix()}": p.stat().st_size
        for p in PIPELINE.rglob("*.safetensors")
    }
    with zipfile.ZipFile(wheel) as z:
        packed = {i.filename: i.file_size for i in z.infolist()}
    assert weights and all(packed.get(name) == size for name, size in weights.items()), weights

    # 2. A fresh venv outside the repository: the wheel and its runtime dependencies, at the lock's versions.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    run([str(uv), "pip", "install", "-q", "--python", str(python), *_torch_source(),
         "-c", str(ROOT / "requirements" / "lock.txt"), str(wheel)], tmp_path)  # fmt: skip
    installed = run([str(uv), "pip", "freeze", "--python", str(python)], tmp_path).lower()
    for extra in ("music21", "gradio", "pytest"):
        assert f"\n{extra}==" not in f"\n{installed}", f"{extra} is not needed to generate videos"
    for needed in ("pretty-midi", "midirenderer"):  # MIDI in: reading, and rendering to audio
        assert f"\n{needed}==" in f"\n{installed}", needed

    # 3. The README's three lines, offline, in a folder that is not the repository.
    work = tmp_path / "user"
    work.mkdir()
    t = np.arange(2 * 22050) / 22050
    sf.write(
        work / "etude.wav", (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.25)).astype(np.float32), 22050
    )
    (work / "three_lines.py").write_text(THREE_LINES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "APVG_", "VIRTUAL_ENV"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp_path / "hf_home")}
    run([str(python), "three_lines.py"], work, env)
    info = probe_video(work / "etude.mp4")
    assert info["frames"] == 60 and info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["duration"] - 2.0) < 0.1
    where = run([str(python), "-c", "import apvg_hf; print(apvg_hf.default_pipeline_path())"], work, env)
    assert where.strip().startswith(str(venv)) and where.strip().endswith("apvg_hf/default_pipeline")
    # The CLI is there too.
    run([str(venv / "bin" / "apvg"), "generate", "etude.wav", "-o", "cli.mp4", "-q"], work, env)
    assert probe_video(work / "cli.mp4")["frames"] == 60


if __name__ == "__main__":  # a readable copy of the three lines for the README
    print(textwrap.dedent(THREE_LINES))
