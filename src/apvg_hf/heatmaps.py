"""Differentiable keypoints -> heatmaps: a Gaussian per keypoint and a soft line per bone (limb).

Coordinates are normalised image coordinates in [0, 1] (x right, y down), so one set of keypoints
renders at any resolution; `sigma` is a fraction of the image side. Everything is built from smooth
tensor operations, so gradients reach the coordinates (the KHP heatmap loss uses this, and the STU
takes these maps as input).

>>> import torch
>>> from apvg_hf.heatmaps import keypoints_to_heatmaps
>>> kp = torch.rand(2, 8, 56, 2)  # (B, T, K, 2)
>>> keypoints_to_heatmaps(kp, 32, 32).shape  # 56 keypoint maps + 60 limb maps
torch.Size([2, 8, 116, 32, 32])
>>> keypoints_to_heatmaps(kp, 16, 24, limbs=False).shape
torch.Size([2, 8, 56, 16, 24])
"""

from __future__ import annotations

import torch

from .skeleton import BONES

DEFAULT_SIGMA = 0.012  # ~3 px at 256: fingertips of neighbouring fingers stay apart
DEFAULT_LIMB_SIGMA = 0.008


def _grid(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [0, 1]: (W,) for x and (H,) for y."""
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) / width
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) / height
    return xs, ys


def _profiles(
    keypoints: torch.Tensor, height: int, width: int, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The separable 1-D Gaussians of each keypoint: (..., K, W) along x and (..., K, H) along y."""
    xs, ys = _grid(height, width, keypoints)
    gx = torch.exp(-((xs - keypoints[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((ys - keypoints[..., 1:2]) ** 2) / (2 * sigma**2))
    return gx, gy


def gaussian_heatmaps(
    keypoints: torch.Tensor, height: int, width: int, sigma: float = DEFAULT_SIGMA
) -> torch.Tensor:
    """(..., K, 2) -> (..., K, H, W) unnormalised Gaussians (peak 1 at the keypoint).

    Separable: exp(-(dx² + dy²) / 2σ²) = exp(-dx²/2σ²) · exp(-dy²/2σ²), an outer product.
    """
    gx, gy = _profiles(keypoints, height, width, sigma)  # (..., K, W), (..., K, H)
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)  # (..., K, H, W)


def limb_heatmaps(
    keypoints: torch.Tensor,
    height: int,
    width: int,
    sigma: float = DEFAULT_LIMB_SIGMA,
    bones: list[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """(..., K, 2) -> (..., L, H, W): exp(-d²/2σ²), d the distance of each pixel to the bone segment."""
    bones = BONES if bones is None else bones
    idx = torch.tensor(bones, device=keypoints.device, dtype=torch.long)  # (L, 2)
    a = keypoints[..., idx[:, 0], :]  # (..., L, 2)
    b = keypoints[..., idx[:, 1], :]
    xs, ys = _grid(height, width, keypoints)
    # Broadcast x along W and y along H instead of building (..., L, H, W, 2) point tensors.
    abx, aby = (b - a)[..., 0, None, None], (b - a)[..., 1, None, None]  # (..., L, 1, 1)
    apx, apy = (
        xs - a[..., 0, None, None],
        ys[:, None] - a[..., 1, None, None],
    )  # (..., L, 1, W), (..., L, H, 1)
    denom = (abx * abx + aby * aby).clamp_min(1e-12)
    t = ((apx * abx + apy * aby) / denom).clamp(0.0, 1.0)  # (..., L, H, W) position along the bone
    d2 = (apx - t * abx) ** 2 + (apy - t * aby) ** 2
    return torch.exp(-d2 / (2 * sigma**2))


def keypoints_to_heatmaps(
    keypoints: torch.Tensor,
    height: int,
    width: int | None = None,
    visibility: torch.Tensor | None = None,
    sigma: float = DEFAULT_SIGMA,
    limb_sigma: float = DEFAULT_LIMB_SIGMA,
    limbs: bool = True,
) -> torch.Tensor:
    """Keypoints (..., K, 2) in [0, 1] -> heatmaps (..., K [+ L], H, W) in [0, 1].

    Args:
        keypoints: normalised (x, y) per keypoint, any leading batch dimensions.
        height, width: output size (width defaults to height).
        visibility: optional (..., K) weights in [0, 1] (probabilities or a 0/1 mask); a keypoint's
            map is scaled by its visibility and a limb's by the product of its two ends'.
        sigma, limb_sigma: Gaussian widths as a fraction of the image side.
        limbs: append one map per bone of the skeleton (in `skeleton.BONES` order).
    """
    if keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must end in 2 coordinates, got shape {tuple(keypoints.shape)}")
    width = height if width is None else width
    if not keypoints.is_floating_point():
        keypoints = keypoints.float()
    maps = gaussian_heatmaps(keypoints, height, width, sigma)
    if visibility is not None:
        maps = maps * visibility[..., None, None].to(maps.dtype)
    if not limbs:
        return maps
    limb = limb_heatmaps(keypoints, height, width, limb_sigma)
    if visibility is not None:
        idx = torch.tensor(BONES, device=keypoints.device, dtype=torch.long)
        v = visibility.to(limb.dtype)
        limb = limb * (v[..., idx[:, 0]] * v[..., idx[:, 1]])[..., None, None]
    return torch.cat([maps, limb], dim=-3)


def heatmap_distance(
    keypoints: torch.Tensor,
    target: torch.Tensor,
    height: int,
    width: int | None = None,
    sigma: float = DEFAULT_SIGMA,
) -> torch.Tensor:
    """Normalised squared distance between the Gaussian maps of two keypoint sets: (..., K).

    Equal to ``||A - B||² / (||A||² + ||B||²)`` for ``A, B = gaussian_heatmaps(...)`` (0 when the maps
    agree, 1 when they do not overlap), but computed from the separable 1-D profiles, so it costs
    O(H + W) per keypoint instead of O(H · W) and can be used on every frame in training.
    """
    width = height if width is None else width
    ax, ay = _profiles(keypoints, height, width, sigma)
    bx, by = _profiles(target.to(keypoints.dtype), height, width, sigma)
    aa = (ax * ax).sum(-1) * (ay * ay).sum(-1)  # ||A||²
    bb = (bx * bx).sum(-1) * (by * by).sum(-1)
    ab = (ax * bx).sum(-1) * (ay * by).sum(-1)  # <A, B>
    return ((aa + bb - 2 * ab) / (aa + bb).clamp_min(1e-12)).clamp_min(0.0)
