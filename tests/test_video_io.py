"""mp4 writing/reading with PyAV: frame count, duration, AAC audio, fidelity."""

import numpy as np
import pytest

from apvg_hf.video_io import VideoWriter, encode_video, probe_video, read_audio_track, read_video, write_video


def test_mp4_with_audio_round_trip(tmp_path):
    yy, xx = np.mgrid[0:64, 0:96]
    base = np.stack([xx * 2.5, yy * 3.5, 255 - xx * 2], -1).clip(0, 255).astype(np.uint8)  # smooth gradients
    frames = np.repeat(base[None], 45, axis=0)
    for t in range(45):
        frames[t, 20:40, t : t + 20] = (250, 240, 30)  # a moving block
    sr = 16000
    audio = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(1.5 * sr)) / sr).astype(np.float32)
    path = write_video(tmp_path / "a.mp4", frames, fps=30, audio=audio, sampling_rate=sr)
    info = probe_video(path)
    assert info["frames"] == 45 and info["width"] == 96 and info["height"] == 64
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["duration"] - 1.5) < 1 / 30 + 0.05
    decoded = read_video(path)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 6
    back, back_sr = read_audio_track(path)
    assert back_sr == sr and abs(len(back) - len(audio)) < 2048
    spectrum = np.abs(np.fft.rfft(back[2000:14000]))
    assert abs(np.argmax(spectrum) * sr / 12000 - 440) < 5


def test_yuv444_keeps_thin_lines_better():
    frames = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    frames[:, :, 30] = (255, 0, 200)  # a one-pixel coloured line
    err = {}
    for fmt, crf in (("yuv420p", 18), ("yuv444p", 12)):
        dec = read_video(encode_video(frames, 30, pix_fmt=fmt, crf=crf))
        err[fmt] = np.abs(dec.astype(int) - frames).mean()
    assert err["yuv444p"] < err["yuv420p"]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="no frames"):
        encode_video(np.zeros((0, 64, 64, 3), np.uint8), 30)
    with pytest.raises(ValueError, match="uint8"):
        encode_video(np.zeros((2, 64, 64, 3), np.float32), 30)
    with pytest.raises(ValueError, match="even"):
        encode_video(np.zeros((2, 63, 64, 3), np.uint8), 30)
    with pytest.raises(ValueError, match="sampling_rate"):
        encode_video(np.zeros((2, 64, 64, 3), np.uint8), 30, audio=np.zeros(100, np.float32))


def test_background_writer_same_bytes_errors_and_abort(tmp_path):
    """The writer thread makes the very file the plain writer makes; an error on the worker reaches
    the caller and leaves no file; abort leaves none either."""
    from apvg_hf.video_io import BackgroundWriter

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8) for _ in range(5)]
    wave = rng.standard_normal(16000).astype(np.float32) * 0.1
    with VideoWriter(tmp_path / "plain.mp4", fps=30, audio=wave, sampling_rate=16000) as w:
        for b in batches:
            w.write(b)
    bg = BackgroundWriter(
        VideoWriter(tmp_path / "bg.mp4", fps=30, audio=wave, sampling_rate=16000), max_pending=2
    )
    for b in batches:
        bg.submit(lambda b=b: b.copy())
    assert bg.close() == tmp_path / "bg.mp4"
    assert (tmp_path / "bg.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()

    bad = BackgroundWriter(VideoWriter(tmp_path / "bad.mp4", fps=30))
    with pytest.raises(ValueError, match="frame size changed"), bad:
        bad.submit(lambda: batches[0])
        bad.submit(lambda: np.zeros((2, 16, 16, 3), np.uint8))  # the size changes: an error on the worker
        for _ in range(50):  # raised by a later submit, or by close
            bad.submit(lambda: batches[0])
    assert not (tmp_path / "bad.mp4").exists() and not list(tmp_path.glob(".bad.mp4*"))

    with (
        pytest.raises(RuntimeError, match="boom"),
        BackgroundWriter(VideoWriter(tmp_path / "x.mp4", fps=30)) as w,
    ):
        w.submit(lambda: batches[0])
        raise RuntimeError("boom")
    assert not (tmp_path / "x.mp4").exists() and not list(tmp_path.glob(".x.mp4*"))
    with pytest.raises(ValueError, match="max_pending"):
        BackgroundWriter(VideoWriter(tmp_path / "y.mp4", fps=30), max_pending=0)
