"""Pipeline, components and dataset through the Hub: push with model cards, pull, load, compare bit for bit.

The real `huggingface_hub` client talks to the Hub-protocol test server of `hub_server.py`.
"""

from pathlib import Path

import diffusers  # noqa: F401  (imported before the hub fixture patches import-time constants)
import numpy as np
import pytest
import torch
import transformers
from huggingface_hub import HfApi, ModelCard, snapshot_download

import apvg_hf  # noqa: F401
import conftest
import hub_server
from apvg_hf import APVGPipeline, KHPModel, STUModel
from apvg_hf.cli import main as cli

local_hub = hub_server.local_hub
backoff_sleeps = hub_server.backoff_sleeps
DEFAULT = Path(__file__).parents[1] / "pipelines" / "apvg-virtual-pianist"


def tiny_pipeline(seed=0) -> APVGPipeline:
    return conftest.tiny_pipeline(seed, reference_seed=seed)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_frames_close(a: np.ndarray, b: np.ndarray) -> None:
    """uint8 frames of the same weights: equal up to one level where float rounding lands differently."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def wave(seconds=1.0):
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 330 * t) * (t % 0.3 < 0.15)).astype(np.float32)


def test_pipeline_round_trip(local_hub):
    pipe = tiny_pipeline()
    url = pipe.push_to_hub("tester/apvg-tiny")
    assert "tester/apvg-tiny" in url
    files = set(HfApi().list_repo_files("tester/apvg-tiny"))
    assert {"model_index.json", "config.json", "README.md", "stu/diffusion_pytorch_model.safetensors",
            "khp/model.safetensors", "reference/diffusion_pytorch_model.safetensors",
            "feature_extractor/preprocessor_config.json"} <= files  # fmt: skip
    lfs = {p for (m, p) in local_hub.requests if m == "PUT"}
    assert len(lfs) >= 3  # the three safetensors went through LFS
    card = ModelCard.load("tester/apvg-tiny")
    assert card.data.library_name == "apvg-hf" and card.data.pipeline_tag == "other"
    assert "audio-to-performance-video" in card.data.tags and card.data.datasets

    pulled = APVGPipeline.from_pretrained("tester/apvg-tiny")
    for name in ("khp", "stu", "reference"):
        assert same_weights(getattr(pulled, name), getattr(pipe, name)), name
    a = pipe(wave(), sampling_rate=16000, output_type="pt", show_progress=False).frames
    b = pulled(wave(), sampling_rate=16000, output_type="pt", show_progress=False).frames
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # weights bit for bit; outputs within 1e-5
    task = transformers.pipeline("audio-to-performance-video", model="tester/apvg-tiny")
    ref = pipe(wave(), sampling_rate=16000, show_progress=False).frames
    assert_frames_close(task(wave(), sampling_rate=16000)["frames"], ref)
    generic = diffusers.DiffusionPipeline.from_pretrained("tester/apvg-tiny")  # the generic class, by Hub id
    assert isinstance(generic, APVGPipeline) and same_weights(generic.stu, pipe.stu)
    assert same_weights(STUModel.from_pretrained("tester/apvg-tiny", subfolder="stu"), pipe.stu)
    assert same_weights(transformers.AutoModel.from_pretrained("tester/apvg-tiny", subfolder="khp"), pipe.khp)


def test_components_push_with_cards(local_hub):
    pipe = tiny_pipeline(1)
    pipe.stu.push_to_hub("tester/stu-tiny")
    pipe.khp.push_to_hub("tester/khp-tiny", feature_extractor=pipe.feature_extractor)
    assert same_weights(STUModel.from_pretrained("tester/stu-tiny"), pipe.stu)
    assert same_weights(KHPModel.from_pretrained("tester/khp-tiny"), pipe.khp)
    fe = transformers.AutoFeatureExtractor.from_pretrained("tester/khp-tiny")
    assert fe.to_dict() == pipe.feature_extractor.to_dict()
    for repo, tag in [("tester/stu-tiny", "stu"), ("tester/khp-tiny", "khp")]:
        card = ModelCard.load(repo)
        assert tag in card.data.tags and "## Usage" in card.text and "## Evaluation" in card.text


def test_interrupted_upload_leaves_the_repo_as_it_was(local_hub, backoff_sleeps, tmp_path):
    pipe = tiny_pipeline(2)
    pipe.push_to_hub("tester/apvg-flaky")
    before = local_hub.head("tester/apvg-flaky")
    retrained = tiny_pipeline(3)
    local_hub.fail_next_lfs_uploads(100)  # every attempt of every LFS upload drops mid-body
    with pytest.raises(RuntimeError, match="Error while uploading"):
        retrained.push_to_hub("tester/apvg-flaky")
    assert local_hub.head("tester/apvg-flaky") == before  # no commit with missing weights
    assert len(backoff_sleeps) >= 5  # the client retried before giving up
    pulled = APVGPipeline.from_pretrained("tester/apvg-flaky")
    assert same_weights(pulled.stu, pipe.stu)  # still the old, complete model
    local_hub.fail_next_lfs_uploads(1)  # one drop: the client retries and succeeds
    retrained.push_to_hub("tester/apvg-flaky")
    assert local_hub.head("tester/apvg-flaky") != before
    assert same_weights(APVGPipeline.from_pretrained("tester/apvg-flaky").stu, retrained.stu)


def test_interrupted_download_never_gives_a_half_model(local_hub, backoff_sleeps, tmp_path):
    tiny_pipeline(4).push_to_hub("tester/apvg-dl")
    local_hub.fail_next_downloads(100, after_bytes=1000)
    with pytest.raises(OSError, match="could not download tester/apvg-dl"):
        APVGPipeline.from_pretrained("tester/apvg-dl")
    cache = tmp_path / "hf_home"
    assert not list(cache.rglob("*.incomplete"))
    local_hub.fail_next_downloads(1, after_bytes=1000)  # one drop: resumed or restarted, then complete
    pulled = APVGPipeline.from_pretrained("tester/apvg-dl")
    assert same_weights(pulled.stu, tiny_pipeline(4).stu)


def test_embedded_default_through_the_hub_and_the_cli(local_hub, tmp_path, capsys):
    assert cli(["push", str(DEFAULT), "tester/apvg-virtual-pianist"]) == 0
    assert "pushed" in capsys.readouterr().out
    local = Path(snapshot_download("tester/apvg-virtual-pianist"))
    for f in DEFAULT.rglob("*.safetensors"):
        assert (local / f.relative_to(DEFAULT)).read_bytes() == f.read_bytes(), f
    assert ModelCard.load("tester/apvg-virtual-pianist").data.library_name == "apvg-hf"
    task = transformers.pipeline("audio-to-performance-video", model="tester/apvg-virtual-pianist")
    here = APVGPipeline.from_pretrained(DEFAULT)
    assert_frames_close(task(wave(0.5), sampling_rate=16000)["frames"],
                        here(wave(0.5), sampling_rate=16000, show_progress=False).frames)  # fmt: skip


def test_dataset_push_and_load(local_hub, tiny_dataset, capsys):
    import datasets

    folder, _ = tiny_dataset
    assert cli(["push", str(folder), "tester/vp-tiny", "--dataset"]) == 0
    local = datasets.load_from_disk(str(folder))
    pulled = datasets.load_dataset("tester/vp-tiny")
    assert set(pulled) == set(local)
    for split in local:
        assert len(pulled[split]) == len(local[split])
        assert pulled[split][0]["piece_id"] == local[split][0]["piece_id"]
        assert pulled[split][0]["keypoints"] == local[split][0]["keypoints"]
    readme = HfApi().hf_hub_download("tester/vp-tiny", "README.md", repo_type="dataset")
    assert "clips" in Path(readme).read_text()
