"""Differentiable keypoints -> heatmaps."""

from pathlib import Path

import numpy as np
import pytest
import torch

from apvg_hf.heatmaps import gaussian_heatmaps, heatmap_distance, keypoints_to_heatmaps, limb_heatmaps
from apvg_hf.skeleton import BONES, NUM_KEYPOINTS


def test_shapes_any_resolution_and_batch():
    kp = torch.rand(2, 3, NUM_KEYPOINTS, 2)
    assert keypoints_to_heatmaps(kp, 32).shape == (2, 3, NUM_KEYPOINTS + len(BONES), 32, 32)
    assert keypoints_to_heatmaps(kp[0, 0], 20, 36, limbs=False).shape == (NUM_KEYPOINTS, 20, 36)


def test_peak_at_the_keypoint():
    kp = torch.tensor([[[0.25, 0.75]]])  # (1, 1, 2): x = 0.25, y = 0.75
    hm = gaussian_heatmaps(kp, 64, 64, sigma=0.02)[0, 0]
    y, x = divmod(int(hm.argmax()), 64)
    assert (x, y) in {(15, 47), (16, 48), (15, 48), (16, 47)}  # pixel centres around (16, 48)
    assert 0.8 < hm.max() <= 1.0  # half a pixel off the nearest centre


def test_limb_map_follows_the_bone():
    kp = torch.tensor([[0.2, 0.5], [0.8, 0.5]])
    limb = limb_heatmaps(kp, 32, 32, sigma=0.02, bones=[(0, 1)])[0]
    assert limb[16, 6:26].min() > 0.5  # along the segment
    assert limb[4, 16] < 1e-3 and limb[16, 1] < 0.1  # far from it, and beyond its end


def test_visibility_scales_maps():
    kp = torch.rand(NUM_KEYPOINTS, 2)
    vis = torch.zeros(NUM_KEYPOINTS)
    vis[0] = 1
    hm = keypoints_to_heatmaps(kp, 16, visibility=vis)
    assert hm[1:NUM_KEYPOINTS].abs().max() == 0 and hm[0].max() > 0
    assert hm[NUM_KEYPOINTS:].abs().max() == 0  # every bone has an invisible end


def test_gradcheck_keypoints_and_limbs():
    kp = (0.2 + 0.6 * torch.rand(1, 5, 2, dtype=torch.double)).requires_grad_()
    vis = torch.rand(1, 5, dtype=torch.double)

    def render(k):
        return torch.cat(
            [
                gaussian_heatmaps(k, 7, 5, 0.15) * vis[..., None, None],
                limb_heatmaps(k, 7, 5, 0.15, [(0, 1), (1, 2), (3, 4)]),
            ],
            dim=-3,
        )

    assert torch.autograd.gradcheck(render, (kp,))
    full = (0.2 + 0.6 * torch.rand(NUM_KEYPOINTS, 2, dtype=torch.double)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda k: keypoints_to_heatmaps(k, 6, 5, sigma=0.2, limb_sigma=0.2, method="dense"), (full,)
    )


def test_heatmap_distance_equals_rendered_maps():
    a = torch.rand(4, NUM_KEYPOINTS, 2, dtype=torch.double)
    b = a + 0.03 * torch.randn_like(a)
    A = gaussian_heatmaps(a, 40, 48, 0.03).flatten(-2)
    B = gaussian_heatmaps(b, 40, 48, 0.03).flatten(-2)
    ref = ((A - B) ** 2).sum(-1) / ((A**2).sum(-1) + (B**2).sum(-1))
    assert torch.allclose(heatmap_distance(a, b, 40, 48, 0.03), ref, atol=1e-12)
    assert heatmap_distance(a, a, 32).abs().max() < 1e-12
    k = a[:1, :3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda k: heatmap_distance(k, b[:1, :3], 9, 7, 0.2), (k,))


# --- The fast (tiled, sparse) renderer against the dense maps ----------------------------------------


def _hard_keypoints(batch: tuple[int, ...], dtype=torch.double, seed: int = 0) -> torch.Tensor:
    """Random keypoints (*batch, K, 2) around and beyond the frame, with a zero-length bone, points on
    the borders and corners, and one far outside."""
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(*batch, NUM_KEYPOINTS, 2, generator=g, dtype=dtype) * 1.3 - 0.15
    a, b = BONES[20]
    kp[..., b, :] = kp[..., a, :]  # coincident bone ends
    edge = [[0.0, 0.0], [1.0, 1.0], [-0.05, 0.5], [0.5, 1.04], [3.0, -2.0], [0.999, 0.001]]
    kp[..., : len(edge), :] = torch.tensor(edge, dtype=dtype)
    return kp


