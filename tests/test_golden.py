"""Golden regression test of the committed default pipeline: keypoints and frames for the first 4 s of the
bundled example, stored small in tests/golden/, compared within a stated tolerance.

Random, retrained-without-update or otherwise changed weights fail it (the last two tests show that it
rejects a freshly initialised STU or KHP). After an intended change of the default pipeline, refresh:

    .venv/bin/python tests/test_golden.py --update
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLE = ROOT / "spaces_demo" / "examples" / "mozart_k458_movement1.ogg"
SECONDS = 2.0
FRAMES = (0, 30, 59)  # which frames are stored as PNG
KEYPOINT_ATOL = 1e-3  # normalised units: 0.13 px at 128 (fp32 kernels differ by ~1e-6 across CPUs)
MIN_PSNR_DB = 40.0  # stored vs generated frames (uint8 rounding and CPU kernels: > 50 dB in practice)


def generate(pipe=None):
    """The default pipeline on the first `SECONDS` of the example -> (keypoints, visibility, frames)."""
    from apvg_hf import APVGPipeline, default_pipeline_path
    from apvg_hf.video_io import load_audio

    pipe = pipe or APVGPipeline.from_pretrained(default_pipeline_path())
    wave, sr = load_audio(EXAMPLE)
    out = pipe(wave[: int(SECONDS * sr)], sampling_rate=sr, show_progress=False)
    return out.keypoints, out.visibility, out.frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def check(keypoints: np.ndarray, visibility: np.ndarray, frames: np.ndarray) -> None:
    """Raise AssertionError unless the outputs match the stored ones within the tolerances above."""
    stored = np.load(GOLDEN / "default_pipeline.npz")
    assert keypoints.shape == stored["keypoints"].shape, keypoints.shape
    err = np.abs(keypoints - stored["keypoints"]).max()
    assert err <= KEYPOINT_ATOL, f"keypoints differ from the golden ones by up to {err:.4f}"
    assert np.abs(visibility - stored["visibility"]).max() <= 1e-3, "visibility differs"
    for t in FRAMES:
        gold = np.asarray(Image.open(GOLDEN / f"frame_{t:03d}.png").convert("RGB"))
        db = psnr(frames[t], gold)
        assert db >= MIN_PSNR_DB, f"frame {t}: {db:.1f} dB against the golden frame (need {MIN_PSNR_DB})"


@pytest.fixture(scope="module")
def default_pipe():
    from apvg_hf import APVGPipeline, default_pipeline_path

    return APVGPipeline.from_pretrained(default_pipeline_path())


def test_default_pipeline_matches_the_golden_outputs(default_pipe):
    check(*generate(default_pipe))


def test_golden_rejects_an_untrained_stu(default_pipe):
    from apvg_hf import STUModel

    torch.manual_seed(0)
    fresh = STUModel.from_config(default_pipe.stu.config).eval()
    pipe = type(default_pipe)(default_pipe.feature_extractor, default_pipe.khp, fresh, default_pipe.reference)
    with pytest.raises(AssertionError, match=r"frame 0: .* dB"):
        check(*generate(pipe))


def test_golden_rejects_an_untrained_khp(default_pipe):
    from apvg_hf import KHPModel

    torch.manual_seed(0)
    fresh = KHPModel(default_pipe.khp.config).eval()
    pipe = type(default_pipe)(default_pipe.feature_extractor, fresh, default_pipe.stu, default_pipe.reference)
    with pytest.raises(AssertionError, match="keypoints differ"):
        check(*generate(pipe))


def update() -> None:
    keypoints, visibility, frames = generate()
    GOLDEN.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN / "default_pipeline.npz", keypoints=keypoints, visibility=visibility)
    for t in FRAMES:
        Image.fromarray(frames[t]).save(GOLDEN / f"frame_{t:03d}.png", optimize=True)
    check(keypoints, visibility, frames)
    print(f"wrote {GOLDEN}: keypoints {keypoints.shape}, frames {FRAMES}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_golden.py --update")
    update()
