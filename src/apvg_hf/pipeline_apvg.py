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
import time
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


def load_audio_input(
    audio, sampling_rate: int | None = None, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """A path, a numpy array / torch tensor with `sampling_rate`, or {"array", "sampling_rate"} ->
    (float32 waveform, rate). Multichannel input is kept; the feature extractor averages it.
    Input longer than `max_seconds` is refused before it is decoded."""
    if isinstance(audio, dict):
        if "array" not in audio or "sampling_rate" not in audio:
            raise ValueError("an audio dict needs 'array' and 'sampling_rate'")
        audio, sampling_rate = audio["array"], audio["sampling_rate"]
    if isinstance(audio, str | os.PathLike):
        import soundfile as sf

        from .data.audio import load_audio

        path = Path(audio)
        if max_seconds is not None and path.is_file():
            try:
                seconds = sf.info(str(path)).duration
            except RuntimeError:
                seconds = 0.0  # unreadable: load_audio says why
            _check_length(seconds, max_seconds, path.name)
        return load_audio(path, mono=False)
    if sampling_rate is None:
        raise ValueError("sampling_rate is required when audio is an array or a tensor")
    if int(sampling_rate) <= 0:
        raise ValueError(f"sampling_rate must be > 0, got {sampling_rate}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if max_seconds is not None and audio.size:
        _check_length(max(audio.shape) / int(sampling_rate), max_seconds, "the audio")
    return audio, int(sampling_rate)


def _check_length(seconds: float, max_seconds: float, what: str) -> None:
    if seconds > max_seconds:
        raise ValueError(
            f"{what} is {seconds:.0f} s long, more than max_seconds={max_seconds:.0f}: cut it, or pass a "
            "larger max_seconds (memory is flat with output_type=None and output_path=...; time is about "
            "linear)"
        )


def _retime(num_model_frames: int, model_fps: float, fps: float, num_out: int) -> np.ndarray:
    """For each output frame at `fps`, the model frame (at `model_fps`) nearest its middle: (num_out,)."""
    idx = np.floor((np.arange(num_out) + 0.5) * model_fps / fps).astype(np.int64)
    return np.minimum(idx, num_model_frames - 1)


def compose_frames(
    frames: np.ndarray, keypoints, visibility, coarse, layout: str, size: int | None = None
) -> np.ndarray:
    """The video's pictures from one chunk: `layout` "frames" (as generated), "overlay" (the skeleton
    drawn on them) or "side-by-side" (stage 1: the coarse frame upsampled with the skeleton | stage 2);
    `size`: resize each panel to size x size (bicubic). frames (n, H, W, 3) uint8 -> (n, H', W', 3)."""
    from .skeleton import draw_skeleton

    if layout not in ("frames", "overlay", "side-by-side"):
        raise ValueError(f"layout must be 'frames', 'overlay' or 'side-by-side', got {layout!r}")
    H = frames.shape[1]
    if size and size != H:
        frames = np.stack(
            [np.asarray(PIL.Image.fromarray(f).resize((size, size), PIL.Image.BICUBIC)) for f in frames]
        )
    if layout == "frames":
        return frames
    if layout == "overlay":
        return np.stack([draw_skeleton(f, k, v) for f, k, v in zip(frames, keypoints, visibility)])
    S = frames.shape[1]
    up = F.interpolate(
        torch.as_tensor(coarse, dtype=torch.float32), size=S, mode="bilinear", align_corners=False
    )
    up = (up.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()  # (n, S, S, 3)
    stage1 = np.stack([draw_skeleton(f, k, v) for f, k, v in zip(up, keypoints, visibility)])
    return np.concatenate([stage1, frames], axis=2)


class _Stopwatch:
    """Wall time per stage: `lap(name)` adds the time since the previous lap to `laps[name]`."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._t
        self._t = now


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

    Loading: `APVGPipeline.from_pretrained(folder_or_hub_id)`; the embedded default is
    `apvg_hf.default_pipeline_path()`.
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

    # -- loading and saving ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> APVGPipeline:
        """A pipeline folder, or a Hub repo id (downloaded with `snapshot_download`, then loaded from the
        local snapshot: diffusers cannot resolve third-party component classes from a repo id)."""
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            if path.exists() or str(pretrained_model_name_or_path).count("/") > 1 or path.is_absolute():
                raise ValueError(
                    f"{pretrained_model_name_or_path} is not a pipeline folder (no such directory)"
                )
            from huggingface_hub import snapshot_download

            hub = {
                k: kwargs.pop(k)
                for k in ("revision", "token", "cache_dir", "local_files_only")
                if k in kwargs
            }
            path = Path(snapshot_download(str(pretrained_model_name_or_path), **hub))
        if not (path / "model_index.json").is_file():
            raise ValueError(f"{path} is not an APVG pipeline folder: no model_index.json")
        kwargs.pop("revision", None)
        return super().from_pretrained(path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """The diffusers layout (model_index.json + one folder a component) plus a root `config.json`, so
        `transformers.pipeline("audio-to-performance-video", model=folder)` loads it too."""
        push = kwargs.pop("push_to_hub", False)
        super().save_pretrained(save_directory, **kwargs)
        from .pipeline_performance_video import APVGPipelineConfig

        APVGPipelineConfig.from_pipeline(self).save_pretrained(save_directory)
        if push:
            raise ValueError("use APVGPipeline.push_to_hub(repo_id) (it writes the model card)")

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Save to a temporary folder, write a model card, upload (LFS for the weights). Returns the
        commit URL. See `apvg_hf.hub.push_folder` for the keyword arguments."""
        from .hub import model_card, push_object

        return push_object(self, repo_id, model_card(self, repo_id), **kwargs)

    # -- generation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        audio,
        sampling_rate: int | None = None,
        fps: float | None = None,
        reference: AppearanceReference | None = None,
        use_reference_in_khp: bool = True,
        chunk_seconds: float = 10.0,
        output_type: str | None = "np",
        output_path: str | os.PathLike | None = None,
        video_layout: str = "frames",
        video_size: int | None = None,
        max_seconds: float | None = 3600.0,
        autocast_dtype: torch.dtype | None = None,
        stu_batch: int = 4,
        return_dict: bool = True,
        show_progress: bool = True,
    ) -> APVGPipelineOutput | tuple:
        r"""
        Args:
            audio: a file path, a waveform (numpy array or tensor, mono or multichannel) with
                `sampling_rate`, or a dict {"array", "sampling_rate"}.
            fps: frame rate of the output (default: the model's, 30). The models run at their own rate;
                other rates take the nearest model frame.
            reference: the performer and scene to render (default: the pipeline's own).
            use_reference_in_khp: also give KHP the reference's keypoints and coarse frame (it places
                the body in the scene); False runs KHP on the audio alone.
            chunk_seconds: audio per step; the result does not depend on it, memory does.
            output_type: "np" (uint8 (T, H, W, 3)), "pil", "pt" (float (T, 3, H, W) in [0, 1]) or None
                (frames and coarse frames are not kept: with `output_path`, memory stays flat).
            output_path: also write an mp4 (H.264 + the audio as AAC) chunk by chunk, atomically.
            video_layout, video_size: what the mp4 shows (see `compose_frames`).
            max_seconds: refuse longer audio (None: no limit).
            autocast_dtype: e.g. torch.bfloat16: the STU under autocast (about 2x faster on CPUs with AMX;
                frames differ from float32 by a few levels, see the benchmark).
            stu_batch: frames per STU step (the heatmaps of a step are rendered together).
        """
        if output_type not in ("np", "pil", "pt", None):
            raise ValueError(f"output_type must be 'np', 'pil', 'pt' or None, got {output_type!r}")
        if stu_batch < 1:
            raise ValueError(f"stu_batch must be >= 1, got {stu_batch}")
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if video_layout not in ("frames", "overlay", "side-by-side"):
            raise ValueError(
                f"video_layout must be 'frames', 'overlay' or 'side-by-side', got {video_layout!r}"
            )

        # 1. Audio: a path, an array or a tensor -> waveform at its own rate.
        clock = _Stopwatch()
        wave, sr = load_audio_input(audio, sampling_rate, max_seconds)
        clock.lap("audio")

        # 2. Features: one log-mel row per model frame; which model frame each output frame shows.
        fe = self.feature_extractor
        features = fe(wave, sampling_rate=sr)["input_features"][0]  # (T, F)
        T, model_fps = len(features), fe.fps
        fps = float(fps or model_fps)
        T_out = fe.num_frames(max(wave.shape) if wave.ndim else 0, sr, fps)
        source = _retime(T, model_fps, fps, T_out)  # (T_out,) model frame of each output frame
        device = self._execution_device
        x = torch.as_tensor(features, dtype=torch.float32, device=device)[None]  # (1, T, F)
        clock.lap("features")

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

        # 4-5. Chunk by chunk: KHP with context on both sides, then the STU with its state carried;
        # each chunk's output frames go to the video file as they come.
        writer = None
        if output_path is not None:
            from .video_io import VideoWriter

            mono = wave if wave.ndim == 1 else fe.to_mono(wave)
            writer = VideoWriter(output_path, fps, audio=mono, sampling_rate=sr)
        keep = output_type is not None
        frames, keypoints, visibility, coarse, state = [], [], [], [], None
        chunk = max(1, int(round(chunk_seconds * model_fps)))
        starts = range(0, T, chunk)
        try:
            for a in self.progress_bar(starts) if show_progress else starts:
                b = min(a + chunk, T)
                k = self.khp.forward_window(x, a, b, **khp_ref)
                kp = k.keypoints.float()  # (1, n, K, 2)
                vis = torch.sigmoid(k.visibility_logits.float())  # (1, n, K)
                co = k.coarse_frames.float()  # (1, n, 3, s, s)
                clock.lap("khp")
                video = []
                for c in range(0, b - a, stu_batch):  # a few frames at a time: the maps are big
                    heatmaps = self.stu.render_heatmaps(kp[:, c : c + stu_batch], vis[:, c : c + stu_batch])
                    clock.lap("heatmaps")
                    with torch.autocast(
                        device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                    ):
                        out = self.stu(
                            heatmaps.to(self.stu.dtype),  # (1, n, K + L, R, R)
                            co[:, c : c + stu_batch].to(self.stu.dtype),
                            stu_ref,
                            state=state,
                        )
                    state = out.state
                    video.append(out.frames[0].float().cpu())
                    clock.lap("stu")
                lo, hi = np.searchsorted(source, [a, b])  # `source` is sorted
                pick = torch.as_tensor(source[lo:hi] - a)  # this chunk's output frames
                video = torch.cat(video)[pick]  # (m, 3, R, R) in [0, 1]
                kp, vis, co = kp[0].cpu()[pick], vis[0].cpu()[pick], co[0].cpu()[pick]
                if writer is not None and len(pick):
                    pictures = (video.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
                    writer.write(
                        compose_frames(
                            pictures, kp.numpy(), vis.numpy(), co.numpy(), video_layout, video_size
                        )
                    )
                clock.lap("encoding")
                if keep:
                    frames.append(video)
                    coarse.append(co)
                keypoints.append(kp)
                visibility.append(vis)
            # 6. The video file: flush, mux the audio, publish.
            if writer is not None:
                writer.close()
                clock.lap("encoding")
        except BaseException:
            if writer is not None:
                writer.abort()
            raise

        # 7. Output.
        out_frames = out_coarse = None
        if keep:
            video = torch.cat(frames)  # (T_out, 3, R, R) in [0, 1]
            out_coarse = torch.cat(coarse).numpy()
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
            out_coarse,
            fps,
            wave,
            sr,
        )
        self.last_timings = clock.laps  # seconds per stage, for benchmarks and the CLI
        self.maybe_free_model_hooks()
        if not return_dict:
            return result
        return APVGPipelineOutput(*result)


def export_to_video(
    output: APVGPipelineOutput,
    path: str | os.PathLike,
    overlay: bool = False,
    crf: int = 18,
    layout: str | None = None,
    size: int | None = None,
) -> Path:
    """An mp4 (H.264, yuv420p) of the output's frames with its audio muxed as AAC, written atomically.
    `layout`: "frames", "overlay" (= `overlay=True`) or "side-by-side" (see `compose_frames`); `size`
    resizes the frames. Needs `output_type="np"` frames; for long audio pass `output_path=` to the
    pipeline instead (it streams)."""
    from .video_io import VideoWriter

    frames = output.frames
    if frames is None or not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(
            "export_to_video needs uint8 (T, H, W, 3) frames: call the pipeline with output_type='np'"
        )
    layout = layout or ("overlay" if overlay else "frames")
    audio = output.audio
    if audio is not None and audio.ndim == 2:
        audio = APVGFeatureExtractor.to_mono(audio)
    with VideoWriter(path, output.fps, audio=audio, sampling_rate=output.sampling_rate, crf=crf) as writer:
        for a in range(0, len(frames), 256):
            b = a + 256
            coarse = None if output.coarse_frames is None else output.coarse_frames[a:b]
            if layout == "side-by-side" and coarse is None:
                raise ValueError("the side-by-side layout needs the output's coarse frames")
            writer.write(
                compose_frames(
                    frames[a:b], output.keypoints[a:b], output.visibility[a:b], coarse, layout, size
                )
            )
    return Path(path)


__all__ = [
    "APVGPipeline",
    "APVGPipelineOutput",
    "AppearanceReference",
    "compose_frames",
    "export_to_video",
    "load_audio_input",
]
