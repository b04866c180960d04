"""The transformers task `audio-to-performance-video`: `pipeline(...)` over an [`APVGPipeline`] folder.

>>> import apvg_hf
>>> from transformers.pipelines import PIPELINE_REGISTRY
>>> "audio-to-performance-video" in PIPELINE_REGISTRY.get_supported_tasks()
True

Usage (the embedded default pipeline, offline):

    import apvg_hf
    from transformers import pipeline
    pipeline("audio-to-performance-video")("etude.wav", output_path="etude.mp4")

`model=` takes a pipeline folder or a Hub repo id. `transformers.pipeline()` reads the folder's root
`config.json` (an [`APVGPipelineConfig`], written by `APVGPipeline.save_pretrained`) and then loads the
whole diffusers pipeline from the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from transformers import AutoConfig
from transformers.pipelines import PIPELINE_REGISTRY, Pipeline

from .configuration_apvg_pipeline import TASK, APVGPipelineConfig

DEFAULT_HUB_ID = "apvg-hf/apvg-virtual-pianist"
DEFAULT_NAME = "apvg-virtual-pianist"


def default_pipeline_path() -> str:
    """Where the embedded default pipeline is, in this order:

    1. `$APVG_DEFAULT_PIPELINE` (a folder or a Hub id), if set;
    2. the copy inside the installed package (`apvg_hf/default_pipeline/`: wheels carry it);
    3. the checkout's `pipelines/apvg-virtual-pianist/` (an editable install);
    4. the Hub id `apvg-hf/apvg-virtual-pianist` (an install that has neither).
    """
    env = os.environ.get("APVG_DEFAULT_PIPELINE")
    if env:
        return env
    here = Path(__file__).resolve().parent
    for candidate in (here / "default_pipeline", here.parents[1] / "pipelines" / DEFAULT_NAME):
        if (candidate / "model_index.json").is_file():
            return str(candidate)
    return DEFAULT_HUB_ID


MIDI_SUFFIXES = (".mid", ".midi")


def is_midi(inputs) -> bool:
    """A MIDI input: a path ending in .mid / .midi, or bytes that start like a MIDI file ("MThd")."""
    if isinstance(inputs, str | os.PathLike):
        return Path(inputs).suffix.lower() in MIDI_SUFFIXES
    return isinstance(inputs, bytes | bytearray) and bytes(inputs[:4]) == b"MThd"


class _PipelineLoader:
    """What `transformers.pipeline()` calls `from_pretrained` on: loads the whole diffusers pipeline."""

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        from .pipeline_apvg import APVGPipeline

        hub = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if kwargs.get(k)}
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        if dtype is not None and dtype != "auto":
            hub["dtype"] = dtype
        return APVGPipeline.from_pretrained(path, **hub)


class AudioToPerformanceVideoPipeline(Pipeline):
    """Audio -> a video of the performer playing it (the transformers face of [`APVGPipeline`]).

    Inputs: a path (audio, or a MIDI file: `.mid` / `.midi`), a numpy array with `sampling_rate=`, a dict
    {"array", "sampling_rate"}, file bytes, or a list of them. Call options: `output_path` (an mp4; for a
    list, a list of paths or a folder), `fps`, `video_layout` ("frames" | "overlay" | "side-by-side"),
    `video_size`, `highlight_keys` (MIDI: light the keys that sound), `chunk_seconds`, `reference`,
    `return_frames` (default True). Output: a dict {"video": path or None, "frames": (T, H, W, 3) uint8
    or None, "keypoints": (T, K, 2), "visibility": (T, K), "fps", "notes": the notes played (MIDI) or
    None} (a list of them for a list).
    """

    _load_tokenizer = False
    _load_feature_extractor = False  # the diffusers pipeline carries its own
    _load_image_processor = False
    _load_processor = False
    _load_video_processor = False

    _max_seconds: float | None = 3600.0

    def __init__(self, model, *args, **kwargs):
        kwargs.setdefault("device", -1 if model.device.type == "cpu" else model.device)
        super().__init__(model, *args, **kwargs)
        self.feature_extractor = self.model.feature_extractor

    def _sanitize_parameters(self, sampling_rate=None, output_path=None, return_frames=None, **call):
        allowed = {"fps", "video_layout", "video_size", "chunk_seconds", "reference", "use_reference_in_khp",
                   "max_seconds", "show_progress", "autocast_dtype", "callback_on_chunk_end",
                   "highlight_keys"}  # fmt: skip
        unknown = set(call) - allowed
        if unknown:
            raise TypeError(
                f"unknown argument(s) {sorted(unknown)}; accepted: {sorted(allowed | {'sampling_rate', 'output_path', 'return_frames'})}"
            )
        pre = {} if sampling_rate is None else {"sampling_rate": sampling_rate}
        self._max_seconds = call.get("max_seconds", 3600.0)  # checked before decoding, as the pipeline does
        fwd = dict(call)
        if output_path is not None:
            if isinstance(output_path, str | os.PathLike):
                from .video_io import check_output_path

                check_output_path(output_path)  # before the audio is decoded
            fwd["output_path"] = output_path
        if return_frames is not None:
            fwd["return_frames"] = return_frames
        return pre, fwd, {}

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, list | tuple) and len(inputs) == 0:
            raise ValueError(
                "no inputs: pass an audio (path, bytes, array, dict) or a non-empty list of them"
            )
        if isinstance(inputs, list | tuple) and all(
            isinstance(x, int | float | np.number) and not isinstance(x, bool) for x in inputs
        ):
            inputs = np.asarray(inputs, dtype=np.float32)  # a list of samples is one waveform
        if isinstance(inputs, list | tuple):
            paths = kwargs.pop("output_path", None)
            if paths is not None and not isinstance(paths, list | tuple):
                folder = Path(paths)
                folder.mkdir(parents=True, exist_ok=True)
                paths = [folder / f"{i:04d}.mp4" for i in range(len(inputs))]
            if paths is not None and len(paths) != len(inputs):
                raise ValueError(f"{len(inputs)} inputs but {len(paths)} output paths")
            return [
                super(AudioToPerformanceVideoPipeline, self).__call__(
                    x, **kwargs, **({} if paths is None else {"output_path": paths[i]})
                )
                for i, x in enumerate(inputs)
            ]
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, sampling_rate=None):
        from .pipeline_apvg import load_audio_input

        if is_midi(inputs):  # the pipeline reads and renders it
            return {"midi": inputs}
        if isinstance(inputs, np.ndarray) and sampling_rate is None:
            raise ValueError(
                "an array input needs sampling_rate=... (or pass {'array': ..., 'sampling_rate': ...})"
            )
        wave, sr = load_audio_input(inputs, sampling_rate, max_seconds=self._max_seconds)
        return {"audio": wave, "sampling_rate": sr}

    def _forward(self, model_inputs, output_path=None, return_frames=True, **call):
        out = self.model(
            model_inputs.get("audio"),
            sampling_rate=model_inputs.get("sampling_rate"),
            midi=model_inputs.get("midi"),
            output_type="np" if return_frames else None,
            output_path=output_path,
            show_progress=call.pop("show_progress", False),
            **call,
        )
        return {
            "video": None if output_path is None else str(output_path),
            "frames": out.frames,
            "keypoints": out.keypoints,
            "visibility": out.visibility,
            "fps": out.fps,
            "notes": out.notes,
        }

    def postprocess(self, model_outputs):
        return dict(model_outputs)

    # A pipeline folder holds several models: save the whole diffusers pipeline, not one model.
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        self.model.save_pretrained(save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        return self.model.push_to_hub(repo_id, **kwargs)


def register() -> None:
    """Register the config with AutoConfig and the task with transformers (done by `import apvg_hf`)."""
    AutoConfig.register(APVGPipelineConfig.model_type, APVGPipelineConfig, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=AudioToPerformanceVideoPipeline,
        pt_model=_PipelineLoader,
        default={"model": (default_pipeline_path(), None)},
        type="audio",
    )
