"""Pose estimation for real videos: frames -> the project's 56-point skeleton, with confidences.

An estimator is any callable `estimator(frames) -> PoseTrack` over an iterable of (H, W, 3) uint8
RGB frames. The one shipped is `MediaPipeHolistic`: MediaPipe 0.10.21's legacy Holistic solution,
whose pose and hand models live inside its wheel (nothing is downloaded at run time). It needs
numpy < 2, which this project does not run on, so it runs in its own virtual environment,
`.venv-mediapipe`, created on first use from the committed lock `requirements/mediapipe-lock.txt`,
in a worker process that reads raw frames on stdin and writes keypoints on stdout.

Why MediaPipe: it is the only offline estimator with both body and 21-point hands whose weights ship
in a PyPI wheel (0.10.30 and later download their models at run time and fail here); its hand layout
is the project's. Measured on the fourMs pianist clip: body in 100% of frames, hands in 60-82%.

Raw detections are mapped, not cleaned: `apvg_hf.data.real.clean_track` removes swapped and
duplicated hands, fills gaps and smooths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import venv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import skeleton as sk

MEDIAPIPE_LOCK = Path(__file__).resolve().parents[3] / "requirements" / "mediapipe-lock.txt"
MEDIAPIPE_PINS = ["mediapipe==0.10.21", "numpy<2", "opencv-python-headless"]  # without the lock file

# MediaPipe Pose landmark index of each of the project's body joints ("neck": the shoulders' midpoint).
POSE_INDEX = {
    "nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8,
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
    "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24,
}  # fmt: skip


@dataclass
class PoseTrack:
    """Per-frame detections in the project's layout.

    keypoints: (T, 56, 2) normalised to the frames given (x right, y down); NaN where not detected.
    confidence: (T, 56) in [0, 1]; 0 where not detected (body: the estimator's visibility; hands: 1
        where the hand was found).
    """

    keypoints: np.ndarray
    confidence: np.ndarray

    def __post_init__(self):
        T = len(self.keypoints)
        if self.keypoints.shape != (T, sk.NUM_KEYPOINTS, 2) or self.confidence.shape != (T, sk.NUM_KEYPOINTS):
            raise ValueError(
                f"a PoseTrack is (T, {sk.NUM_KEYPOINTS}, 2) keypoints and (T, {sk.NUM_KEYPOINTS}) confidences, "
                f"got {self.keypoints.shape} and {self.confidence.shape}"
            )

    def __len__(self) -> int:
        return len(self.keypoints)

    def hand_found(self) -> np.ndarray:
        """(T, 2) bool: whether each hand (left, right) was detected."""
        return np.stack([self.confidence[:, sk.HAND_INDICES[h][0]] > 0 for h in sk.HANDS], 1)


def holistic_to_skeleton(pose, left_hand, right_hand) -> tuple[np.ndarray, np.ndarray]:
    """One frame's MediaPipe Holistic landmarks -> (56, 2) keypoints (NaN where missing), (56,) confidence.

    pose: (33, 3) x, y, visibility or None; left_hand / right_hand: (21, 2) or None (the performer's
    own left and right hands, in the project's hand order)."""
    kp = np.full((sk.NUM_KEYPOINTS, 2), np.nan, np.float32)
    conf = np.zeros(sk.NUM_KEYPOINTS, np.float32)
    if pose is not None:
        pose = np.asarray(pose, np.float32)
        for name, j in POSE_INDEX.items():
            kp[sk.INDEX[name]] = pose[j, :2]
            conf[sk.INDEX[name]] = np.clip(pose[j, 2], 0, 1)
        kp[sk.INDEX["neck"]] = (pose[11, :2] + pose[12, :2]) / 2
        conf[sk.INDEX["neck"]] = min(conf[sk.INDEX["left_shoulder"]], conf[sk.INDEX["right_shoulder"]])
    for h, pts in zip(sk.HANDS, (left_hand, right_hand)):
        if pts is not None:
            kp[sk.HAND_INDICES[h]] = np.asarray(pts, np.float32)[:, :2]
            conf[sk.HAND_INDICES[h]] = 1.0
    return kp, conf


class PrecomputedPose:
    """An estimator for keypoints one already has for the whole source video (from OpenPose, a
    motion-capture system, a previous run, or the virtual pianist's exact labels in the tests): it
    looks at no pixel and maps the given keypoints into each frame's crop box.

    keypoints: (T, 56, 2) normalised to the source frame (NaN where missing); confidence: (T, 56)
    (0 where missing); width, height: the source frame's size in pixels.
    """

    name = "precomputed"

    def __init__(self, keypoints, confidence, width: int, height: int):
        self.track = PoseTrack(np.asarray(keypoints, np.float32), np.asarray(confidence, np.float32))
        self.size = np.array([width, height], np.float64)

    def __call__(self, frames, count=None, progress=None, frame_indices=None, boxes=None) -> PoseTrack:
        n = 0
        for _ in frames:  # consume the frames (the caller may store them as they are produced)
            n += 1
            if progress is not None:
                progress(1)
        idx = np.arange(n) if frame_indices is None else np.asarray(frame_indices)[:n]
        if idx.max(initial=-1) >= len(self.track):
            raise ValueError(f"frame {idx.max()} asked for, but only {len(self.track)} frames of keypoints")
        px = self.track.keypoints[idx].astype(np.float64) * self.size  # (n, K, 2) source pixels
        if boxes is None:
            return PoseTrack(self.track.keypoints[idx], self.track.confidence[idx])
        b = np.asarray(boxes, np.float64)[:n]
        wh = b[:, 2:4] if b.shape[1] == 4 else np.repeat(b[:, 2:3], 2, 1)
        kp = (px - b[:, None, :2]) / wh[:, None]
        return PoseTrack(kp.astype(np.float32), self.track.confidence[idx])


# The worker, run by the MediaPipe environment's Python. Protocol: one JSON line {"height", "width",
# "count", "model_complexity"} on stdin, then `count` raw RGB frames; per frame, one JSON line on stdout:
# {"pose": [[x, y, visibility] x 33] | null, "left": [[x, y] x 21] | null, "right": ... | null}.
_WORKER = r"""
import json, sys
import numpy as np
import mediapipe as mp
job = json.loads(sys.stdin.buffer.readline())
H, W = job["height"], job["width"]
holistic = mp.solutions.holistic.Holistic(
    static_image_mode=False, model_complexity=job["model_complexity"], smooth_landmarks=True,
    refine_face_landmarks=False, min_detection_confidence=0.5, min_tracking_confidence=0.5)
out = sys.stdout
for _ in range(job["count"]):
    buf = sys.stdin.buffer.read(H * W * 3)
    if len(buf) < H * W * 3:
        break
    r = holistic.process(np.frombuffer(buf, np.uint8).reshape(H, W, 3))
    pts = lambda lm, vis: None if lm is None else [
        [p.x, p.y, p.visibility] if vis else [p.x, p.y] for p in lm.landmark]
    out.write(json.dumps({"pose": pts(r.pose_landmarks, True), "left": pts(r.left_hand_landmarks, False),
                          "right": pts(r.right_hand_landmarks, False)}) + "\n")
    out.flush()
"""


def _env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mediapipe_env(path: str | os.PathLike = ".venv-mediapipe", quiet: bool = True) -> Path:
    """Create (once) a virtual environment at `path` with MediaPipe 0.10.21 and numpy < 2, from the
    committed lock (`requirements/mediapipe-lock.txt`) when the package is run from a checkout; returns
    its Python. About a minute and ~500 MB from the package index pip is configured with; a marker
    file records what was installed, so later calls return at once."""
    path = Path(path).absolute()
    python = _env_python(path)
    wanted = ["-r", str(MEDIAPIPE_LOCK)] if MEDIAPIPE_LOCK.exists() else MEDIAPIPE_PINS
    marker = path / ".apvg-installed"
    stamp = MEDIAPIPE_LOCK.read_text() if MEDIAPIPE_LOCK.exists() else " ".join(MEDIAPIPE_PINS)
    if python.exists() and marker.exists() and marker.read_text() == stamp:
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(path)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"] + (["-q"] if quiet else [])
    subprocess.run([*pip, *wanted], check=True)
    marker.write_text(stamp)
    return python


class MediaPipeHolistic:
    """MediaPipe 0.10.21 Holistic in a worker process of its own environment (see the module doc).

    >>> # track = MediaPipeHolistic()(frames)  # frames: iterable of (H, W, 3) uint8
    """

    name = "mediapipe-holistic-0.10.21"

    def __init__(self, env: str | os.PathLike = ".venv-mediapipe", model_complexity: int = 1):
        self.env, self.model_complexity = env, model_complexity

    def __call__(
        self, frames: Iterable[np.ndarray], count: int | None = None, progress=None, **where
    ) -> PoseTrack:
        """frames: (H, W, 3) uint8 RGB frames of one size (an array or an iterable; `count` frames if
        it has no length); progress: an optional callable(n) called as frames are done. `where`
        (`frame_indices`, `boxes`: where the frames come from) is part of the estimator interface
        (`PrecomputedPose` needs it); an estimator that looks at the pixels ignores it."""
        frames = iter(frames) if count is not None or not hasattr(frames, "__len__") else frames
        count = len(frames) if count is None else count
        if count == 0:
            return PoseTrack(
                np.zeros((0, sk.NUM_KEYPOINTS, 2), np.float32), np.zeros((0, sk.NUM_KEYPOINTS), np.float32)
            )
        python = ensure_mediapipe_env(self.env)
        environ = {
            k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        }
        environ |= {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.Popen(
            [str(python), "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
        )
        results: list[dict] = []
        err: list[bytes] = []

        def read():  # results and errors are read while frames are written: no pipe deadlock
            for line in proc.stdout:
                results.append(json.loads(line))
                if progress is not None:
                    progress(1)

        readers = [
            threading.Thread(target=read),
            threading.Thread(target=lambda: err.append(proc.stderr.read())),
        ]
        for r in readers:
            r.start()
        try:
            it = iter(frames)
            first = np.ascontiguousarray(next(it), dtype=np.uint8)
            H, W = first.shape[:2]
            header = {"height": H, "width": W, "count": count, "model_complexity": self.model_complexity}
            proc.stdin.write((json.dumps(header) + "\n").encode())
            proc.stdin.write(first.tobytes())
            for f in it:
                f = np.ascontiguousarray(f, dtype=np.uint8)
                if f.shape != (H, W, 3):
                    raise ValueError(f"frames must all be ({H}, {W}, 3) uint8, got {f.shape}")
                proc.stdin.write(f.tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the worker died: its error is reported below
        except BaseException:
            proc.kill()
            raise
        finally:
            code = proc.wait()
            for r in readers:
                r.join()
        if code != 0 or len(results) != count:
            raise RuntimeError(
                f"the MediaPipe worker failed (exit {code}, {len(results)} of {count} frames):\n"
                + b"".join(err).decode(errors="replace")[-3000:]
            )
        kps, confs = zip(*(holistic_to_skeleton(r["pose"], r["left"], r["right"]) for r in results))
        return PoseTrack(np.stack(kps), np.stack(confs))


if __name__ == "__main__":  # python -m apvg_hf.data.pose video.mp4: detection rates
    from ..video_io import read_video

    track = MediaPipeHolistic()(read_video(sys.argv[1]))
    print(json.dumps({"frames": len(track), "hands_found": track.hand_found().mean(0).tolist()}))
