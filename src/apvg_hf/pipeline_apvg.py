"""APVGPipeline: audio (or MIDI, or a note list) -> video of a performer playing it (KHP, then the STU), as
a diffusers pipeline.

audio (path | bytes | array | tensor | {"array", "sampling_rate"}), or midi (path | bytes), or notes (dicts)
  0. check_inputs: every option, and the output path, before any work
  1. -> mono float32 waveform at its own rate                                      (N,)
        MIDI / notes: -> note dicts (`apvg_hf.midi`), rendered to audio with a SoundFont (the mp4's sound)
  2. -> APVGFeatureExtractor: one log-mel row per video frame                     (T, 80)
        a note-aware KHP given notes reads their piano roll instead               (T, 88, 3)
  3. -> appearance reference: one frame of the performer in the scene + its keypoints (+ the keys' quads)
  then chunk by chunk (`chunk_seconds`), so memory stays flat and the result is the one-pass result:
  4. -> KHPModel.iter_predict (context each side): keypoints (n, K, 2), visibility (n, K), coarse frames
  5. -> STUModel.iter_render, a few frames per step, the ConvGRU state carried across steps and chunks;
        each step's frames go to the mp4 (the keys that sound lit with `highlight_keys`) and into the
        preallocated uint8 output as they come
  6. -> the mp4 is closed (audio muxed as AAC) and renamed into place; frames (T, H, W, 3) uint8.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from .configuration_apvg_pipeline import APVGPipelineConfig
from .feature_extraction_apvg import APVGFeatureExtractor
from .hub import model_card, push_object
from .midi import RELEASE_TAIL_S, check_notes, read_midi, render_notes
from .modeling_khp import KHPModel
from .modeling_stu import STUModel
from .piano_roll import LOWEST_PITCH, notes_to_roll, sounding
from .reference import AppearanceReference
from .video_io import (
    BackgroundWriter,
    VideoWriter,
    audio_duration,
    check_output_path,
    load_audio,
    to_float_waveform,
    to_mono,
)


@dataclass
class APVGPipelineOutput(BaseOutput):
    """Output of [`APVGPipeline`].

    Args:
        frames: (T, H, W, 3) uint8 (`output_type="np"`), T PIL images ("pil"), (T, 3, H, W) float32 in
            [0, 1] ("pt": four times the memory of "np") or None (`output_type=None`).
        keypoints: (T, K, 2) in [0, 1]; visibility: (T, K) probabilities.
        coarse_frames: (T, 3, s, s) stage-1 frames: uint8 ("np", "pil"), float32 in [0, 1] ("pt"), or None.
        fps, audio (the mono float32 waveform), sampling_rate: what `export_to_video` muxes.
        video: the mp4 written (`output_path`), or None.
        notes: the notes played, as dicts {"pitch", "onset", "offset", "velocity"} (seconds): those given
            (`midi=`, `notes=`), or those a note-aware KHP transcribed from the audio; else None.
    """

    frames: np.ndarray | list | torch.Tensor | None
    keypoints: np.ndarray | None = None
    visibility: np.ndarray | None = None
    coarse_frames: np.ndarray | torch.Tensor | None = None
    fps: float | None = None
    audio: np.ndarray | None = None
    sampling_rate: int | None = None
    video: Path | None = None
    notes: list[dict] | None = None


def load_audio_input(
    audio, sampling_rate: int | None = None, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """Whatever a user passes as audio -> (mono float32 waveform (N,), sampling rate).

    Accepts a path, the bytes of an audio file, a numpy array / torch tensor / list of samples with
    `sampling_rate` (integer PCM is scaled by its type; (N, C) or (C, N) multichannel is averaged), or
    {"array", "sampling_rate"}. Files are decoded by soundfile, else PyAV (m4a, aac, an mp4's audio).
    Input longer than `max_seconds` is refused before it is decoded. Every problem is a ValueError (or
    FileNotFoundError / IsADirectoryError for a wrong path) that says what is wrong.
    """
    if isinstance(audio, dict):
        if "array" not in audio or "sampling_rate" not in audio:
            raise ValueError("an audio dict needs 'array' and 'sampling_rate'")
        audio, sampling_rate = audio["array"], audio["sampling_rate"]
    if isinstance(audio, str | os.PathLike):
        path = Path(audio)
        if max_seconds is not None and path.is_file():
            seconds = audio_duration(path)  # from the header: nothing decoded yet
            if seconds is not None:
                _check_length(seconds, max_seconds, path.name)
        return load_audio(path, mono=True)
    if isinstance(audio, bytes | bytearray):
        wave, sr = load_audio(bytes(audio), mono=True)
        if max_seconds is not None:
            _check_length(len(wave) / sr, max_seconds, "the audio")
        return wave, sr
    if sampling_rate is None:
        raise ValueError("sampling_rate is required when audio is an array, a tensor or a list of samples")
    sr = _check_rate(sampling_rate)
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu()
        audio = audio.float().numpy() if audio.is_floating_point() else audio.numpy()
    if isinstance(audio, list | tuple):
        try:
            audio = np.asarray(audio)
        except ValueError as err:
            raise ValueError(f"a list of audio samples must be numbers: {err}") from err
    if not isinstance(audio, np.ndarray):
        raise TypeError(
            f"audio must be a path, bytes, an array, a tensor, a list of samples or a dict, got {type(audio).__name__}"
        )
    wave = to_mono(to_float_waveform(audio))
    if max_seconds is not None:
        _check_length(len(wave) / sr, max_seconds, "the audio")
    return wave, sr


def _check_rate(sampling_rate) -> int:
    try:
        ok = math.isfinite(float(sampling_rate)) and float(sampling_rate) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok or float(sampling_rate) != int(float(sampling_rate)):
        raise ValueError(f"sampling_rate must be a positive whole number of Hz, got {sampling_rate!r}")
    return int(float(sampling_rate))


def _check_length(seconds: float, max_seconds: float, what: str) -> None:
    if seconds > max_seconds:
        raise ValueError(
            f"{what} is {seconds:.1f} s long, more than max_seconds={max_seconds:g}: cut it, or pass a "
            "larger max_seconds (memory stays flat with output_type=None and output_path=...; time is "
            "about linear)"
        )


def _positive(name: str, value, integer: bool = False, allow_none: bool = True) -> None:
    """Options must be finite and > 0 (NaN and inf are refused with the option's name)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")


def _retime(num_model_frames: int, model_fps: float, fps: float, num_out: int) -> np.ndarray:
    """For each output frame at `fps`, the model frame (at `model_fps`) nearest its middle: (num_out,)."""
    idx = np.floor((np.arange(num_out) + 0.5) * model_fps / fps).astype(np.int64)
    return np.minimum(idx, num_model_frames - 1)


def to_uint8_images(frames: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) float in [0, 1] -> (n, H, W, 3) uint8."""
    return (frames.permute(0, 2, 3, 1) * 255).round_().clamp_(0, 255).to(torch.uint8).numpy()


def compose_frames(
    frames: np.ndarray,
    keypoints,
    visibility,
    coarse,
    layout: str,
    size: int | None = None,
    keyboard_quads: np.ndarray | None = None,
    sounding: np.ndarray | None = None,
) -> np.ndarray:
    """The video's pictures from some frames: `layout` "frames" (as generated), "overlay" (the skeleton
    drawn on them) or "side-by-side" (stage 1: the coarse frame upsampled with the skeleton | stage 2);
    `size`: resize each panel to size x size (bicubic). frames (n, H, W, 3) uint8 -> (n, H', W', 3);
    coarse (n, 3, s, s) uint8 or float in [0, 1]. With `keyboard_quads` (88, 4, 2) in [0, 1] of the frame
    and `sounding` (n, 88) bool, the keys that sound are lit in every panel, under the skeleton."""
    from .skeleton import draw_keys, draw_skeleton

    if layout not in ("frames", "overlay", "side-by-side"):
        raise ValueError(f"layout must be 'frames', 'overlay' or 'side-by-side', got {layout!r}")
    H = frames.shape[1]
    if size and size != H:
        frames = np.stack(
            [np.asarray(PIL.Image.fromarray(f).resize((size, size), PIL.Image.BICUBIC)) for f in frames]
        )

    def keys(panels: np.ndarray) -> np.ndarray:  # the lit keys, drawn first: the skeleton goes over them
        if sounding is None:
            return panels
        return np.stack([draw_keys(f, keyboard_quads, on, LOWEST_PITCH) for f, on in zip(panels, sounding)])

    frames = keys(frames)
    if layout == "frames":
        return frames
    if layout == "overlay":
        return np.stack([draw_skeleton(f, k, v) for f, k, v in zip(frames, keypoints, visibility)])
    S = frames.shape[1]
    coarse = torch.as_tensor(np.asarray(coarse))
    coarse = coarse.float() / 255 if coarse.dtype == torch.uint8 else coarse.float()
    up = keys(
        to_uint8_images(F.interpolate(coarse, size=S, mode="bilinear", align_corners=False).clamp_(0, 1))
    )
    stage1 = np.stack([draw_skeleton(f, k, v) for f, k, v in zip(up, keypoints, visibility)])
    return np.concatenate([stage1, frames], axis=2)


def sounding_keys(notes, num_frames: int, fps: float, out: np.ndarray | None = None) -> np.ndarray:
    """Which of the 88 keys sound at each frame: (num_frames, 88) bool (`apvg_hf.piano_roll.sounding`)."""
    return sounding(notes, num_frames, fps, out)


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
    r"""Audio (or MIDI) -> performance video: `KHPModel` (keypoints, coarse frames) then `STUModel` (frames).

    >>> import numpy as np, torch
    >>> from apvg_hf import APVGFeatureExtractor, AppearanceReference, KHPConfig, KHPModel, STUModel
    >>> from apvg_hf.pipeline_apvg import APVGPipeline
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> khp = KHPModel(KHPConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=16, coarse_size=16,
    ...                          coarse_channels=8, heatmap_size=16))
    >>> stu = STUModel(block_channels=(8, 8, 8), graph_hidden=4, resolution=32)
    >>> pipe = APVGPipeline(APVGFeatureExtractor(), khp, stu, AppearanceReference(resolution=32))
    >>> out = pipe(np.zeros(16000, np.float32), sampling_rate=16000, show_progress=False)
    >>> out.frames.shape, out.frames.dtype, out.keypoints.shape, out.fps
    ((30, 32, 32, 3), dtype('uint8'), (30, 56, 2), 30.0)

    Notes (or `midi="piece.mid"`) instead of audio: they are rendered to piano audio for the video, which
    lasts until a second after the last note ends:

    >>> out = pipe(notes=[{"pitch": 60, "onset": 0.0, "offset": 0.5}], show_progress=False)
    >>> out.frames.shape[0], out.notes
    (45, [{'pitch': 60, 'onset': 0.0, 'offset': 0.5, 'velocity': 80}])

    Loading: `APVGPipeline.from_pretrained(folder_or_hub_id)` (or `DiffusionPipeline.from_pretrained`
    after `import apvg_hf`); the embedded default is `apvg_hf.default_pipeline_path()`.
    """

    model_cpu_offload_seq = "khp->stu"
    card_kind = "pipeline"  # for apvg_hf.hub.model_card
    _optional_components: list[str] = []

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
        local snapshot: diffusers cannot resolve third-party component classes from a repo id).
        `dtype=` (or the older `torch_dtype=`) loads the models in that precision."""
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
            try:
                path = Path(snapshot_download(str(pretrained_model_name_or_path), **hub))
            except Exception as err:  # the transport's own errors (httpx, HfHubHTTPError, timeouts, ...)
                raise OSError(
                    f"could not download {pretrained_model_name_or_path} from the Hub: {type(err).__name__}: "
                    f"{err}. Nothing half-downloaded is used; run it again to resume."
                ) from err
        if not (path / "model_index.json").is_file():
            raise ValueError(f"{path} is not an APVG pipeline folder: no model_index.json")
        kwargs.pop("revision", None)
        if "torch_dtype" in kwargs:  # the older name
            kwargs["dtype"] = kwargs.pop("torch_dtype")
        if kwargs.get("dtype") == "auto":
            kwargs.pop("dtype")
        return super().from_pretrained(path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """The diffusers layout (model_index.json + one folder a component) plus a root `config.json`, so
        `transformers.pipeline("audio-to-performance-video", model=folder)` loads it too."""
        if kwargs.pop("push_to_hub", False):
            raise ValueError("use APVGPipeline.push_to_hub(repo_id) (it writes the model card)")
        super().save_pretrained(save_directory, **kwargs)
        APVGPipelineConfig.from_pipeline(self).save_pretrained(save_directory)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Save to a temporary folder, write a model card, upload (LFS for the weights). Returns the
        commit URL. See `apvg_hf.hub.push_folder` for the keyword arguments."""
        return push_object(self, repo_id, model_card(self, repo_id), **kwargs)

    # -- generation --------------------------------------------------------------------------------------
    def check_inputs(
        self,
        audio,
        midi,
        notes,
        fps,
        reference,
        chunk_seconds,
        output_type,
        output_path,
        video_layout,
        video_size,
        max_seconds,
        autocast_dtype,
        stu_batch,
        callback_on_chunk_end,
        highlight_keys=False,
    ) -> None:
        """Every option is checked before anything is decoded or computed: a clear error names it."""
        given = [name for name, x in (("audio", audio), ("midi", midi), ("notes", notes)) if x is not None]
        if len(given) != 1:
            raise ValueError(
                "pass exactly one of audio= (a file, bytes or samples), midi= (a MIDI file's path or bytes) "
                f"or notes= (a list of note dicts); got {' and '.join(given) if given else 'none'}"
            )
        if output_type not in ("np", "pil", "pt", None):
            raise ValueError(f"output_type must be 'np', 'pil', 'pt' or None, got {output_type!r}")
        _positive("fps", fps)
        _positive("chunk_seconds", chunk_seconds, allow_none=False)
        _positive("max_seconds", max_seconds)
        _positive("stu_batch", stu_batch, integer=True, allow_none=False)
        _positive("video_size", video_size, integer=True)
        if video_size is not None and (video_size % 2 or video_size > 4096):
            raise ValueError(f"video_size must be an even number of pixels up to 4096, got {video_size}")
        if video_layout not in ("frames", "overlay", "side-by-side"):
            raise ValueError(
                f"video_layout must be 'frames', 'overlay' or 'side-by-side', got {video_layout!r}"
            )
        if reference is not None and not isinstance(reference, AppearanceReference):
            raise TypeError(
                f"reference must be an AppearanceReference (see AppearanceReference.from_frame), got {type(reference).__name__}"
            )
        if autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(
                f"autocast_dtype must be None, torch.bfloat16 or torch.float16, got {autocast_dtype}"
            )
        if callback_on_chunk_end is not None and not callable(callback_on_chunk_end):
            raise TypeError("callback_on_chunk_end must be callable(done_chunks, total_chunks)")
        if highlight_keys:
            if output_path is None:
                raise ValueError(
                    "highlight_keys lights the keys in the video: pass output_path=... (or draw them on the "
                    "frames yourself with apvg_hf.skeleton.draw_keys)"
                )
            ref = reference if reference is not None else self.reference
            if ref.keyboard_quads is None:
                raise ValueError(
                    "highlight_keys needs the keyboard's geometry, and this reference has none: build it with "
                    "AppearanceReference.from_frame(..., keyboard_quads=(88, 4, 2) key-top quads)"
                )
            if audio is not None and self.khp_architecture != "notes":
                raise ValueError(
                    "highlight_keys needs notes: pass midi= or notes= (this pipeline's KHP hears audio but "
                    "does not transcribe it)"
                )
        if output_path is not None:
            check_output_path(output_path)

    @property
    def khp_architecture(self) -> str:
        """The KHP's kind: "audio" (audio features -> motion) or "notes" (notes -> motion; audio is
        transcribed first)."""
        return getattr(self.khp.config, "architecture", "audio")

    @torch.no_grad()
    def __call__(
        self,
        audio=None,
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
        callback_on_chunk_end: Callable[[int, int], None] | None = None,
        return_dict: bool = True,
        show_progress: bool = True,
        *,
        midi: str | os.PathLike | bytes | None = None,
        notes: list | None = None,
        highlight_keys: bool = False,
        encode_in_background: bool = True,
    ) -> APVGPipelineOutput | tuple:
        r"""
        Args:
            audio: a file path (anything soundfile or FFmpeg decodes), the file's bytes, a waveform (numpy
                array, tensor or list of samples; mono or multichannel; float or integer PCM) with
                `sampling_rate`, or a dict {"array", "sampling_rate"}.
            midi: instead of audio, a standard MIDI file (path or bytes): its notes are played (all
                non-drum tracks; see `apvg_hf.midi.read_midi`) and rendered to piano audio for the video.
            notes: instead of audio, a list of notes {"pitch", "onset", "offset", "velocity"} (seconds;
                velocity optional, 80), checked by `apvg_hf.midi.check_notes`. With midi or notes the
                video lasts until a second after the last note ends.
            fps: frame rate of the output (default: the model's, 30). The models run at their own rate;
                other rates take the nearest model frame.
            reference: the performer and scene to render (default: the pipeline's own).
            use_reference_in_khp: also give KHP the reference's keypoints, coarse frame and keyboard
                geometry (it places the body in the scene); False runs KHP on the music alone.
            chunk_seconds: audio per KHP step; the result does not depend on it.
            output_type: "np" (uint8 (T, H, W, 3)), "pil", "pt" (float (T, 3, H, W) in [0, 1]) or None
                (no frames kept: with `output_path`, memory stays flat however long the audio).
            output_path: also write an mp4 (H.264 + the audio as AAC) as the frames come, atomically (a
                failure leaves no file). Checked (suffix .mp4, writable) before any work.
            video_layout, video_size: what the mp4 shows (see `compose_frames`).
            encode_in_background: compose and encode the mp4 on a worker thread while the next frames
                are generated (`BackgroundWriter`; the same bytes either way). False: in this thread.
            highlight_keys: light the keys that sound in the mp4 (every layout), drawn over the
                reference's keyboard geometry (`reference.keyboard_quads`). Needs notes: midi=, notes=, or
                audio with a KHP that transcribes it.
            max_seconds: refuse longer audio before decoding it (None: no limit).
            autocast_dtype: e.g. torch.bfloat16: the STU under autocast (faster on CPUs with AMX/AVX512-bf16;
                frames differ from float32 by a few levels, see the benchmark). To run the whole pipeline
                in a precision, load it with `dtype=` instead.
            stu_batch: frames per STU step (the heatmaps of a step are rendered together).
            callback_on_chunk_end: called as `f(done_chunks, total_chunks)` after each chunk (progress bars).

        Examples:
            >>> import apvg_hf  # doctest: +SKIP
            >>> pipe = apvg_hf.APVGPipeline.from_pretrained(apvg_hf.default_pipeline_path())  # doctest: +SKIP
            >>> out = pipe("etude.wav", output_path="etude.mp4")  # doctest: +SKIP
            >>> out = pipe(midi="etude.mid", output_path="etude.mp4", video_layout="overlay", highlight_keys=True)  # doctest: +SKIP
            >>> out = pipe(notes=[{"pitch": 60, "onset": 0.0, "offset": 0.5}], output_path="c4.mp4")  # doctest: +SKIP
        """
        # 0. Every option, before any work.
        self.check_inputs(
            audio, midi, notes, fps, reference, chunk_seconds, output_type, output_path, video_layout,
            video_size, max_seconds, autocast_dtype, stu_batch, callback_on_chunk_end, highlight_keys,
        )  # fmt: skip
        fe, note_khp = self.feature_extractor, self.khp_architecture == "notes"

        # 1. The music: audio -> mono float32 waveform at its own rate; MIDI or notes -> checked note
        # dicts, played for a second after the last note ends, rendered with a SoundFont for the video.
        clock = _Stopwatch()
        if audio is not None:
            wave, sr = load_audio_input(audio, sampling_rate, max_seconds)
        else:
            notes = read_midi(midi) if midi is not None else check_notes(notes)
            duration = max(n["offset"] for n in notes) + RELEASE_TAIL_S
            if max_seconds is not None:
                _check_length(duration, max_seconds, "the piece")
            sr = fe.sampling_rate
            wave = render_notes(notes, sampling_rate=sr, duration=duration)
        clock.lap("audio")

        # 2. Features: one log-mel row per model frame (or, for a note-aware KHP given notes, their piano
        # roll); which model frame each output frame shows.
        model_fps = fe.fps
        T = fe.num_frames(len(wave), sr)  # model frames
        fps = float(fps or model_fps)
        T_out = fe.num_frames(len(wave), sr, fps)
        source = _retime(T, model_fps, fps, T_out)  # (T_out,) model frame of each output frame
        if note_khp and notes is not None:
            khp_music = {"piano_roll": notes_to_roll(notes, T, model_fps), "fps": model_fps}  # (T, 88, 3)
        else:
            features = fe(wave, sampling_rate=sr)["input_features"][0]  # (T, F) float32
            khp_music = {"input_features": features} | ({"fps": model_fps} if note_khp else {})
        clock.lap("features")

        # 3. Appearance reference: whose performance, in which scene (and where its keys are).
        device = self._execution_device
        ref = reference if reference is not None else self.reference
        res, coarse_size = self.stu.config.resolution, self.khp.config.coarse_size
        stu_ref = ref.at(res)[None].to(device)  # (1, 3, R, R)
        quads = None if ref.keyboard_quads is None else ref.keyboard_quads.float().cpu().numpy()  # (88, 4, 2)
        khp_ref = {}
        if use_reference_in_khp:
            khp_ref = {"reference_keypoints": ref.keypoints, "reference_frames": ref.at(coarse_size)}
            if note_khp:
                khp_ref["reference_keys"] = None if quads is None else torch.from_numpy(quads)
        # The keys to light, per output frame: from the notes given, or painted as KHP transcribes them.
        sounding = None
        if highlight_keys:
            sounding = sounding_keys(notes or [], T_out, fps)  # (T_out, 88) bool
        played = list(notes) if notes is not None else ([] if note_khp else None)

        # 4-5. Chunk by chunk: KHP with context on both sides, then the STU a few frames at a time with
        # its state carried; each step's output frames go to the file and the output as they come.
        out = _Outputs(output_type, T_out, res, coarse_size)
        writer = None
        if output_path is not None:
            writer = VideoWriter(output_path, fps, audio=wave, sampling_rate=sr)
            if encode_in_background:  # composing + encoding overlap the next STU steps
                writer = BackgroundWriter(writer)
        chunk = max(1, int(round(chunk_seconds * model_fps)))
        total = math.ceil(T / chunk)
        state = None
        try:
            chunks = self.khp.iter_predict(**khp_music, chunk_frames=chunk, **khp_ref)
            bar = self.progress_bar(total=total) if show_progress else None
            for done, (a, _, k) in enumerate(chunks, 1):
                clock.lap("khp")
                if note_khp and audio is not None:  # notes transcribed in this chunk (note-aware KHP)
                    heard = _transcribed(k.notes)
                    played += heard
                    if sounding is not None:
                        sounding_keys(heard, T_out, fps, out=sounding)
                # (1, n, K, 2), (1, n, K), (1, n, 3, s, s)
                kp, vis, co = k.keypoints, k.visibility, k.coarse_frames
                steps = self.stu.iter_render(
                    kp, vis, co, stu_ref, state=state, batch_frames=stu_batch, autocast_dtype=autocast_dtype,
                    clock=clock,
                )  # fmt: skip
                c = a
                for step in steps:
                    state, m = step.state, step.frames.shape[1]
                    lo, hi = np.searchsorted(source, [c, c + m])  # `source` is sorted
                    pick = source[lo:hi] - a  # this step's output frames, as indices into the chunk
                    if len(pick):
                        frames = step.frames[0][torch.as_tensor(pick - (c - a))]  # (m', 3, R, R) in [0, 1]
                        sel = (kp[0][pick], vis[0][pick], co[0][pick])
                        pictures = out.put(lo, frames, *sel)
                        if writer is not None:
                            lit = (
                                None if sounding is None else sounding[lo:hi].copy()
                            )  # (m', 88) keys to light
                            compose = functools.partial(
                                compose_frames, pictures, sel[0].numpy(), sel[1].numpy(), sel[2].numpy(),
                                video_layout, video_size, keyboard_quads=quads, sounding=lit,
                            )  # fmt: skip
                            writer.submit(compose)  # now, or on the writer thread
                        clock.lap("encoding")
                    c += m
                if bar is not None:
                    bar.update()
                if callback_on_chunk_end is not None:
                    callback_on_chunk_end(done, total)
            if bar is not None:
                bar.close()
            # 6. The video file: flush, mux the audio, publish.
            video = None
            if writer is not None:
                video = writer.close()
                clock.lap("encoding")
        except BaseException:
            if writer is not None:
                writer.abort()
            raise

        # 7. Output.
        if played is not None:
            played.sort(key=lambda n: (n["onset"], n["pitch"]))
        result = (*out.result(), fps, wave, sr, video, played)
        self.last_timings = clock.laps  # seconds per stage, for benchmarks and the CLI
        self.maybe_free_model_hooks()
        if not return_dict:
            return result
        return APVGPipelineOutput(*result)


def _transcribed(notes) -> list[dict]:
    """A chunk's `KHPPrediction.notes` (one list of note dicts per batch item, or None) -> the note dicts
    of the one batch item. A note-aware KHP transcribes the whole audio first and sends the notes with the
    first chunk (times in seconds from the start), none with the others."""
    if not notes:
        return []
    if isinstance(notes[0], list | tuple):  # per batch item
        notes = notes[0]
    return [dict(n) for n in notes]


class _Outputs:
    """The pipeline's outputs, preallocated and filled step by step (no list of chunks, no second copy):
    frames as uint8 unless `output_type="pt"`, none at all for `output_type=None`."""

    def __init__(self, output_type: str | None, T: int, res: int, coarse_size: int):
        self.output_type = output_type
        self.keypoints: np.ndarray | None = None
        self.visibility: np.ndarray | None = None
        self.frames = self.coarse = None
        if output_type == "pt":
            self.frames = torch.empty(T, 3, res, res)
            self.coarse = torch.empty(T, 3, coarse_size, coarse_size)
        elif output_type is not None:
            self.frames = np.empty((T, res, res, 3), np.uint8)
            self.coarse = np.empty((T, 3, coarse_size, coarse_size), np.uint8)
        self.T = T

    def put(self, at: int, frames: torch.Tensor, keypoints, visibility, coarse) -> np.ndarray:
        """Store output frames [at, at + n): frames (n, 3, R, R) float; returns them as uint8 (n, R, R, 3)."""
        n = len(frames)
        if self.keypoints is None:
            self.keypoints = np.empty((self.T, *keypoints.shape[1:]), np.float32)
            self.visibility = np.empty((self.T, *visibility.shape[1:]), np.float32)
        self.keypoints[at : at + n] = keypoints.numpy()
        self.visibility[at : at + n] = visibility.numpy()
        pictures = to_uint8_images(frames)
        if self.output_type == "pt":
            self.frames[at : at + n] = frames
            self.coarse[at : at + n] = coarse
        elif self.output_type is not None:
            self.frames[at : at + n] = pictures
            self.coarse[at : at + n] = (coarse * 255).round_().clamp_(0, 255).to(torch.uint8).numpy()
        return pictures

    def result(self) -> tuple:
        frames = self.frames
        if self.output_type == "pil":
            frames = [PIL.Image.fromarray(f) for f in frames]
        return frames, self.keypoints, self.visibility, self.coarse


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
    frames = output.frames
    if frames is None or not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(
            "export_to_video needs uint8 (T, H, W, 3) frames: call the pipeline with output_type='np'"
        )
    check_output_path(path)
    layout = layout or ("overlay" if overlay else "frames")
    audio = output.audio
    if audio is not None and audio.ndim == 2:
        audio = to_mono(audio)
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
