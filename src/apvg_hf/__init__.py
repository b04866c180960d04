"""apvg-hf: Audio-driven Performance Video Generation (after *Let's Play Music*, ICPR 2020).

Importing the package registers its classes with the transformers Auto classes
(`AutoConfig`, `AutoModel`, `AutoFeatureExtractor`).

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

AutoConfig.register(KHPConfig.model_type, KHPConfig, exist_ok=True)
AutoModel.register(KHPConfig, KHPModel, exist_ok=True)
AutoFeatureExtractor.register(KHPConfig, APVGFeatureExtractor, exist_ok=True)

__version__ = "0.1.0"
__all__ = [
    "APVGFeatureExtractor",
    "APVGPipeline",
    "APVGPipelineOutput",
    "AppearanceReference",
    "KHPConfig",
    "KHPModel",
    "KHPOutput",
    "STUModel",
    "STUOutput",
    "export_to_video",
    "keypoints_to_heatmaps",
    "skeleton",
    "__version__",
]
