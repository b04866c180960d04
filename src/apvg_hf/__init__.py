"""apvg-hf: Audio-driven Performance Video Generation (after *Let's Play Music*, ICPR 2020).

>>> import apvg_hf
>>> apvg_hf.skeleton.NUM_KEYPOINTS
56
"""

from . import skeleton
from .feature_extraction_apvg import APVGFeatureExtractor

__version__ = "0.1.0"
__all__ = ["APVGFeatureExtractor", "skeleton", "__version__"]
