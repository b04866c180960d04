"""Differentiable keypoints -> heatmaps: a Gaussian per keypoint and a soft line per bone (limb).

Coordinates are normalised image coordinates in [0, 1] (x right, y down), so one set of keypoints
renders at any resolution; `sigma` is a fraction of the image side. Everything is built from smooth
tensor operations, so gradients reach the coordinates (the KHP heatmap loss uses this, and the STU
takes these maps as input).

`keypoints_to_heatmaps` renders sparsely by default (``method="fast"``): a map is computed only on the
TILE x TILE pixel tiles within CUTOFF_SIGMAS of its keypoint or bone and is exactly zero elsewhere, where
the dense maps (``method="dense"``) are below exp(-CUTOFF_SIGMAS² / 2) = 1.5e-8. Values and gradients agree
with the dense maps to that level, at a few percent of the cost.

>>> import torch
>>> from apvg_hf.heatmaps import keypoints_to_heatmaps
>>> kp = torch.rand(2, 8, 56, 2)  # (B, T, K, 2)
>>> keypoints_to_heatmaps(kp, 32, 32).shape  # 56 keypoint maps + 60 limb maps
torch.Size([2, 8, 116, 32, 32])
>>> keypoints_to_heatmaps(kp, 16, 24, limbs=False).shape
torch.Size([2, 8, 56, 16, 24])
"""

from __future__ import annotations

import math

import torch

from .skeleton import BONES

DEFAULT_SIGMA = 0.012  # ~3 px at 256: fingertips of neighbouring fingers stay apart
DEFAULT_LIMB_SIGMA = 0.008
CUTOFF_SIGMAS = 6.0  # the fast renderer drops values below exp(-6² / 2) = 1.5e-8
TILE = 8  # the fast renderer's tile side in pixels


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
    return torch.exp(-_segment_d2(apx, apy, abx, aby) / (2 * sigma**2))  # (..., L, H, W)


def _segment_d2(apx: torch.Tensor, apy: torch.Tensor, abx: torch.Tensor, aby: torch.Tensor) -> torch.Tensor:
    """Squared distance of points p to segments [a, b], from p - a and b - a (broadcast together)."""
    denom = (abx * abx + aby * aby).clamp_min(1e-12)
    t = ((apx * abx + apy * aby) / denom).clamp(0.0, 1.0)  # position along the bone
    return (apx - t * abx) ** 2 + (apy - t * aby) ** 2


