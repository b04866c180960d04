"""The root `config.json` of a pipeline folder: what `transformers.pipeline()` reads first."""

from __future__ import annotations

from transformers import PretrainedConfig

TASK = "audio-to-performance-video"


class APVGPipelineConfig(PretrainedConfig):
    """Names the task and repeats a few facts of the components (for model cards and the Hub UI); the
    weights and the full component configs live in the component folders.

    >>> APVGPipelineConfig(fps=30.0, resolution=128).model_type
    'apvg_pipeline'
    """

    model_type = "apvg_pipeline"

    def __init__(self, fps: float = 30.0, resolution: int = 128, sampling_rate: int = 16000, **kwargs):
        super().__init__(**kwargs)
        self.fps, self.resolution, self.sampling_rate = float(fps), int(resolution), int(sampling_rate)
        self.pipeline_tag = TASK
        self.pipeline_class = "apvg_hf.APVGPipeline"

    @classmethod
    def from_pipeline(cls, pipe) -> APVGPipelineConfig:
        fe = pipe.feature_extractor
        return cls(fps=fe.fps, resolution=pipe.stu.config.resolution, sampling_rate=fe.sampling_rate)
