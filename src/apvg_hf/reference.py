"""The appearance reference: who plays, where, seen how. A pipeline component (`reference/`)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin  # noqa: F401 (diffusers looks the base class up here)
from diffusers.configuration_utils import register_to_config

from .skeleton import NUM_KEYPOINTS


class AppearanceReference(ModelMixin, ConfigMixin):
    """One frame of the performer in the scene and its keypoints.

    A pipeline component (saved in `reference/` like the models), so a pipeline folder carries a
    default performer; pass another to the pipeline call, or build one with `from_frame`.

    >>> ref = AppearanceReference.from_frame(np.zeros((64, 64, 3), np.uint8), np.full((56, 2), 0.5), resolution=32)
    >>> tuple(ref.frame.shape), tuple(ref.at(8).shape)
    ((3, 32, 32), (3, 8, 8))
    """

    @register_to_config
    def __init__(self, resolution: int = 128, num_keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        self.register_buffer("frame", torch.full((3, resolution, resolution), 0.5))  # (3, R, R) in [0, 1]
        self.register_buffer("keypoints", torch.full((num_keypoints, 2), 0.5))  # (K, 2) in [0, 1]

    @classmethod
    def from_frame(cls, frame, keypoints, resolution: int | None = None) -> AppearanceReference:
        """frame: (H, W, 3) uint8 array, PIL image or (3, H, W) float tensor in [0, 1] (square);
        keypoints: (K, 2) normalised to that frame."""
        if isinstance(frame, PIL.Image.Image):
            frame = np.asarray(frame.convert("RGB"))
        x = torch.as_tensor(np.asarray(frame))
        if x.ndim == 3 and x.shape[-1] == 3:
            x = x.permute(2, 0, 1)
        if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(f"the reference frame must be a square RGB image, got shape {tuple(x.shape)}")
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        kp = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
        if kp.ndim != 2 or kp.shape[1] != 2:
            raise ValueError(f"the reference keypoints must be (K, 2), got shape {tuple(kp.shape)}")
        resolution = resolution or x.shape[-1]
        ref = cls(resolution=resolution, num_keypoints=kp.shape[0])
        ref.frame.copy_(resize_square(x, resolution))
        ref.keypoints.copy_(kp)
        return ref

    def at(self, size: int) -> torch.Tensor:
        """The frame at size x size, (3, size, size)."""
        return resize_square(self.frame, size)


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, H) -> (3, size, size): area averaging down, bilinear up (both stay within [0, 1])."""
    if size == image.shape[-1]:
        return image
    mode = "area" if size < image.shape[-1] else "bilinear"
    return F.interpolate(image[None].float(), size=size, mode=mode)[0].to(image.dtype)
