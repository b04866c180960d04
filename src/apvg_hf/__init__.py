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


def _register_with_diffusers() -> None:
    """What the Auto registrations above do for transformers, for the generic `DiffusionPipeline`:
    `from_pretrained(folder or Hub id)` looks `_class_name` up on the diffusers module, and checks that
    each component's library is one it knows how to load (else it looks for remote code on the Hub)."""
    from diffusers.pipelines import pipeline_loading_utils as loading

    if getattr(diffusers, "APVGPipeline", None) is not APVGPipeline:
        setattr(diffusers, "APVGPipeline", APVGPipeline)  # noqa: B010
    bases = {**loading.LOADABLE_CLASSES["diffusers"], **loading.LOADABLE_CLASSES["transformers"]}
    for module in ("feature_extraction_apvg", "modeling_khp", "modeling_stu", "reference"):
        loading.LOADABLE_CLASSES.setdefault(f"{__name__}.{module}", bases)


_register_with_diffusers()

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
