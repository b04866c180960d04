"""Metrics and baselines shared by the evaluation scripts and the tests."""

from .baselines import LSTMBaseline, MeanPoseBaseline, NearestNeighbourBaseline, mfcc
from .keypoints import KeypointMetrics
from .keypress import decode_key_presses, f1_from_counts, match_events, note_events
from .khp import evaluate_predictor, khp_predict

__all__ = [
    "KeypointMetrics",
    "LSTMBaseline",
    "MeanPoseBaseline",
    "NearestNeighbourBaseline",
    "decode_key_presses",
    "evaluate_predictor",
    "khp_predict",
    "f1_from_counts",
    "match_events",
    "mfcc",
    "note_events",
]
