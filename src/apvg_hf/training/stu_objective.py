"""What the STU is trained against: L1 + SSIM + temporal consistency + a (temporal) PatchGAN.

The discriminator sees the frame, optionally the frame before it (a temporal PatchGAN: it can
call out flicker and jumps), and two pose maps (the max over keypoint maps and over limb maps),
so it judges whether the frame fits the pose. It is a training-only module (not saved with the STU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.frames import ssim


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN: stride-2 convs -> a (N, 1, H/2^layers, W/2^layers) map of real/fake scores.

    >>> d = PatchDiscriminator(frames=2, channels=8, layers=3)
    >>> d(torch.rand(2, 3 * 2 + 2, 64, 64)).shape
    torch.Size([2, 1, 8, 8])
    """

    def __init__(self, frames: int = 2, channels: int = 32, layers: int = 3):
        super().__init__()
        cin, mods = 3 * frames + 2, []
        for i in range(layers):
            cout = channels * 2 ** min(i, 3)
            mods += [nn.Conv2d(cin, cout, 4, stride=2, padding=1)]
            if i:
                mods += [nn.GroupNorm(min(8, cout), cout)]
            mods += [nn.LeakyReLU(0.2)]
            cin = cout
        mods += [nn.Conv2d(cin, 1, 3, padding=1)]
        self.net = nn.Sequential(*mods)
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pose_maps(heatmaps: torch.Tensor, num_keypoints: int) -> torch.Tensor:
    """(..., K + L, H, W) -> (..., 2, H, W): the max over keypoint maps and over limb maps."""
    return torch.stack(
        [heatmaps[..., :num_keypoints, :, :].amax(-3), heatmaps[..., num_keypoints:, :, :].amax(-3)], dim=-3
    )


def discriminator_input(frames: torch.Tensor, poses: torch.Tensor, num_frames: int) -> torch.Tensor:
    """frames (B, T, 3, H, W), poses (B, T, 2, H, W) -> (B (T - n + 1), 3n + 2, H, W): each frame with
    the n - 1 frames before it and its pose maps."""
    T = frames.shape[1]
    stacks = [frames[:, i : T - num_frames + 1 + i] for i in range(num_frames)]
    x = torch.cat([*stacks, poses[:, num_frames - 1 :]], dim=2)
    return x.flatten(0, 1)


def reconstruction_losses(
    fake: torch.Tensor, real: torch.Tensor, hand_mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """fake, real (B, T, 3, H, W) in [0, 1] -> L1, 1 - SSIM, temporal (L1 of frame differences), and
    hands: L1 where `hand_mask` (B, T, 1, H, W) is 1 (0 without a mask or where no hand is seen)."""
    fake, real = fake.float(), real.float()
    err = (fake - real).abs()
    out = {
        "l1": err.mean(),
        "ssim": 1 - ssim(fake.flatten(0, 1), real.flatten(0, 1)).mean(),
        "hands": fake.new_zeros(()),
    }
    if hand_mask is not None:
        m = hand_mask.to(err.dtype)
        out["hands"] = (err * m).sum() / (3 * m.sum()).clamp_min(1.0)
    if fake.shape[1] > 1:
        out["temporal"] = ((fake[:, 1:] - fake[:, :-1]) - (real[:, 1:] - real[:, :-1])).abs().mean()
    else:
        out["temporal"] = fake.new_zeros(())
    return out


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean (D(x) - 1)^2 for real targets, D(x)^2 for fake."""
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), 1.0 if real else 0.0))