def _render_with_grads(kp, vis, size, method, upstream):
    """(maps, d<maps, upstream>/d keypoints, d<maps, upstream>/d visibility)."""
    kp, vis = kp.clone().requires_grad_(), vis.clone().requires_grad_()
    maps = keypoints_to_heatmaps(kp, size, visibility=vis, method=method)
    (maps * upstream).sum().backward()
    return maps.detach(), kp.grad, vis.grad


@pytest.mark.parametrize("size, batch", [(64, (2, 2)), (128, (2,)), (256, (1,))])
def test_fast_equals_dense_values_and_gradients(size, batch):
    kp = _hard_keypoints(batch)
    vis = torch.rand(*batch, NUM_KEYPOINTS, dtype=torch.double)
    upstream = torch.randn(*batch, NUM_KEYPOINTS + len(BONES), size, size, dtype=torch.double)
    dense = _render_with_grads(kp, vis, size, "dense", upstream)
    fast = _render_with_grads(kp, vis, size, "fast", upstream)
    assert fast[0].shape == dense[0].shape == (*batch, NUM_KEYPOINTS + len(BONES), size, size)
    for f, d in zip(fast, dense):  # values, keypoint and visibility gradients (|d| up to ~2000)
        assert (f - d).abs().max() < 1e-5
    assert fast[0].count_nonzero() < 0.2 * fast[0].numel()  # only near the keypoints and bones


def test_fast_equals_dense_float32_real_poses():
    golden = np.load(Path(__file__).parent / "golden" / "default_pipeline.npz")
    kp = torch.from_numpy(golden["keypoints"][:3]).float()  # (3, K, 2)
    vis = torch.from_numpy(golden["visibility"][:3]).float()
    upstream = torch.randn(3, NUM_KEYPOINTS + len(BONES), 128, 128)
    dense = _render_with_grads(kp, vis, 128, "dense", upstream)
    fast = _render_with_grads(kp, vis, 128, "fast", upstream)
    assert (fast[0] - dense[0]).abs().max() < 1e-5
    for f, d in zip(fast[1:], dense[1:]):  # float32 sums in another order: relative
        assert (f - d).abs().max() < 1e-5 * d.abs().max()


@pytest.mark.parametrize("height, width, limbs", [(20, 36, True), (37, 50, False), (9, 7, True)])
def test_fast_equals_dense_any_size_and_broadcast_visibility(height, width, limbs):
    kp = _hard_keypoints((3,), torch.float, seed=1)
    vis = torch.rand(NUM_KEYPOINTS)  # (K,), broadcast over the batch
    args = dict(visibility=vis, sigma=0.03, limb_sigma=0.02, limbs=limbs)
    fast = keypoints_to_heatmaps(kp, height, width, method="fast", **args)
    dense = keypoints_to_heatmaps(kp, height, width, method="dense", **args)
    assert fast.shape == dense.shape and fast.is_contiguous()
    assert (fast - dense).abs().max() < 1e-5


def test_fast_maps_are_exactly_zero_far_away():
    kp = torch.full((NUM_KEYPOINTS, 2), 5.0)  # everything far outside the frame
    assert keypoints_to_heatmaps(kp, 64).abs().max() == 0
    kp[0] = torch.tensor([0.5, 0.5])
    hm = keypoints_to_heatmaps(kp, 64, limbs=False)[0]  # sigma 0.012: 0.77 px
    assert hm[32, 32] > 0.4 and hm[32, 32 + 10] == 0 and hm[:16].abs().max() == 0


def test_gradcheck_fast_renderer_with_cutoff():
    # sigma small enough that maps are cut off inside the 32 x 24 frame (several tiles per map)
    kp = _hard_keypoints((1,), seed=2).clamp(-0.1, 1.1).requires_grad_()
    vis = torch.rand(1, NUM_KEYPOINTS, dtype=torch.double).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda k, v: keypoints_to_heatmaps(k, 32, 24, visibility=v, sigma=0.04, limb_sigma=0.03),
        (kp, vis),
        fast_mode=True,
    )


def test_render_heatmaps_of_the_stu_uses_the_fast_path_with_its_widths():
    from apvg_hf.modeling_stu import STUModel

    stu = STUModel(
        block_channels=(8, 8, 8), graph_hidden=4, resolution=48, heatmap_sigma=0.02, limb_sigma=0.015
    )
    kp, vis = _hard_keypoints((2,), torch.float), torch.rand(2, NUM_KEYPOINTS)
    dense = keypoints_to_heatmaps(kp, 48, visibility=vis, sigma=0.02, limb_sigma=0.015, method="dense")
    maps = stu.render_heatmaps(kp, vis)
    assert maps.shape == dense.shape and (maps - dense).abs().max() < 1e-5
    assert maps.count_nonzero() < dense.count_nonzero()  # zero where the dense maps are < 1.5e-8
