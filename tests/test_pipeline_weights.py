"""The committed KHP of the default pipeline loads and runs (weights are in git, no download)."""

from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import AutoFeatureExtractor, AutoModel

import apvg_hf  # noqa: F401
from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.evaluation import khp_predict

KHP_DIR = Path(__file__).parents[1] / "pipelines" / "apvg-virtual-pianist" / "khp"


def test_committed_khp_loads_and_predicts():
    model = AutoModel.from_pretrained(KHP_DIR)
    assert isinstance(model, KHPModel)
    recipe = yaml.safe_load((KHP_DIR.parent / "khp.yaml").read_text())
    for key, value in recipe["model"].items():
        assert getattr(model.config, key) == value, key
    fe = AutoFeatureExtractor.from_pretrained(KHP_DIR)
    assert isinstance(fe, APVGFeatureExtractor)
    t = np.arange(2 * 16000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 261.6 * t) * (t % 0.5 < 0.25)  # a repeated C4
    feats = fe(wave, sampling_rate=16000)["input_features"][0]
    assert feats.shape == (60, 80)
    out = khp_predict(model, feats)
    assert out["keypoints"].shape == (60, 56, 2) and out["coarse"].shape == (60, 3, 32, 32)
    kp = out["keypoints"]
    assert np.isfinite(kp).all() and kp.min() > 0.05 and kp.max() < 0.95  # on screen
    assert torch.isfinite(next(model.parameters())).all()


STU_DIR = KHP_DIR.parent / "stu"


def test_committed_stu_renders_the_khp_output():
    """KHP keypoints -> heatmaps -> the committed STU: frames that look like the reference scene."""
    from apvg_hf import STUModel
    from apvg_hf.evaluation.frames import stu_render

    stu = STUModel.from_pretrained(STU_DIR)
    recipe = yaml.safe_load((KHP_DIR.parent / "stu.yaml").read_text())
    for key, value in recipe["model"].items():
        got = getattr(stu.config, key)
        assert (list(got) if isinstance(got, tuple | list) else got) == value, key
    khp = KHPModel.from_pretrained(KHP_DIR)
    feats = APVGFeatureExtractor.from_pretrained(KHP_DIR)(np.zeros(16000), sampling_rate=16000)[
        "input_features"
    ][0]
    out = khp_predict(khp, feats)
    # a plain reference: the coarse prediction upsampled stands in for a real frame of the scene
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(out["coarse"][:1]), size=128, mode="bilinear"
    )[0]
    frames = stu_render(stu, out["keypoints"], out["visibility"], out["coarse"], reference.numpy(), chunk=16)
    assert frames.shape == (30, 3, 128, 128) and torch.isfinite(frames).all()
    assert frames.min() >= 0 and frames.max() <= 1
    assert (frames - reference).abs().mean() < 0.25  # the scene is kept, not repainted from scratch


def test_embedded_default_pipeline_loads_every_way():
    """The one folder: by the task's default, APVGPipeline, each component (+ AutoModel), identically."""
    from transformers import pipeline

    from apvg_hf import AppearanceReference, APVGPipeline, STUModel, default_pipeline_path

    folder = KHP_DIR.parent
    assert Path(default_pipeline_path()) == folder
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.parent != folder and f.is_file())
    assert size < 40 * 2**20  # components: tens of MB at most
    pipe = APVGPipeline.from_pretrained(folder)
    task = pipeline("audio-to-performance-video")  # no model: the embedded default
    t = np.arange(16000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 261.6 * t) * (t % 0.5 < 0.25)).astype(np.float32)
    a = pipe(wave, sampling_rate=16000, show_progress=False)
    b = task(wave, sampling_rate=16000)
    assert a.frames.shape == (30, 128, 128, 3) and np.array_equal(a.frames, b["frames"])
    assert 40 < a.frames.mean() < 220 and a.frames.std() > 10  # a picture, not a flat field
    khp = AutoModel.from_pretrained(folder, subfolder="khp")
    assert isinstance(khp, KHPModel)
    for k, v in khp.state_dict().items():
        assert torch.equal(v, pipe.khp.state_dict()[k]), k
    for name, cls in [("stu", STUModel), ("reference", AppearanceReference)]:
        sub = cls.from_pretrained(folder, subfolder=name)
        for k, v in sub.state_dict().items():
            assert torch.equal(v, getattr(pipe, name).state_dict()[k]), (name, k)
    assert APVGFeatureExtractor.from_pretrained(folder, subfolder="feature_extractor").to_dict() == (
        pipe.feature_extractor.to_dict()
    )
