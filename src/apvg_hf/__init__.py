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

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from . import skeleton
from .configuration_khp import KHPConfig
from .feature_extraction_apvg import APVGFeatureExtractor
from .heatmaps import keypoints_to_heatmaps
from .modeling_khp import KHPModel, KHPOutput
from .modeling_stu import STUModel, STUOutput
from .pipeline_apvg import AppearanceReference, APVGPipeline, APVGPipelineOutput, export_to_video
from .pipeline_performance_video import (
    APVGPipelineConfig,
    AudioToPerformanceVideoPipeline,
    default_pipeline_path,
    register,
)

AutoConfig.register(KHPConfig.model_type, KHPConfig, exist_ok=True)
AutoModel.register(KHPConfig, KHPModel, exist_ok=True)
AutoFeatureExtractor.register(KHPConfig, APVGFeatureExtractor, exist_ok=True)
register()  # AutoConfig "apvg_pipeline" and the transformers task "audio-to-performance-video"

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
    "STUModel",
    "STUOutput",
    "default_pipeline_path",
    "export_to_video",
    "keypoints_to_heatmaps",
    "skeleton",
    "__version__",
]
