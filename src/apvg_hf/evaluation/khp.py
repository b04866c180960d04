"""Run a keypoint predictor over held-out clips and score it (shared by training and evaluation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .keypoints import KeypointMetrics
from .keypress import decode_key_presses, f1_from_counts, match_events, note_events


@torch.no_grad()
def khp_predict(model, features: np.ndarray, chunk: int = 1800) -> dict[str, np.ndarray]:
    """Whole-clip KHP inference: (T, F) -> keypoints (T, K, 2), visibility (T, K), coarse (T, 3, s, s).

    Long inputs run in chunks of `chunk` frames with `model.config.receptive_field` frames of context
    on each side, which gives the single-pass result at bounded memory.
    """
    model.eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.array(features, dtype=np.float32), dtype=torch.float32, device=device)
    T, ctx = len(x), model.config.receptive_field
    outs = {"keypoints": [], "visibility": [], "coarse": []}
    for a in range(0, T, chunk):
        b = min(a + chunk, T)
        lo, hi = max(0, a - ctx), min(T, b + ctx)
        o = model(x[None, lo:hi])
        sl = slice(a - lo, a - lo + (b - a))
        outs["keypoints"].append(o.keypoints[0, sl].float().cpu())
        outs["visibility"].append(torch.sigmoid(o.visibility_logits[0, sl]).float().cpu())
        if o.coarse_frames is not None:
            outs["coarse"].append(o.coarse_frames[0, sl].float().cpu())
    return {k: torch.cat(v).numpy() for k, v in outs.items() if v}


def evaluate_predictor(
    predict: Callable[[np.ndarray], dict | np.ndarray], clips, image_size: int = 256
) -> dict:
    """Score `predict(features) -> keypoints or {"keypoints", "coarse"?}` on clips.

    Returns {"body": {...}, "hands": {...}, "all": {...}, "keypress": {precision, recall, f1},
    "coarse_l1": float (when predicted)}.
    """
    metrics = KeypointMetrics(image_size)
    counts = np.zeros(3, dtype=np.int64)
    coarse_err, coarse_n = 0.0, 0
    for clip in clips:
        out = predict(clip.features)
        out = out if isinstance(out, dict) else {"keypoints": out}
        kp = np.asarray(out["keypoints"])
        metrics.update(kp, clip.keypoints, clip.visibility)
        meta = clip.meta
        events = decode_key_presses(kp, np.asarray(meta["keyboard_quads"]), meta["keyboard_pitches"])
        counts += match_events(events, note_events(meta["notes"], meta["fps"], clip.num_frames), tolerance=2)
        if "coarse" in out and clip.coarse is not None and clip.coarse.size:
            coarse_err += (
                float(np.abs(out["coarse"] - clip.coarse.astype(np.float32) / 255).mean()) * clip.num_frames
            )
            coarse_n += clip.num_frames
    result = metrics.compute()
    result["keypress"] = f1_from_counts(*counts.tolist())
    result["keypress"]["events"] = {
        "matched": int(counts[0]),
        "predicted": int(counts[1]),
        "notes": int(counts[2]),
    }
    if coarse_n:
        result["coarse_l1"] = coarse_err / coarse_n
    return result
