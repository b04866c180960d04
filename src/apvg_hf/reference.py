"""The appearance reference: who plays, where, seen how. A pipeline component (`reference/`)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin  # noqa: F401 (diffusers looks the base class up here)
from diffusers.configuration_utils import register_to_config

from .piano_roll import NUM_KEYS
from .skeleton import NUM_KEYPOINTS


class AppearanceReference(ModelMixin, ConfigMixin):
    """One frame of the performer in the scene, its keypoints and (optionally) the keyboard's geometry.

    A pipeline component (saved in `reference/` like the models), so a pipeline folder carries a
    default performer; pass another to the pipeline call, or build one with `from_frame`.

    Buffers: `frame` (3, R, R) in [0, 1]; `keypoints` (K, 2) normalised to the frame; `keyboard_quads`
    (88, 4, 2) the top surface of each key A0..C8 (MIDI 21..108) normalised to the frame, corners
    front-left, front-right, back-right, back-left; None for a reference without keyboard geometry
    (`num_keys=0`, as every reference saved before it existed).

    >>> ref = AppearanceReference.from_frame(np.zeros((64, 64, 3), np.uint8), np.full((56, 2), 0.5), resolution=32)
    >>> tuple(ref.frame.shape), tuple(ref.at(8).shape), ref.keyboard_quads
    ((3, 32, 32), (3, 8, 8), None)
    """

    @register_to_config
    def __init__(self, resolution: int = 128, num_keypoints: int = NUM_KEYPOINTS, num_keys: int = 0):
        super().__init__()
        if num_keys not in (0, NUM_KEYS):
            raise ValueError(f"num_keys must be 0 (no keyboard geometry) or {NUM_KEYS}, got {num_keys}")
        self.register_buffer("frame", torch.full((3, resolution, resolution), 0.5))  # (3, R, R) in [0, 1]
        self.register_buffer("keypoints", torch.full((num_keypoints, 2), 0.5))  # (K, 2) in [0, 1]
        # (88, 4, 2) key-top quads in [0, 1] of the frame; a None buffer is neither saved nor loaded.
        self.register_buffer("keyboard_quads", torch.zeros(num_keys, 4, 2) if num_keys else None)

    @classmethod
    def from_frame(
        cls, frame, keypoints, resolution: int | None = None, keyboard_quads=None
    ) -> AppearanceReference:
        """frame: (H, W, 3) uint8 array, PIL image or (3, H, W) float tensor in [0, 1] (square);
        keypoints: (K, 2) normalised to that frame; keyboard_quads: None, or (88, 4, 2) normalised to
        that frame (`apvg_hf.data.scene.keyboard_quads(camera)` for the virtual pianist)."""
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
        quads = None if keyboard_quads is None else check_keyboard_quads(keyboard_quads)
        resolution = resolution or x.shape[-1]
        ref = cls(
            resolution=resolution, num_keypoints=kp.shape[0], num_keys=0 if quads is None else len(quads)
        )
        ref.frame.copy_(resize_square(x, resolution))
        ref.keypoints.copy_(kp)
        if quads is not None:
            ref.keyboard_quads.copy_(quads)
        return ref

    @property
    def has_keyboard(self) -> bool:
        """Whether the reference knows where the keys are (`keyboard_quads`)."""
        return self.keyboard_quads is not None

    def at(self, size: int) -> torch.Tensor:
        """The frame at size x size, (3, size, size)."""
        return resize_square(self.frame, size)


def check_keyboard_quads(quads) -> torch.Tensor:
    """(88, 4, 2) finite key-top quads (array, list or tensor) -> float32 tensor; a clear ValueError else."""
    try:
        q = torch.as_tensor(np.asarray(quads, dtype=np.float32))
    except (TypeError, ValueError) as err:
        raise ValueError(f"keyboard_quads must be an (88, 4, 2) array of numbers: {err}") from err
    if tuple(q.shape) != (NUM_KEYS, 4, 2):
        raise ValueError(
            f"keyboard_quads must be ({NUM_KEYS}, 4, 2): for each key A0..C8 (MIDI 21..108) the four "
            f"corners of its top, normalised to the frame; got shape {tuple(q.shape)}"
        )
    if not torch.isfinite(q).all():
        raise ValueError("keyboard_quads must be finite (found NaN or inf)")
    return q


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, H) -> (3, size, size): area averaging down, bilinear up (both stay within [0, 1])."""
    if size == image.shape[-1]:
        return image
    mode = "area" if size < image.shape[-1] else "bilinear"
    return F.interpolate(image[None].float(), size=size, mode=mode)[0].to(image.dtype)
