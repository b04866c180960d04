"""Scores for a real performer (a dataset from `apvg preprocess`), where no notes or exact labels exist:
keypoints against the pose estimator's (visible joints only), the wrists' speed against the real
wrists' speed, and frames against the real frames (PSNR, SSIM, hands PSNR, flicker).

Used by `scripts/evaluate_real.py` on the held-out end of the video.
"""

from __future__ import annotations

import numpy as np

from ..skeleton import BODY_INDICES, HAND_INDICES, INDEX

WRISTS = [INDEX["left_wrist"], INDEX["right_wrist"]]


def joint_errors_px(pred: np.ndarray, target: np.ndarray, visibility: np.ndarray, size: int) -> dict:
    """(T, K, 2) predicted and real keypoints, (T, K) visibility -> mean per-joint error in pixels at
    `size`, over the visible joints: all, body, hands."""
    err = np.linalg.norm((np.asarray(pred) - np.asarray(target)) * size, axis=-1)  # (T, K)
    vis = np.asarray(visibility) > 0.5
    hands = sorted(i for idx in HAND_INDICES.values() for i in idx)

    def mean(cols):
        v = vis[:, cols]
        return float(err[:, cols][v].mean()) if v.any() else float("nan")

    return {"all": mean(list(range(err.shape[1]))), "body": mean(BODY_INDICES), "hands": mean(hands)}


def wrist_speed(keypoints: np.ndarray, visibility: np.ndarray, wrist: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K, 2), (T, K), a joint index -> its speed between frames (T - 1,) and where it is visible in
    both neighbouring frames (T - 1,) bool."""
    kp, vis = np.asarray(keypoints), np.asarray(visibility)
    speed = np.linalg.norm(np.diff(kp[:, wrist], axis=0), axis=-1)
    return speed, (vis[1:, wrist] > 0.5) & (vis[:-1, wrist] > 0.5)


def wrist_speed_correlation(pred: np.ndarray, target: np.ndarray, visibility: np.ndarray) -> float:
    """Pearson correlation between the predicted and the real wrists' speeds (frames where a wrist is
    visible in both neighbouring frames), both wrists pooled; 0 for a prediction that does not move."""
    rs = []
    for w in WRISTS:
        ps = np.linalg.norm(np.diff(np.asarray(pred)[:, w], axis=0), axis=-1)
        ts, ok = wrist_speed(target, visibility, w)
        if ok.sum() < 3 or ps[ok].std() == 0 or ts[ok].std() == 0:
            rs.append(0.0)
            continue
        rs.append(float(np.corrcoef(ps[ok], ts[ok])[0, 1]))
    return float(np.mean(rs))


class KeypointScores:
    """Accumulates `joint_errors_px` (frame-weighted) and `wrist_speed_correlation` (per clip, weighted
    by frames) over clips."""

    def __init__(self, size: int = 128):
        self.size, self.sums, self.n = size, {}, 0

    def update(self, pred: np.ndarray, clip) -> None:
        T = clip.num_frames
        e = joint_errors_px(pred, clip.keypoints, clip.visibility, self.size)
        e["wrist_speed_r"] = wrist_speed_correlation(pred, clip.keypoints, clip.visibility)
        for k, v in e.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * T
        self.n += T

    def compute(self) -> dict[str, float]:
        return {
            f"{k}_px{self.size}" if k != "wrist_speed_r" else k: v / self.n for k, v in self.sums.items()
        } | {"frames": self.n}


def training_reference(dataset_dir, train_clips, clip: int, frame: int, coarse_size: int) -> dict:
    """The appearance reference the real-video scripts use: frame `frame` of training clip `clip` of a
    dataset from `apvg preprocess`, with its keypoints and key quads -> {"reference":
    AppearanceReference at 256, "keypoints" (K, 2), "keys" (88, 4, 2) float32, "coarse" (3, s, s) the
    reference blurred to the KHP's coarse size, "time_s" into the video}."""
    import torch

    from ..data.clips import load_frames
    from ..reference import AppearanceReference

    src = train_clips[clip]
    image = torch.from_numpy(np.array(load_frames(dataset_dir, "train", 256)[clip][frame])).float() / 255
    keypoints = np.array(src.keypoints[frame])
    ref = AppearanceReference.from_frame(
        image, keypoints, resolution=256, keyboard_quads=src.meta["keyboard_quads"]
    )
    return {
        "reference": ref,
        "keypoints": keypoints,
        "keys": np.asarray(src.meta["keyboard_quads"], np.float32),
        "coarse": ref.at(coarse_size).numpy(),
        "time_s": src.meta["start_time"] + frame / src.meta["fps"],
    }