def _tile_coords(size: int, n_tiles: int, tile: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel-centre coordinates in [0, 1] of `size` pixels padded to n_tiles * tile, as (n_tiles, tile)."""
    c = (torch.arange(n_tiles * tile, device=like.device, dtype=like.dtype) + 0.5) / size
    return c.view(n_tiles, tile)


def _near_tiles(
    a: torch.Tensor, b: torch.Tensor, radius: float, height: int, width: int, tile: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tiles holding the pixels within `radius` of segments [a, b] (a == b: points), no loop.

    a, b: (N, 2) normalised ends. Returns (n, ty, tx), each (A,): segment n, tile row ty, tile column tx,
    for every (segment, tile) pair whose tile centre lies within radius + half a tile diagonal of the
    segment (so no pixel centre within radius is missed). Candidates are enumerated from each segment's
    bounding box (a ragged `repeat_interleave`), then filtered by that distance.
    """
    a, b = a.detach(), b.detach()
    tw, th = tile / width, tile / height  # a tile's size in [0, 1] units
    size = torch.tensor([tw, th], device=a.device, dtype=a.dtype)  # (x, y)
    n_tiles = torch.tensor([-(-width // tile), -(-height // tile)], device=a.device, dtype=a.dtype)
    lo = ((torch.minimum(a, b) - radius) / size).floor().nan_to_num(nan=-2.0)  # (N, 2) in tiles
    hi = ((torch.maximum(a, b) + radius) / size).floor().nan_to_num(nan=-2.0)
    first, last = lo.clamp_min(0).minimum(n_tiles).long(), hi.minimum(n_tiles - 1).clamp_min(-1).long()
    span = (last - first + 1).clamp_min(0)  # (N, 2) tiles along x and y
    count = span[:, 0] * span[:, 1]  # (N,)
    n = torch.repeat_interleave(torch.arange(a.shape[0], device=a.device), count)  # (A,)
    local = torch.arange(n.numel(), device=a.device) - (count.cumsum(0) - count)[n]
    nx = span[n, 0]
    tx, ty = first[n, 0] + local % nx, first[n, 1] + local // nx
    ab = b - a
    d2 = _segment_d2((tx + 0.5) * tw - a[n, 0], (ty + 0.5) * th - a[n, 1], ab[n, 0], ab[n, 1])  # (A,)
    keep = d2 <= (radius + 0.5 * math.hypot(tw, th)) ** 2  # tile centre near enough the segment
    return n[keep], ty[keep], tx[keep]


def _gaussian_tiles(
    points: torch.Tensor, n: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, sigma: float
) -> torch.Tensor:
    """The Gaussian of points[n] on tiles with coordinates xs, ys (A, t) -> (A, t, t), as `_profiles`."""
    p = points[n]  # (A, 2)
    gx = torch.exp(-((xs - p[:, 0:1]) ** 2) / (2 * sigma**2))  # (A, t)
    gy = torch.exp(-((ys - p[:, 1:2]) ** 2) / (2 * sigma**2))
    return gy[:, :, None] * gx[:, None, :]  # (A, t, t)


def _limb_tiles(
    a: torch.Tensor, b: torch.Tensor, n: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, sigma: float
) -> torch.Tensor:
    """The soft line of bones [a[n], b[n]] on tiles with coordinates xs, ys (A, t) -> (A, t, t)."""
    an, ab = a[n], (b - a)[n]  # (A, 2)
    apx = xs[:, None, :] - an[:, 0, None, None]  # (A, 1, t)
    apy = ys[:, :, None] - an[:, 1, None, None]  # (A, t, 1)
    d2 = _segment_d2(apx, apy, ab[:, 0, None, None], ab[:, 1, None, None])  # (A, t, t)
    return torch.exp(-d2 / (2 * sigma**2))


def _sparse_heatmaps(
    keypoints: torch.Tensor,
    height: int,
    width: int,
    visibility: torch.Tensor | None,
    sigma: float,
    limb_sigma: float,
    limbs: bool,
    tile: int = TILE,
    cutoff: float = CUTOFF_SIGMAS,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """`keypoints_to_heatmaps(method="fast")`: each map computed only on the tiles near its keypoint or
    bone (`_near_tiles`) and written into a zero frame; (..., K, 2) -> (..., K [+ L], H, W).

    `out`: (M, K [+ L], H, W) to write into (zeroed here), in any memory layout -- e.g. the
    channels-last slice of a network's input -- when H and W are multiples of `tile`."""
    batch, K = keypoints.shape[:-2], keypoints.shape[-2]
    kp = keypoints.reshape(-1, K, 2)  # (M, K, 2)
    M, L = kp.shape[0], len(BONES) if limbs else 0
    C, nty, ntx = K + L, -(-height // tile), -(-width // tile)
    xs, ys = _tile_coords(width, ntx, tile, kp), _tile_coords(height, nty, tile, kp)  # (ntx | nty, t)
    given = out is not None
    if given:
        if out.shape != (M, C, height, width) or height % tile or width % tile:
            raise ValueError(
                f"out must be ({M}, {C}, {height}, {width}) with sides multiples of {tile}, got {tuple(out.shape)}"
            )
        out.zero_()
    else:
        out = kp.new_zeros(M, C, nty * tile, ntx * tile)
    # (M, C, nty, ntx, t, t): a view of `out`'s tiles, whatever its layout
    s0, s1, s2, s3 = out.stride()
    tiles = out.as_strided((M, C, nty, ntx, tile, tile), (s0, s1, s2 * tile, s3 * tile, s2, s3))
    vis = None
    if visibility is not None:
        vis = visibility.to(kp.dtype).expand(*batch, K).reshape(M, K)

    points = kp.reshape(M * K, 2)
    n, ty, tx = _near_tiles(points, points, cutoff * sigma, height, width, tile)
    values = _gaussian_tiles(points, n, xs[tx], ys[ty], sigma)  # (A, t, t)
    if vis is not None:
        values = values * vis.reshape(-1)[n, None, None]
    tiles.index_put_((n // K, n % K, ty, tx), values.to(out.dtype))

    if limbs:
        idx = torch.tensor(BONES, device=kp.device, dtype=torch.long)  # (L, 2)
        a, b = kp[:, idx[:, 0]].reshape(M * L, 2), kp[:, idx[:, 1]].reshape(M * L, 2)
        n, ty, tx = _near_tiles(a, b, cutoff * limb_sigma, height, width, tile)
        values = _limb_tiles(a, b, n, xs[tx], ys[ty], limb_sigma)  # (A, t, t)
        if vis is not None:
            values = values * (vis[:, idx[:, 0]] * vis[:, idx[:, 1]]).reshape(-1)[n, None, None]
        tiles.index_put_((n // L, K + n % L, ty, tx), values.to(out.dtype))

    if given:
        return out
    if out.shape[-2:] != (height, width):
        out = out[..., :height, :width].contiguous()
    return out.reshape(*batch, C, height, width)


def keypoints_to_heatmaps(
    keypoints: torch.Tensor,
    height: int,
    width: int | None = None,
    visibility: torch.Tensor | None = None,
    sigma: float = DEFAULT_SIGMA,
    limb_sigma: float = DEFAULT_LIMB_SIGMA,
    limbs: bool = True,
    method: str = "fast",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Keypoints (..., K, 2) in [0, 1] -> heatmaps (..., K [+ L], H, W) in [0, 1].

    Args:
        keypoints: normalised (x, y) per keypoint, any leading batch dimensions.
        height, width: output size (width defaults to height).
        visibility: optional (..., K) weights in [0, 1] (probabilities or a 0/1 mask); a keypoint's
            map is scaled by its visibility and a limb's by the product of its two ends'.
        sigma, limb_sigma: Gaussian widths as a fraction of the image side.
        limbs: append one map per bone of the skeleton (in `skeleton.BONES` order).
        method: "fast" computes each map only near its keypoint or bone (zero where the dense map is
            below 1.5e-8; see the module docstring), "dense" over the whole frame. Both differentiable.
        out: "fast" only: write the maps into this (M, K [+ L], H, W) tensor (leading dimensions
            flattened to M; any memory layout, e.g. channels-last; H, W multiples of 8) and return it.
    """
    if keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must end in 2 coordinates, got shape {tuple(keypoints.shape)}")
    if method not in ("fast", "dense"):
        raise ValueError(f"method must be 'fast' or 'dense', got {method!r}")
    width = height if width is None else width
    if not keypoints.is_floating_point():
        keypoints = keypoints.float()
    if out is not None and method != "fast":
        raise ValueError("out= is for method='fast'")
    if method == "fast":
        return _sparse_heatmaps(keypoints, height, width, visibility, sigma, limb_sigma, limbs, out=out)
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
