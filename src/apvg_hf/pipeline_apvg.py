"""APVGPipeline: audio -> video of a performer playing it (KHP, then the STU), as a diffusers pipeline.

audio (path | array | tensor)
  1. -> mono waveform at its own rate
  2. -> APVGFeatureExtractor: one log-mel row per video frame                     (T, 80)
  3. -> appearance reference: one frame of the performer in the scene + its keypoints
  then chunk by chunk (`chunk_seconds`), so memory stays bounded and the result is the one-pass result:
  4. -> KHPModel with `receptive_field` frames of context each side: keypoints (n, K, 2),
        visibility (n, K), coarse frames (n, 3, 32, 32)
  5. -> keypoints_to_heatmaps -> STUModel with the ConvGRU state carried from the previous chunk
  6. -> frames (T, H, W, 3) uint8, keypoints, visibility, coarse frames; `export_to_video` muxes the audio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, DiffusionPipeline, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput

from .feature_extraction_apvg import APVGFeatureExtractor
from .modeling_khp import KHPModel
from .modeling_stu import STUModel
from .skeleton import NUM_KEYPOINTS


class AppearanceReference(ModelMixin, ConfigMixin):
    """Who plays, where, seen how: one frame of the performer in the scene and its keypoints.

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
        resolution = resolution or x.shape[-1]
        ref = cls(resolution=resolution, num_keypoints=kp.shape[0])
        ref.frame.copy_(_resize(x, resolution))
        ref.keypoints.copy_(kp)
        return ref

    def at(self, size: int) -> torch.Tensor:
        """The frame at size x size, (3, size, size)."""
        return _resize(self.frame, size)


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, H) -> (3, size, size): area averaging down, bilinear up (both stay within [0, 1])."""
    if size == image.shape[-1]:
        return image
    mode = "area" if size < image.shape[-1] else "bilinear"
    return F.interpolate(image[None], size=size, mode=mode)[0]


@dataclass
class APVGPipelineOutput(BaseOutput):
    """Output of [`APVGPipeline`].

    Args:
        frames: (T, H, W, 3) uint8 (`output_type="np"`), T PIL images ("pil") or (T, 3, H, W) float ("pt").
        keypoints: (T, K, 2) in [0, 1]; visibility: (T, K) probabilities; coarse_frames: (T, 3, s, s).
        fps, audio (the mono waveform as given), sampling_rate: what `export_to_video` muxes.
    """

    frames: np.ndarray | list | torch.Tensor
    keypoints: np.ndarray | None = None
    visibility: np.ndarray | None = None
    coarse_frames: np.ndarray | None = None
    fps: float | None = None
    audio: np.ndarray | None = None
    sampling_rate: int | None = None


def load_audio_input(audio, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """A path, a numpy array / torch tensor with `sampling_rate`, or {"array", "sampling_rate"} ->
    (float32 waveform, rate). Multichannel input is kept; the feature extractor averages it."""
    if isinstance(audio, dict):
        if "array" not in audio or "sampling_rate" not in audio:
            raise ValueError("an audio dict needs 'array' and 'sampling_rate'")
        audio, sampling_rate = audio["array"], audio["sampling_rate"]
    if isinstance(audio, str | os.PathLike):
        from .data.audio import load_audio

        return load_audio(Path(audio), mono=False)
    if sampling_rate is None:
        raise ValueError("sampling_rate is required when audio is an array or a tensor")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    return np.asarray(audio, dtype=np.float32), int(sampling_rate)


class APVGPipeline(DiffusionPipeline):
    r"""Audio -> performance video: `KHPModel` (keypoints, coarse frames) then `STUModel` (frames).

    >>> import numpy as np, torch
    >>> from apvg_hf import APVGFeatureExtractor, KHPConfig, KHPModel, STUModel
    >>> from apvg_hf.pipeline_apvg import APVGPipeline, AppearanceReference
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> khp = KHPModel(KHPConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=16, coarse_size=16,
    ...                          coarse_channels=8, heatmap_size=16))
    >>> stu = STUModel(block_channels=(8, 8, 8), graph_hidden=4, resolution=32)
    >>> pipe = APVGPipeline(APVGFeatureExtractor(), khp, stu, AppearanceReference(resolution=32))
    >>> out = pipe(np.zeros(16000, np.float32), sampling_rate=16000, show_progress=False)
    >>> out.frames.shape, out.keypoints.shape, out.fps
    ((30, 32, 32, 3), (30, 56, 2), 30.0)
    """

    model_cpu_offload_seq = "khp->stu"

    def __init__(
        self,
        feature_extractor: APVGFeatureExtractor,
        khp: KHPModel,
        stu: STUModel,
        reference: AppearanceReference,
    ):
        super().__init__()
        self.register_modules(feature_extractor=feature_extractor, khp=khp, stu=stu, reference=reference)

    @torch.no_grad()
    def __call__(
        self,
        audio,
        sampling_rate: int | None = None,
        reference: AppearanceReference | None = None,
        use_reference_in_khp: bool = True,
        chunk_seconds: float = 10.0,
        output_type: str = "np",
        return_dict: bool = True,
        show_progress: bool = True,
    ) -> APVGPipelineOutput | tuple:
        r"""
        Args:
            audio: a file path, a waveform (numpy array or tensor, mono or multichannel) with
                `sampling_rate`, or a dict {"array", "sampling_rate"}.
            reference: the performer and scene to render (default: the pipeline's own).
            use_reference_in_khp: also give KHP the reference's keypoints and coarse frame (it places
                the body in the scene); False runs KHP on the audio alone.
            chunk_seconds: audio per step; the result does not depend on it, memory does.
            output_type: "np" (uint8 (T, H, W, 3)), "pil" or "pt" (float (T, 3, H, W) in [0, 1]).
        """
        if output_type not in ("np", "pil", "pt"):
            raise ValueError(f"output_type must be 'np', 'pil' or 'pt', got {output_type!r}")
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")

        # 1. Audio: a path, an array or a tensor -> waveform at its own rate.
        wave, sr = load_audio_input(audio, sampling_rate)

        # 2. Features: one log-mel row per video frame.
        fe = self.feature_extractor
        features = fe(wave, sampling_rate=sr)["input_features"][0]  # (T, F)
        T, fps = len(features), fe.fps
        device = self._execution_device
        x = torch.as_tensor(features, dtype=torch.float32, device=device)[None]  # (1, T, F)

        # 3. Appearance reference: whose performance, in which scene.
        ref = (reference if reference is not None else self.reference).to(device)
        res, coarse_size = self.stu.config.resolution, self.khp.config.coarse_size
        stu_ref = ref.at(res)[None].to(self.stu.dtype)  # (1, 3, R, R)
        khp_ref = {}
        if use_reference_in_khp:
            khp_ref = {
                "reference_keypoints": ref.keypoints[None].to(device),  # (1, K, 2)
                "reference_frames": ref.at(coarse_size)[None].to(device),  # (1, 3, s, s)
            }

        # 4-5. Chunk by chunk: KHP with context on both sides, then the STU with its state carried.
        chunk = max(1, int(round(chunk_seconds * fps)))
        frames, keypoints, visibility, coarse, state = [], [], [], [], None
        for a in self.progress_bar(range(0, T, chunk)) if show_progress else range(0, T, chunk):
            k = self.khp.forward_window(x, a, min(a + chunk, T), **khp_ref)
            kp, vis = (
                k.keypoints.float(),
                torch.sigmoid(k.visibility_logits.float()),
            )  # (1, n, K, 2), (1, n, K)
            co = k.coarse_frames.float()  # (1, n, 3, s, s)
            heatmaps = self.stu.render_heatmaps(kp, vis)  # (1, n, K + L, R, R)
            out = self.stu(heatmaps.to(self.stu.dtype), co.to(self.stu.dtype), stu_ref, state=state)
            state = out.state
            frames.append(out.frames[0].float().cpu())
            keypoints.append(kp[0].cpu())
            visibility.append(vis[0].cpu())
            coarse.append(co[0].cpu())

        # 6. Output.
        video = torch.cat(frames)  # (T, 3, R, R) in [0, 1]
        if output_type == "pt":
            out_frames = video
        else:
            out_frames = (video.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            if output_type == "pil":
                out_frames = [PIL.Image.fromarray(f) for f in out_frames]
        result = (
            out_frames,
            torch.cat(keypoints).numpy(),
            torch.cat(visibility).numpy(),
            torch.cat(coarse).numpy(),
            fps,
            wave,
            sr,
        )
        self.maybe_free_model_hooks()
        if not return_dict:
            return result
        return APVGPipelineOutput(*result)


def export_to_video(
    output: APVGPipelineOutput, path: str | os.PathLike, overlay: bool = False, crf: int = 18
) -> Path:
    """An mp4 (H.264, yuv420p) of the output's frames with its audio muxed as AAC; `overlay` draws the
    predicted skeleton on the frames. Written atomically. Needs `output_type="np"` frames."""
    from .skeleton import draw_skeleton
    from .video_io import write_video

    frames = np.asarray(output.frames)
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(
            "export_to_video needs uint8 (T, H, W, 3) frames: call the pipeline with output_type='np'"
        )
    if overlay:
        frames = np.stack(
            [draw_skeleton(f, kp, vis) for f, kp, vis in zip(frames, output.keypoints, output.visibility)]
        )
    audio = output.audio
    if audio is not None and audio.ndim == 2 and audio.shape[0] < audio.shape[1]:
        audio = audio.T  # (C, N) -> (N, C)
    if audio is not None and audio.ndim == 2 and audio.shape[1] > 2:
        audio = audio.mean(1)
    return write_video(path, frames, output.fps, audio=audio, sampling_rate=output.sampling_rate, crf=crf)


__all__ = ["APVGPipeline", "APVGPipelineOutput", "AppearanceReference", "export_to_video", "load_audio_input"]
