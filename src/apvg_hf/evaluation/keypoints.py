"""Keypoint metrics on held-out clips: mean per-joint error, PCK, velocity error, body and hands apart.

Errors are in normalised image units (a fraction of the image side) and in pixels at 256 × 256;
PCK@a counts keypoints closer than a × the image side. Only visible keypoints are scored (the
velocity error needs the keypoint visible in both frames).

>>> import numpy as np
>>> m = KeypointMetrics()
>>> gt = np.full((10, 56, 2), 0.5, np.float32)
>>> m.update(gt + 0.01, gt, np.ones((10, 56)))
>>> r = m.compute()
>>> float(round(r["hands"]["mpjpe"], 4)), float(r["hands"]["pck@0.05"]), float(round(r["body"]["mpjpe_px256"], 2))
(0.0141, 1.0, 3.62)
"""

from __future__ import annotations

import numpy as np

from ..skeleton import BODY_INDICES, HAND_INDICES

GROUPS = {
    "body": np.array(BODY_INDICES),
    "hands": np.array(sorted(i for idx in HAND_INDICES.values() for i in idx)),
}
THRESHOLDS = (0.05, 0.1)


class KeypointMetrics:
    """Accumulates per-clip errors; `compute()` gives {group: {metric: value}} for body, hands, all."""

    def __init__(self, image_size: int = 256):
        self.image_size = image_size
        self.sums: dict[str, dict[str, float]] = {}

    def _add(self, group: str, name: str, value: float, count: float) -> None:
        s = self.sums.setdefault(group, {})
        s[name] = s.get(name, 0.0) + value
        s[name + "#"] = s.get(name + "#", 0.0) + count

    def update(self, pred: np.ndarray, target: np.ndarray, visibility: np.ndarray | None = None) -> None:
        """pred, target (T, K, 2) normalised; visibility (T, K) 0/1 (all visible when None)."""
        pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {pred.shape} and target {target.shape} differ")
        vis = (
            np.ones(pred.shape[:2])
            if visibility is None
            else (np.asarray(visibility) > 0.5).astype(np.float64)
        )
        err = np.linalg.norm(pred - target, axis=-1)  # (T, K)
        verr = np.linalg.norm(np.diff(pred, axis=0) - np.diff(target, axis=0), axis=-1)  # (T-1, K)
        vvis = vis[1:] * vis[:-1]
        for group, idx in list(GROUPS.items()) + [("all", np.arange(pred.shape[1]))]:
            e, v = err[:, idx], vis[:, idx]
            n = v.sum()
            self._add(group, "mpjpe", float((e * v).sum()), n)
            for a in THRESHOLDS:
                self._add(group, f"pck@{a}", float(((e < a) * v).sum()), n)
            self._add(
                group, "velocity", float((verr[:, idx] * vvis[:, idx]).sum()), float(vvis[:, idx].sum())
            )

    def compute(self) -> dict[str, dict[str, float]]:
        out = {}
        for group, s in self.sums.items():
            r = {k: s[k] / max(s[k + "#"], 1e-9) for k in s if not k.endswith("#")}
            r["mpjpe_px256"] = r["mpjpe"] * self.image_size
            r["velocity_px256"] = r["velocity"] * self.image_size
            out[group] = r
        return out
