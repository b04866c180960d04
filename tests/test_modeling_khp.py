"""KHPModel: shapes, output forms, save/load, Auto classes, masking, bounded context, learning."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

import apvg_hf
from apvg_hf import APVGFeatureExtractor, KHPConfig, KHPModel
from apvg_hf.evaluation import khp_predict
from conftest import tiny_khp_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return KHPModel(tiny_khp_config()).eval()


def targets(B=2, T=12, K=56, s=16):
    g = torch.Generator().manual_seed(1)
    return dict(
        target_keypoints=torch.rand(B, T, K, 2, generator=g),
        target_visibility=(torch.rand(B, T, K, generator=g) > 0.2).float(),
        target_coarse_frames=torch.rand(B, T, 3, s, s, generator=g),
    )


def test_shapes_and_ranges(model):
    out = model(torch.randn(3, 20, 80))
    assert out.keypoints.shape == (3, 20, 56, 2)
    assert out.visibility_logits.shape == (3, 20, 56)
    assert out.coarse_frames.shape == (3, 20, 3, 16, 16)
    assert out.last_hidden_state.shape == (3, 20, 32)
    assert out.keypoints.min() >= 0 and out.keypoints.max() <= 1
    assert out.coarse_frames.min() >= 0 and out.coarse_frames.max() <= 1
    assert out.loss is None
    assert model.main_input_name == "input_features"
    assert KHPModel(tiny_khp_config(coarse_size=0))(torch.randn(1, 5, 80)).coarse_frames is None


def test_loss_with_targets_and_coarse_subset(model):
    x = torch.randn(2, 12, 80)
    out = model(x, **targets())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss > 0
    assert out.loss_terms.shape == (len(KHPModel.loss_names),) and (out.loss_terms >= 0).all()
    idx = torch.tensor([0, 5, 11])
    sub = model(x, coarse_frame_indices=idx, **targets())
    assert sub.coarse_frames.shape == (2, 3, 3, 16, 16)
    assert torch.allclose(sub.coarse_frames, out.coarse_frames[:, idx], atol=1e-6)
    perfect = model(x, target_keypoints=out.keypoints.detach(), target_visibility=torch.ones(2, 12, 56))
    assert (
        perfect.loss_terms[0] == 0 and perfect.loss_terms[1] < 1e-6 and perfect.loss_terms[2] < 1e-6
    )  # coord, heatmap, bone


def test_dict_output_equals_tuple_output(model):
    x = torch.randn(2, 12, 80)
    d = model(x, **targets(), return_dict=True)
    t = model(x, **targets(), return_dict=False)
    assert isinstance(t, tuple)
    fields = [v for v in d.values()]
    assert len(fields) == len(t)
    for a, b in zip(fields, t):
        assert torch.equal(a, b)


def test_save_load_bit_identical(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = KHPModel.from_pretrained(tmp_path).eval()
    saved = load_file(tmp_path / "model.safetensors")
    for name, p in loaded.state_dict().items():
        assert torch.equal(p, model.state_dict()[name]), name
        assert torch.equal(p, saved[name]), name
    x = torch.randn(1, 15, 80)
    assert torch.equal(model(x).keypoints, loaded(x).keypoints)
    a, b = loaded.config.to_dict(), model.config.to_dict()
    a.pop("_name_or_path"), b.pop("_name_or_path")
    assert a == b


def test_auto_classes_after_import(model, tmp_path):
    assert apvg_hf.KHPConfig is KHPConfig
    model.save_pretrained(tmp_path)
    APVGFeatureExtractor().save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), KHPConfig)
    auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(auto, KHPModel)
    x = torch.randn(1, 9, 80)
    assert torch.equal(auto.eval()(x).keypoints, model(x).keypoints)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), APVGFeatureExtractor)


def test_padding_does_not_change_real_frames(model):
    a, b = torch.randn(1, 20, 80), torch.randn(1, 13, 80)
    batch = torch.zeros(2, 20, 80)
    batch[0], batch[1, :13] = a[0], b[0]
    mask = torch.zeros(2, 20, dtype=torch.long)
    mask[0], mask[1, :13] = 1, 1
    out = model(batch, attention_mask=mask)
    assert torch.allclose(out.keypoints[0], model(a).keypoints[0], atol=1e-5)
    assert torch.allclose(out.keypoints[1, :13], model(b).keypoints[0], atol=1e-5)


def test_bounded_receptive_field(model):
    """Output at frame t depends on frames within ±receptive_field and on nothing further."""
    rf = model.config.receptive_field
    assert rf == 2 * 4 + 2 * 2
    x = torch.randn(1, 60, 80)
    t = 30
    y = x.clone()
    y[0, t + rf + 1 :] += 3 * torch.randn(60 - t - rf - 1, 80)
    y[0, : t - rf] += 3 * torch.randn(t - rf, 80)
    assert torch.allclose(model(x).keypoints[0, t], model(y).keypoints[0, t], atol=1e-6)
    z = x.clone()
    z[0, t + rf // 2] += 3 * torch.randn(80)
    assert not torch.allclose(
        model(x).keypoints[0, t], model(z).keypoints[0, t], atol=1e-6
    )  # nearer frames count


def test_chunked_inference_equals_single_pass(model):
    feats = np.random.default_rng(0).standard_normal((157, 80)).astype(np.float32)
    whole = khp_predict(model, feats, chunk=10_000)
    chunked = khp_predict(model, feats, chunk=23)
    for k in whole:
        assert np.abs(whole[k] - chunked[k]).max() < 1e-5, k


def test_a_few_steps_fit_one_batch():
    torch.manual_seed(0)
    model = KHPModel(tiny_khp_config())
    x, t = torch.randn(2, 12, 80), targets()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = model(x, **t).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_set_mean_pose_starts_there():
    model = KHPModel(tiny_khp_config()).eval()
    mean = torch.rand(56, 2) * 0.8 + 0.1
    model.set_mean_pose(mean)
    with torch.no_grad():
        model.keypoint_head.weight.zero_()
    assert torch.allclose(model(torch.randn(1, 4, 80)).keypoints[0, 2], mean, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="coarse_size"):
        KHPConfig(coarse_size=48)
    with pytest.raises(ValueError, match="divisible"):
        KHPConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="odd"):
        KHPConfig(conv_kernel_size=4)


def test_reference_conditioning(model):
    x = torch.randn(2, 10, 80)
    ref_kp, ref_fr = torch.rand(2, 56, 2), torch.rand(2, 3, 16, 16)
    alone = model(x).keypoints
    with_ref = model(x, reference_keypoints=ref_kp, reference_frames=ref_fr).keypoints
    assert not torch.allclose(alone, with_ref)
    # reference_mask=0 is the same as giving no reference; 1 the same as giving it
    mixed = model(
        x, reference_keypoints=ref_kp, reference_frames=ref_fr, reference_mask=torch.tensor([0, 1])
    ).keypoints
    assert torch.allclose(mixed[0], alone[0], atol=1e-6) and torch.allclose(mixed[1], with_ref[1], atol=1e-6)
    feats = np.random.default_rng(1).standard_normal((90, 80)).astype(np.float32)
    a = khp_predict(model, feats, ref_kp[0].numpy(), ref_fr[0].numpy(), chunk=1000)
    b = khp_predict(model, feats, ref_kp[0].numpy(), ref_fr[0].numpy(), chunk=17)
    assert np.abs(a["keypoints"] - b["keypoints"]).max() < 1e-5
