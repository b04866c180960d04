"""Differentiable keypoints -> heatmaps."""

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
        lambda k: keypoints_to_heatmaps(k, 6, 5, sigma=0.2, limb_sigma=0.2), (full,)
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
