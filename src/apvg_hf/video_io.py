"""Audio and video I/O, the one place for both (inference and the data builders import it from here).

- Audio files: soundfile (WAV, FLAC, OGG, MP3), with PyAV (FFmpeg, bundled in its wheels) for what
  soundfile cannot read (m4a/aac, the audio track of an mp4/mov/webm ...); `load_audio`, `save_audio`.
- Waveforms from users: `to_float_waveform` (integer PCM scaled by its type, channels-last).
- Video: H.264 mp4 with an AAC audio track, streamed (`VideoWriter`), read back (`read_video`).

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
import queue
import re
import threading
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Sampling rates the AAC encoder takes; other rates are resampled to the nearest of these for muxing.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
VIDEO_SUFFIXES = (".mp4",)


# ------------------------------------------------------------------------------------------------ audio


class TruncatedAudioWarning(UserWarning):
    """The file's header promises more audio than the file holds (an interrupted copy or download)."""


def to_float_waveform(audio, what: str = "the audio") -> np.ndarray:
    """A waveform from a user -> float32, channels last: (N,) mono or (N, C).

    Integer PCM is scaled by its type (int16 / 32768, int32 / 2**31, uint8 centred on 128), floats are
    taken as they are (-1..1). 2D arrays are (N, C) as soundfile gives them (C <= 8), else (C, N) with
    C <= 8; anything else is refused.

    >>> to_float_waveform(np.array([0, 16384, -32768], np.int16)).tolist()
    [0.0, 0.5, -1.0]
    >>> to_float_waveform(np.zeros((2, 100))).shape
    (100, 2)
    """
    a = np.asarray(audio)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.number)) or np.iscomplexobj(a):
        raise ValueError(f"{what} must be a real-valued numeric array, got dtype {a.dtype}")
    if a.ndim == 0 or a.ndim > 2:
        raise ValueError(f"{what} must be 1D (samples) or 2D (samples x channels), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} is empty (no samples)")
    if np.issubdtype(a.dtype, np.unsignedinteger):
        half = float(np.iinfo(a.dtype).max // 2 + 1)
        a = (a.astype(np.float64) - half) / half
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(-np.iinfo(a.dtype).min)
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or inf samples")
    if a.ndim == 2:
        if a.shape[1] <= 8:
            pass  # (N, C), as soundfile gives it (also when both axes are short)
        elif a.shape[0] <= 8:
            a = a.T  # (C, N) -> (N, C)
        else:
            raise ValueError(
                f"{what}: a 2D waveform must be (N, C) or (C, N) with C <= 8 channels, got {a.shape}"
            )
    return a


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(N,) or (N, C) -> (N,) float32, channels averaged (one channel: a view, no copy)."""
    if audio.ndim == 1:
        return audio
    return audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"cannot load {what} {path}: it is a directory, not a file")
    if not path.exists():
        raise FileNotFoundError(f"cannot load {what} {path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"cannot load {what} {path}: the file is empty (0 bytes)")


def audio_duration(path: str | os.PathLike) -> float | None:
    """Seconds of audio a file says it holds (from its header: nothing is decoded); None if unknown."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, OSError):
        pass
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            s = container.streams.audio[0]
            if s.duration is not None and s.time_base is not None:
                return float(s.duration * s.time_base)
            return float(container.duration / av.time_base) if container.duration else None
    except (av.FFmpegError, OSError, ValueError):
        return None


def _truncation(info_text: str) -> tuple[int, int] | None:
    """libsndfile's report of a short data chunk: 'data : 64000 (should be 31978)' -> (64000, 31978)."""
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", info_text, re.MULTILINE)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _source(source):
    """A path (str) or an in-memory file for soundfile and PyAV."""
    return io.BytesIO(source) if isinstance(source, bytes | bytearray) else str(source)


def _read_soundfile(path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(_source(path)) as f:
        sr, extra = int(f.samplerate), f.extra_info
        audio = f.read(dtype="float32", always_2d=True)  # (N, C)
    if (short := _truncation(extra)) is not None:
        promised, present = short
        warnings.warn(
            f"{'the audio' if isinstance(path, bytes | bytearray) else path} is truncated: its header promises {promised:,} bytes of audio but the file holds "
            f"{present:,} ({100 * (1 - present / promised):.0f}% missing); using the "
            f"{len(audio) / sr:.2f} s that are there",
            TruncatedAudioWarning,
            stacklevel=3,
        )
    return audio, sr


def _read_pyav(path) -> tuple[np.ndarray, int]:
    """The first audio stream of anything FFmpeg reads (m4a, aac, mp4, webm, ...) -> (N, C) float32."""
    chunks = []
    with av.open(_source(path)) as container:
        if not container.streams.audio:
            raise ValueError("it has no audio stream")
        stream = container.streams.audio[0]
        sr = int(stream.rate or stream.codec_context.sample_rate)
        channels = max(1, min(2, stream.codec_context.channels or 1))
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sr)
        for frame in container.decode(stream):
            chunks += [f.to_ndarray() for f in resampler.resample(frame)]
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
    if not chunks:
        return np.zeros((0, channels), np.float32), sr
    return np.concatenate(chunks, axis=1).T.astype(np.float32), sr  # (C, N) -> (N, C)


def load_audio(
    path: str | os.PathLike | bytes, target_sr: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read an audio file (a path, or its bytes) as float32: `mono` -> (n,) (channels averaged), else (n, channels); resampled
    to `target_sr` if given (soxr). Returns (audio, sampling_rate).

    soundfile reads WAV/FLAC/OGG/MP3; anything else FFmpeg decodes (m4a, aac, an mp4's audio track) goes
    through PyAV. A truncated file is read as far as it goes, with a `TruncatedAudioWarning` saying how
    much is missing. Raises FileNotFoundError / IsADirectoryError for a wrong path, ValueError naming the
    file if it is empty, unreadable, holds no samples or contains NaN/inf samples.
    """
    import soundfile as sf

    if isinstance(path, bytes | bytearray):
        if not path:
            raise ValueError("cannot load audio from bytes: there are none (0 bytes)")
    else:
        path = Path(path)
        _check_file(path, "audio")
    name = "the audio bytes" if isinstance(path, bytes | bytearray) else path
    try:
        audio, sr = _read_soundfile(path)
    except (sf.LibsndfileError, RuntimeError) as sf_err:
        try:
            audio, sr = _read_pyav(path)
        except (av.FFmpegError, ValueError, OSError) as av_err:
            raise ValueError(
                f"cannot load audio {name}: not an audio file this package can decode "
                f"(soundfile: {sf_err}; FFmpeg: {av_err})"
            ) from av_err
    if audio.size == 0:
        raise ValueError(f"cannot load audio {name}: the file holds no samples")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"cannot load audio {name}: it contains NaN or inf samples")
    if target_sr is not None and target_sr != sr:
        import soxr

        audio, sr = soxr.resample(audio, sr, target_sr).astype(np.float32), int(target_sr)
    return (to_mono(audio) if mono else audio), int(sr)


def save_audio(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write `audio` ((n,) or (n, channels), float in -1..1) to `path` (format from the suffix: .wav, .flac),
    atomically. Raises ValueError for empty or non-finite audio."""
    path = Path(path)
    audio = np.asarray(audio)
    if audio.size == 0:
        raise ValueError(f"refusing to write {path}: the audio is empty")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"refusing to write {path}: the audio contains NaN or inf samples")
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    sf.write(str(tmp), audio, int(sr), format=path.suffix.lstrip(".").upper() or None)
    os.replace(tmp, path)
    return path


def aac_rate(sampling_rate: int) -> int:
    """The AAC rate to mux audio of `sampling_rate` at: itself if AAC takes it, else the nearest above
    (or 96 kHz).

    >>> aac_rate(16000), aac_rate(10000), aac_rate(1000), aac_rate(192000)
    (16000, 11025, 8000, 96000)
    """
    return next((r for r in AAC_RATES if r >= sampling_rate), AAC_RATES[-1])


# ------------------------------------------------------------------------------------------------ video


def check_output_path(path: str | os.PathLike, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> Path:
    """Check before any work is done that a video can be written at `path`: the right suffix, not a
    directory, a folder that exists or can be made and is writable. Returns the path."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ValueError(
            f"output_path must end in {' or '.join(suffixes)} (an H.264 + AAC mp4 is written), got {str(path)!r}"
        )
    if path.is_dir():
        raise IsADirectoryError(f"output_path {path} is a directory; give a file name ending in .mp4")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.probe")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"cannot write output_path {path}: {err.strerror or err}") from err
    return path


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


class _ClosesOrAborts:
    """`with writer:` closes it on success and aborts it (no file left) on an error."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VideoWriter(_ClosesOrAborts):
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
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a finite number > 0, got {fps}")
        self.fps, self.crf, self.pix_fmt, self.preset, self.audio_bitrate = (
            fps,
            crf,
            pix_fmt,
            preset,
            audio_bitrate,
        )
        self.audio = None if audio is None else to_float_waveform(audio)
        if self.audio is not None and self.audio.ndim == 1:
            self.audio = self.audio[:, None]  # (N, C)
        if self.audio is not None and self.audio.shape[1] > 2:
            self.audio = self.audio.mean(axis=1, keepdims=True, dtype=np.float32)
        self.sampling_rate = None if sampling_rate is None else int(sampling_rate)
        if self.audio is not None and aac_rate(self.sampling_rate) != self.sampling_rate:
            import soxr  # AAC takes a fixed set of rates: resample the track to the nearest one above

            rate = aac_rate(self.sampling_rate)
            self.audio = soxr.resample(self.audio, self.sampling_rate, rate).astype(np.float32)
            self.sampling_rate = rate
        self.path = None if isinstance(path, io.IOBase) else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.path.with_name(f".{self.path.name}.partial")
            target = str(self._tmp)
        else:
            target = path
        try:
            self._container = av.open(target, mode="w", format="mp4")
        except (av.FFmpegError, OSError) as err:
            raise PermissionError(f"cannot write {path}: {err}") from err
        self._stream = self._audio_stream = None
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

    def submit(self, make: Callable[..., np.ndarray], *args) -> None:
        """`write(make(*args))` now: the same call as `BackgroundWriter.submit`, in this thread."""
        self.write(make(*args))

    def close(self) -> Path | None:
        """Flush the video, mux the audio as AAC, and publish the file (renamed into place)."""
        if self._stream is None:
            self.abort()
            raise ValueError("cannot encode a video with no frames")
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._audio_stream is not None:
            aus, sr = self._audio_stream, self.sampling_rate
            step = 1024 * 16
            for i in range(0, len(self.audio), step):  # planar (C, n) pieces: no copy of the whole track
                planar = np.ascontiguousarray(self.audio[i : i + step].T)
                chunk = av.AudioFrame.from_ndarray(planar, format="fltp", layout=aus.layout.name)
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


class BackgroundWriter(_ClosesOrAborts):
    """Encode on a worker thread while the caller goes on generating: `submit(make, *args)` queues
    `writer.write(make(*args))` (composing and encoding both leave the caller's thread; PyAV and numpy
    release the GIL while they work). At most `max_pending` submissions wait, so memory stays bounded;
    frames are written in submission order, so the file is byte for byte the one `writer` alone makes.
    An error on the worker is raised by the next `submit` or by `close`; `abort` drops everything.

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.mp4")
    >>> w = BackgroundWriter(VideoWriter(path, fps=30))
    >>> for _ in range(3):
    ...     w.submit(np.zeros, (4, 32, 32, 3), np.uint8)
    >>> w.close() == Path(path), probe_video(path)["frames"]
    (True, 12)
    """

    _STOP = object()

    def __init__(self, writer: VideoWriter, max_pending: int = 4):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="apvg-video-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            if self._error is not None:
                continue  # drain: the caller hears of the error and stops
            make, args = item
            try:
                self.writer.write(make(*args))
            except BaseException as err:  # handed to the caller's thread
                self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, make: Callable[..., np.ndarray], *args) -> None:
        """Queue `make(*args)` -> frames (T, H, W, 3) uint8 to be written (blocks while the queue is full)."""
        self._raise()
        if not self._thread.is_alive():
            raise RuntimeError("the writer is closed")
        self._queue.put((make, args))

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()

    def close(self) -> Path | None:
        """Wait for the queued frames, then close the writer (flush, mux the audio, publish)."""
        self._finish()
        try:
            self._raise()
        except BaseException:
            self.writer.abort()
            raise
        return self.writer.close()

    def abort(self) -> None:
        """Stop the worker and drop what was written (the target file is never created or replaced)."""
        while True:  # unqueue what waits, so the worker stops soon
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._finish()
        self._error = None
        self.writer.abort()


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


def iter_video(source: str | os.PathLike | bytes, start: int = 0, stop: int | None = None):
    """Decode frames [start, stop) of a video (path or bytes) one at a time: (H, W, 3) uint8 each."""
    with _open(source) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if stop is not None and i >= stop:
                break
            if i >= start:
                yield frame.to_ndarray(format="rgb24")


def read_video(source: str | os.PathLike | bytes, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames [start, stop) of an mp4 (path or bytes) -> (T, H, W, 3) uint8."""
    out = list(iter_video(source, start, stop))
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
