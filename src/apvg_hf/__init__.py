"""apvg-hf: Audio-driven Performance Video Generation (after *Let's Play Music*, ICPR 2020).

Importing the package registers its classes with the transformers Auto classes
(`AutoConfig`, `AutoModel`, `AutoFeatureExtractor`) and the task `audio-to-performance-video`:

    import apvg_hf
    from transformers import pipeline
    pipeline("audio-to-performance-video")("etude.wav", output_path="etude.mp4")

>>> import apvg_hf
>>> from transformers import AutoConfig
>>> type(AutoConfig.for_model("apvg_khp")).__name__
'KHPConfig'
"""

import diffusers
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from . import skeleton
from .configuration_apvg_pipeline import APVGPipelineConfig
from .configuration_khp import KHPConfig
from .feature_extraction_apvg import APVGFeatureExtractor
from .heatmaps import keypoints_to_heatmaps
from .modeling_khp import KHPModel, KHPOutput, KHPPrediction
from .modeling_stu import STUModel, STUOutput
from .pipeline_apvg import APVGPipeline, APVGPipelineOutput, export_to_video
from .pipeline_performance_video import AudioToPerformanceVideoPipeline, default_pipeline_path, register
from .reference import AppearanceReference

AutoConfig.register(KHPConfig.model_type, KHPConfig, exist_ok=True)
AutoModel.register(KHPConfig, KHPModel, exist_ok=True)
AutoFeatureExtractor.register(KHPConfig, APVGFeatureExtractor, exist_ok=True)
register()  # AutoConfig "apvg_pipeline" and the transformers task "audio-to-performance-video"
# `DiffusionPipeline.from_pretrained(folder)` looks the model_index.json's `_class_name` up on the diffusers
# module: make APVGPipeline findable there, as the Auto registrations above do for transformers.
if getattr(diffusers, "APVGPipeline", None) is not APVGPipeline:
    setattr(diffusers, "APVGPipeline", APVGPipeline)  # noqa: B010

__version__ = "0.1.0"
__all__ = [
    "APVGFeatureExtractor",
    "APVGPipeline",
    "APVGPipelineConfig",
    "APVGPipelineOutput",
    "AppearanceReference",
    "AudioToPerformanceVideoPipeline",
    "KHPConfig",
    "KHPModel",
    "KHPOutput",
    "KHPPrediction",
    "STUModel",
    "STUOutput",
    "default_pipeline_path",
    "export_to_video",
    "keypoints_to_heatmaps",
    "skeleton",
    "__version__",
]
