"""Video I/O with PyAV (FFmpeg bundled in its wheels): H.264 mp4 with an AAC audio track.

>>> import numpy as np, tempfile, os
>>> frames = np.zeros((30, 64, 64, 3), dtype=np.uint8)
>>> audio = np.zeros(16000, dtype=np.float32)
>>> path = os.path.join(tempfile.mkdtemp(), "clip.mp4")
>>> _ = write_video(path, frames, fps=30, audio=audio, sampling_rate=16000)
>>> info = probe_video(path)
>>> info["frames"], info["width"], info["audio_codec"]
(30, 64, 'aac')
"""

from __future__ import annotations

import contextlib
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def rgb_to_yuv_frame(frame: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """(H, W, 3) uint8 RGB -> a planar `av.VideoFrame` (BT.601, limited range: what decoders assume).

    Done in numpy rather than by the encoder's implicit swscale conversion, which gave different
    pixels from run to run here: the same frames must always give the same video.
    """
    x = frame.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    if pix_fmt == "yuv444p":
        planes = np.stack([y, u, v])  # (3, H, W)
    elif pix_fmt == "yuv420p":
        h, w = y.shape
        u = u.reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        v = v.reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    else:
        raise ValueError(f"pix_fmt must be 'yuv420p' or 'yuv444p', got {pix_fmt!r}")
    return av.VideoFrame.from_ndarray(np.clip(np.rint(planes), 0, 255).astype(np.uint8), format=pix_fmt)


class VideoWriter:
    """Streaming mp4 writer: H.264 frames as they come (memory stays flat), the audio (given up front:
    the container's streams are fixed before the first packet) muxed as AAC on close.

    `path` is a file (written to a temporary name and renamed on a clean close, so an interrupted run
    never leaves a half-written video) or a binary buffer. Frames are converted to YUV in numpy and
    stamped with explicit timestamps, so the same frames give the same bytes.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.mp4")
    >>> with VideoWriter(path, fps=30) as w:
    ...     w.write(np.zeros((10, 64, 64, 3), np.uint8))
    ...     w.write(np.zeros((5, 64, 64, 3), np.uint8))
    >>> probe_video(path)["frames"]
    15
    """

    def __init__(
        self,
        path: str | os.PathLike | io.IOBase,
        fps: float,
        audio: np.ndarray | None = None,
        sampling_rate: int | None = None,
        crf: int = 18,
        pix_fmt: str = "yuv420p",
        preset: str = "medium",
        audio_bitrate: int = 128_000,
    ):
        if audio is not None and sampling_rate is None:
            raise ValueError("sampling_rate is required with audio")
        if pix_fmt not in ("yuv420p", "yuv444p"):
            raise ValueError(f"pix_fmt must be 'yuv420p' or 'yuv444p', got {pix_fmt!r}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps, self.crf, self.pix_fmt, self.preset, self.audio_bitrate = (
            fps,
            crf,
            pix_fmt,
            preset,
            audio_bitrate,
        )
        self.path = None if isinstance(path, io.IOBase) else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.path.with_name(f".{self.path.name}.partial")
            target = str(self._tmp)
        else:
            target = path
        self._container = av.open(target, mode="w", format="mp4")
        self._stream = self._audio_stream = None
        self.audio = None if audio is None else np.asarray(audio, dtype=np.float32)
        self.audio = (
            self.audio[:, None] if self.audio is not None and self.audio.ndim == 1 else self.audio
        )  # (N, C)
        self.sampling_rate = None if sampling_rate is None else int(sampling_rate)
        self.frames_written = 0

    def _open_stream(self, H: int, W: int) -> None:
        if self.pix_fmt == "yuv420p" and (H % 2 or W % 2):
            raise ValueError(f"yuv420p needs even width and height, got {W}x{H}")
        vs = self._container.add_stream("libx264", rate=_fps_fraction(self.fps))
        vs.width, vs.height, vs.pix_fmt = W, H, self.pix_fmt
        vs.options = {"crf": str(self.crf), "preset": self.preset}
        if self.pix_fmt == "yuv444p":
            vs.profile = "high444"
        vs.codec_context.time_base = Fraction(1) / _fps_fraction(self.fps)
        self._stream = vs
        if self.audio is not None:
            aus = self._container.add_stream("aac", rate=self.sampling_rate)
            aus.bit_rate = self.audio_bitrate
            aus.layout = "mono" if self.audio.shape[1] == 1 else "stereo"
            self._audio_stream = aus

    def write(self, frames: np.ndarray) -> None:
        """Append frames (T, H, W, 3) or one frame (H, W, 3), uint8."""
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if self._stream is None:
            self._open_stream(*frames.shape[1:3])
        elif frames.shape[1:3] != (self._stream.height, self._stream.width):
            raise ValueError(f"frame size changed from {self._stream.width}x{self._stream.height}")
        vs = self._stream
        for frame in frames:
            vf = rgb_to_yuv_frame(frame, self.pix_fmt)
            vf.pts, vf.time_base = self.frames_written, vs.codec_context.time_base  # x264 reads them
            for packet in vs.encode(vf):
                self._container.mux(packet)
            self.frames_written += 1

    def close(self) -> Path | None:
        """Flush the video, mux the audio as AAC, and publish the file (renamed into place)."""
        if self._stream is None:
            self.abort()
            raise ValueError("cannot encode a video with no frames")
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._audio_stream is not None:
            aus, sr = self._audio_stream, self.sampling_rate
            planar = np.ascontiguousarray(self.audio.T)  # (C, N) float planar
            step = 1024 * 16
            for i in range(0, planar.shape[1], step):
                chunk = av.AudioFrame.from_ndarray(
                    planar[:, i : i + step], format="fltp", layout=aus.layout.name
                )
                chunk.sample_rate, chunk.pts = sr, i
                for packet in aus.encode(chunk):
                    self._container.mux(packet)
            for packet in aus.encode():
                self._container.mux(packet)
        self._container.close()
        if self.path is not None:
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop what was written (the target file is never created or replaced)."""
        with contextlib.suppress(Exception):  # the container may be half set up; nothing to keep
            self._container.close()
        if self.path is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encode_video(
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sampling_rate: int | None = None,
    crf: int = 18,
    pix_fmt: str = "yuv420p",
    preset: str = "medium",
    audio_bitrate: int = 128_000,
) -> bytes:
    """Encode frames (T, H, W, 3) uint8 (+ optional mono/stereo audio) to mp4 bytes.

    `pix_fmt="yuv420p"` plays everywhere; `"yuv444p"` with a low `crf` keeps thin coloured lines
    (dataset storage). Width and height must be even for yuv420p. See `VideoWriter`.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if len(frames) == 0:
        raise ValueError("cannot encode a video with no frames")
    buf = io.BytesIO()
    writer = VideoWriter(buf, fps, audio, sampling_rate, crf, pix_fmt, preset, audio_bitrate)
    writer.write(frames)
    writer.close()
    return buf.getvalue()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, **kwargs) -> Path:
    """`encode_video` to a file, written atomically (a temporary file, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_video(frames, fps, **kwargs)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _open(source: str | os.PathLike | bytes):
    return av.open(io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source))


def read_video(source: str | os.PathLike | bytes, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames [start, stop) of an mp4 (path or bytes) -> (T, H, W, 3) uint8."""
    out = []
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if stop is not None and i >= stop:
                break
            if i >= start:
                out.append(frame.to_ndarray(format="rgb24"))
    if not out:
        raise ValueError("no frames decoded (empty range or not a video)")
    return np.stack(out)


def read_audio_track(source: str | os.PathLike | bytes) -> tuple[np.ndarray, int]:
    """Decode an mp4's first audio stream -> (N,) float32 mono and its sampling rate (any sample format)."""
    chunks = []
    with _open(source) as container:
        if not container.streams.audio:
            raise ValueError("the video has no audio stream")
        stream = container.streams.audio[0]
        sr = int(stream.rate)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=sr)
        for frame in container.decode(stream):
            chunks += [f.to_ndarray()[0] for f in resampler.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32), sr


def probe_video(source: str | os.PathLike | bytes) -> dict:
    """Frame count (decoded), size, fps, duration and codecs of an mp4."""
    with _open(source) as container:
        v = container.streams.video[0]
        n = sum(1 for _ in container.decode(v))
        info = {
            "frames": n,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(v.average_rate) if v.average_rate else None,
            "video_codec": v.codec_context.name,
            "duration": float(container.duration / av.time_base) if container.duration else None,
        }
        a = container.streams.audio
        info["audio_codec"] = a[0].codec_context.name if a else None
        info["sampling_rate"] = a[0].rate if a else None
    return info
