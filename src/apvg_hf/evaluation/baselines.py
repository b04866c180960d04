"""Baselines for audio -> keypoints, run on the same split as KHP.

- `MeanPoseBaseline`: the training set's mean pose in every frame.
- `NearestNeighbourBaseline`: per frame, the keypoints of the training frame whose audio context
  (MFCCs of ±`context` frames) is nearest.
- `LSTMBaseline`: *Audio to Body Dynamics* (Shlizerman et al., CVPR 2018): MFCCs in, one LSTM layer
  of 200 units, PCA-compressed keypoints out, with the output delayed by a few frames so the
  one-directional LSTM hears a little of what follows.
- `planned_keypoints` / `plan_clip`: the hand-written system, "transcribe then plan": notes (true,
  or from a transcriber) -> the virtual pianist's own planner and motion synthesis -> the clip's
  camera. Fed a clip's true notes it nearly reproduces the clip (the data were made this way; only
  the random torso sway and what happened before the clip differ); fed transcribed notes it shows
  what a transcriber plus a planner reach.

>>> import numpy as np
>>> mfcc(np.zeros((5, 80), np.float32)).shape
(5, 13)
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..data.notes import Note
from ..data.pianist import PianistConfig, plan_performance, synthesize_motion
from ..data.render import APPEARANCES, compute_visibility
from ..data.scene import Camera
from ..piano_roll import note_field


def mfcc(features: np.ndarray, n: int = 13) -> np.ndarray:
    """MFCCs from log-mel rows (T, F): the first `n` coefficients of an orthonormal DCT-II."""
    F_ = features.shape[-1]
    k, m = np.arange(n)[:, None], np.arange(F_)[None, :]
    dct = np.cos(np.pi * k * (2 * m + 1) / (2 * F_)) * np.sqrt(2.0 / F_)
    dct[0] /= np.sqrt(2.0)
    return (np.asarray(features, np.float64) @ dct.T).astype(np.float32)


class MeanPoseBaseline:
    """Predicts the mean training pose for every frame."""

    name = "mean pose"

    def fit(self, clips) -> MeanPoseBaseline:
        self.mean = np.concatenate([c.keypoints for c in clips]).mean(0)  # (K, 2)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.repeat(self.mean[None], len(features), 0)


def _context(x: np.ndarray, context: int) -> np.ndarray:
    """(T, D) -> (T, (2c+1) D): each row with its ±c neighbours (edges repeated)."""
    pad = np.pad(x, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([pad[i : i + len(x)] for i in range(2 * context + 1)], axis=1)


class NearestNeighbourBaseline:
    """Audio retrieval: copy the keypoints of the nearest training frame in MFCC-context space."""

    name = "nearest neighbour"

    def __init__(self, context: int = 4, max_frames: int = 60000, seed: int = 0):
        self.context, self.max_frames, self.seed = context, max_frames, seed

    def fit(self, clips) -> NearestNeighbourBaseline:
        keys = np.concatenate([_context(mfcc(c.features), self.context) for c in clips])
        values = np.concatenate([c.keypoints for c in clips])
        if len(keys) > self.max_frames:
            pick = np.random.default_rng(self.seed).choice(len(keys), self.max_frames, replace=False)
            keys, values = keys[pick], values[pick]
        self.mu, self.sd = keys.mean(0), keys.std(0) + 1e-6
        self.keys = torch.from_numpy((keys - self.mu) / self.sd).float()
        self.values = values
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        q = torch.from_numpy((_context(mfcc(features), self.context) - self.mu) / self.sd).float()
        idx = torch.cat([torch.cdist(c, self.keys).argmin(1) for c in q.split(1024)])
        return self.values[idx.numpy()]


class LSTMBaseline(nn.Module):
    """MFCC -> LSTM(200) -> PCA coefficients of the (K × 2) keypoints, output delayed by `delay` frames."""

    name = "LSTM (Shlizerman et al.)"

    def __init__(
        self,
        n_mfcc: int = 13,
        hidden: int = 200,
        n_components: int = 16,
        delay: int = 6,
        num_keypoints: int = 56,
    ):
        super().__init__()
        self.config = dict(
            n_mfcc=n_mfcc, hidden=hidden, n_components=n_components, delay=delay, num_keypoints=num_keypoints
        )
        self.lstm = nn.LSTM(n_mfcc, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_components)
        self.register_buffer("in_mu", torch.zeros(n_mfcc))
        self.register_buffer("in_sd", torch.ones(n_mfcc))
        self.register_buffer("pca_mean", torch.zeros(num_keypoints * 2))
        self.register_buffer("pca_basis", torch.zeros(n_components, num_keypoints * 2))
        self.register_buffer("pca_scale", torch.ones(n_components))

    def _inputs(self, features: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(mfcc(features))
        x = (x - self.in_mu) / self.in_sd
        d = self.config["delay"]  # delayed output == input shifted earlier: pad the end
        return torch.cat([x[d:], x[-1:].repeat(d, 1)]) if d else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0])  # (B, T, C) scaled PCA coefficients

    def fit(
        self,
        clips,
        steps: int = 3000,
        batch_size: int = 32,
        window: int = 150,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
    ) -> LSTMBaseline:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        m = np.concatenate([mfcc(c.features) for c in clips])
        self.in_mu.copy_(torch.from_numpy(m.mean(0)))
        self.in_sd.copy_(torch.from_numpy(m.std(0) + 1e-6))
        y = np.concatenate([c.keypoints.reshape(len(c.keypoints), -1) for c in clips]).astype(np.float64)
        mean = y.mean(0)
        sample = y[:: max(1, len(y) // 20000)] - mean  # PCA on at most ~20k frames
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        C = self.config["n_components"]
        self.pca_mean.copy_(torch.from_numpy(mean).float())
        self.pca_basis.copy_(torch.from_numpy(vt[:C]).float())
        coef_sd = sample @ vt[:C].T
        self.pca_scale.copy_(torch.from_numpy(coef_sd.std(0) + 1e-6).float())
        xs = [self._inputs(c.features) for c in clips]
        ys = []
        for c in clips:
            y_clip = torch.from_numpy(np.array(c.keypoints).reshape(len(c.keypoints), -1))  # (T, K*2)
            ys.append(((y_clip - self.pca_mean) @ self.pca_basis.T) / self.pca_scale)
        lengths = np.array([len(c.keypoints) for c in clips])
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        for _ in tqdm(range(steps), desc="LSTM baseline", disable=not progress):
            ci = rng.choice(len(clips), batch_size, p=lengths / lengths.sum())
            xb, yb = [], []
            for i in ci:
                w = min(window, lengths[i])
                s0 = rng.integers(0, lengths[i] - w + 1)
                xb.append(xs[i][s0 : s0 + w]), yb.append(ys[i][s0 : s0 + w])
            w = min(len(a) for a in xb)
            loss = ((self(torch.stack([a[:w] for a in xb])) - torch.stack([a[:w] for a in yb])) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.parameters(), 1.0)
            opt.step()
        return self.eval()

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        coef = self(self._inputs(features)[None])[0] * self.pca_scale  # (T, C)
        y = coef @ self.pca_basis + self.pca_mean
        return y.view(len(features), -1, 2).clamp(0, 1).numpy()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps(self.config, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> LSTMBaseline:
        directory = Path(directory)
        model = cls(**json.loads((directory / "config.json").read_text()))
        model.load_state_dict(load_file(directory / "model.safetensors"))
        return model.eval()


def _as_note(n) -> Note:
    """A note dict (pitch, onset, offset, velocity?, hand?) or object -> `Note` (finger left to the planner)."""
    get = partial(note_field, n)
    velocity, hand = get("velocity"), get("hand")
    return Note(
        pitch=int(get("pitch")),
        onset=float(get("onset")),
        offset=float(get("offset")),
        velocity=80 if velocity is None else int(round(velocity)),
        hand=hand if hand in ("left", "right") else None,
    )


def planned_keypoints(
    notes: list,
    num_frames: int,
    fps: float,
    appearance_name: str,
    camera: dict | Camera,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The virtual pianist playing `notes` (clip-relative times) in a clip's scene: keypoints
    (T, 56, 2) in [0, 1] and visibility (T, 56), as the data generator makes them.

    Notes are dicts (or objects) with pitch, onset, offset and optionally velocity and hand (a
    transcriber's notes have no hand: the planner assigns them). A note that began before the clip
    (negative onset) starts at 0; notes that are over by then are dropped. `appearance_name` selects
    the performer's body (`APPEARANCES`), `camera` is the clip's camera (`Camera.to_dict()` form).
    `seed` drives the torso's random sway, the one random part of the motion.
    """
    body = next((a.body for a in APPEARANCES if a.name == appearance_name), None)
    if body is None:
        raise KeyError(f"unknown appearance {appearance_name!r} (one of {[a.name for a in APPEARANCES]})")
    if not isinstance(camera, Camera):
        camera = Camera(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in camera.items()})
    clipped = []
    for n in map(_as_note, notes):
        n = n.replace(onset=max(n.onset, 0.0))
        if n.offset > n.onset:
            clipped.append(n)
    plan = plan_performance(clipped, body=body, config=PianistConfig())
    motion = synthesize_motion(plan, duration=num_frames / fps, fps=fps, rng=np.random.default_rng(seed))
    joints = motion.joints[:num_frames]
    uv, _ = camera.project(joints)
    return uv.astype(np.float32), compute_visibility(joints, camera, uv)


def plan_clip(clip, notes: list | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """`planned_keypoints` for a clip (from `load_clips`) in `evaluate_predictor`'s format:
    {"keypoints", "visibility"}; `notes` default to the clip's true notes.

    evaluate_predictor(plan_clip, clips)                                   # the planner's ceiling
    evaluate_predictor(lambda c: plan_clip(c, transcribed[id(c)]), clips)  # transcribe then plan
    """
    m = clip.meta
    kp, vis = planned_keypoints(
        m["notes"] if notes is None else notes, clip.num_frames, m["fps"], m["appearance"], m["camera"], seed
    )
    return {"keypoints": kp, "visibility": vis}
