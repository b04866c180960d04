"""Every input and option at the public API either works or gives one clear error naming the argument,
and nothing is ever left half-written. Tiny random pipeline (32x32 frames): fast."""

import math
import warnings

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import pipeline

from apvg_hf import APVGPipeline
from apvg_hf.video_io import TruncatedAudioWarning, load_audio, probe_video, read_audio_track
from conftest import tiny_pipeline

SR = 16000


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def pipe_dir(pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe")
    pipe.save_pretrained(path)
    return path


def tone(seconds=1.0, sr=SR, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def run(pipe, audio, **kw):
    return pipe(audio, show_progress=False, **kw)


# -- audio files ------------------------------------------------------------------------------------------


def test_truncated_wav_is_read_with_a_warning_saying_how_much(pipe, tmp_path):
    full = tmp_path / "full.wav"
    sf.write(full, np.stack([tone(1.0)] * 2, 1), SR, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + (len(data) - 44) // 2])  # half of the samples are gone
    with pytest.warns(TruncatedAudioWarning, match=r"truncated.*50% missing.*0\.50 s"):
        out = run(pipe, cut)
    assert len(out.frames) == 15  # the 0.5 s that are there


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_one_sample_files_of_any_channel_count(pipe, tmp_path, channels):
    path = tmp_path / f"one_{channels}.wav"
    sf.write(path, np.full((1, channels), 0.1, np.float32), SR)
    out = run(pipe, path)
    assert out.frames.shape == (1, 32, 32, 3) and out.keypoints.shape == (1, 56, 2)


def test_short_files_of_many_channels_agree_with_mono(pipe, tmp_path):
    mono = tone(0.3)
    path = tmp_path / "six.wav"
    sf.write(path, np.stack([mono] * 6, 1), SR, subtype="FLOAT")
    a, b = run(pipe, path), run(pipe, mono, sampling_rate=SR)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-5)


def test_audio_soundfile_cannot_read_goes_through_pyav(pipe, tmp_path):
    """m4a (AAC in an mp4 container) and the audio track of an mp4 video."""
    path = tmp_path / "clip.m4a"
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=SR)
        s.layout = "mono"
        wave = tone(1.0)
        frame = av.AudioFrame.from_ndarray(wave[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SR, 0
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    audio, sr = load_audio(path)
    assert sr == SR and abs(len(audio) / SR - 1.0) < 0.1
    out = run(pipe, path)
    assert abs(len(out.frames) - 30) <= 3
    # An mp4 video with sound: the audio track drives the pipeline.
    video = tmp_path / "video.mp4"
    run(pipe, tone(1.0), sampling_rate=SR, output_path=video, output_type=None)
    assert abs(len(run(pipe, video).frames) - 30) <= 3


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda p: p.mkdir(), IsADirectoryError, "is a directory"),
        (lambda p: None, FileNotFoundError, "no such file"),
        (lambda p: p.write_bytes(b""), ValueError, "empty"),
        (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk" * 50), ValueError, "not an audio file"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), SR), ValueError, "no samples"),
    ],
    ids=["directory", "missing", "empty", "corrupt", "zero-length"],
)
def test_bad_files(pipe, tmp_path, make, error, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(error, match=message):
        run(pipe, path)


def test_corrupt_and_empty_bytes(pipe):
    with pytest.raises(ValueError, match="not an audio file"):
        run(pipe, b"\x00\x01garbage" * 100)
    with pytest.raises(ValueError, match="0 bytes"):
        run(pipe, b"")


# -- waveforms --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8, np.float64])
def test_integer_pcm_is_scaled_by_its_type(pipe, tmp_path, dtype):
    wave = tone(1.0, amp=0.5)
    if dtype == np.uint8:
        pcm = np.round(wave * 128 + 128).astype(np.uint8)
    elif np.issubdtype(dtype, np.integer):
        pcm = np.round(wave * (np.iinfo(dtype).max + 1.0)).astype(dtype)
    else:
        pcm = wave.astype(dtype)
    if dtype == np.uint8:
        scaled = (pcm.astype(np.float32) - 128) / 128
    elif np.issubdtype(dtype, np.integer):
        scaled = (pcm / (np.iinfo(dtype).max + 1.0)).astype(np.float32)
    else:
        scaled = wave
    path = tmp_path / "out.mp4"
    out = run(pipe, pcm, sampling_rate=SR, output_path=path)
    ref = run(pipe, scaled, sampling_rate=SR)  # the same samples, as floats
    np.testing.assert_allclose(out.keypoints, ref.keypoints, atol=1e-5)
    muxed, _ = read_audio_track(path)
    assert 0.4 < np.abs(muxed).max() < 0.6  # not clipped at +-1: scaled to the float range


def test_channel_layouts_and_lists(pipe):
    wave = tone(0.5)
    ref = run(pipe, wave, sampling_rate=SR).keypoints
    for audio in (
        np.stack([wave, wave], 1),
        np.stack([wave, wave], 0),
        wave.tolist(),
        torch.from_numpy(wave),
    ):
        np.testing.assert_allclose(run(pipe, audio, sampling_rate=SR).keypoints, ref, atol=1e-5)


@pytest.mark.parametrize(
    "audio, rate, message",
    [
        (np.zeros((2, 2, 100)), SR, "1D .* or 2D"),
        (np.array([True, False] * 100), SR, "real-valued numeric"),
        (np.array([0.0, np.nan] * 100), SR, "NaN or inf"),
        (np.zeros(100), float("nan"), "sampling_rate"),
        (np.zeros(100), 0, "sampling_rate"),
        (np.zeros(100), 44100.5, "sampling_rate"),
        (["a", "b"], SR, "numeric"),
    ],
)
def test_bad_waveforms(pipe, audio, rate, message):
    with pytest.raises(ValueError, match=message):
        run(pipe, audio, sampling_rate=rate)


@pytest.mark.parametrize(
    "rate, muxed_rate", [(10_000, 11_025), (1_000, 8_000), (44_100, 44_100), (192_000, 96_000)]
)
def test_any_sampling_rate_is_muxed(pipe, tmp_path, rate, muxed_rate):
    path = tmp_path / "out.mp4"
    run(pipe, tone(1.0, sr=rate, amp=0.3), sampling_rate=rate, output_path=path, output_type=None)
    info = probe_video(path)
    assert info["audio_codec"] == "aac" and info["sampling_rate"] == muxed_rate
    assert info["frames"] == 30 and abs(info["duration"] - 1.0) < 0.1


# -- options ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("fps", math.nan),
        ("fps", math.inf),
        ("fps", -1),
        ("chunk_seconds", math.nan),
        ("chunk_seconds", 0),
        ("max_seconds", math.nan),
        ("max_seconds", math.inf),
        ("video_size", 31),
        ("video_size", math.nan),
        ("stu_batch", 0),
        ("stu_batch", 1.5),
        ("output_type", "gif"),
        ("video_layout", "grid"),
        ("autocast_dtype", torch.int8),
    ],
)
def test_bad_options_name_the_argument(pipe, option, value):
    with pytest.raises((ValueError, TypeError), match=option):
        run(pipe, tone(0.2), sampling_rate=SR, **{option: value})


def test_max_seconds_refuses_before_decoding(pipe, tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(SR * 3, np.float32), SR)
    with pytest.raises(ValueError, match="max_seconds=2"):
        run(pipe, path, max_seconds=2)
    with pytest.raises(ValueError, match="max_seconds=2"):
        run(pipe, np.zeros(SR * 3, np.float32), sampling_rate=SR, max_seconds=2)


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("clip.gif", ValueError, "must end in .mp4"),
        ("folder", IsADirectoryError, "is a directory"),
        ("blocker/clip.mp4", PermissionError, "cannot write"),
    ],
)
def test_bad_output_paths_are_refused_before_any_work(pipe, tmp_path, name, error, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.mp4").mkdir()  # a directory with the right suffix
    (tmp_path / "blocker").write_text("a file where a folder would have to be")
    target = tmp_path / ("folder.mp4" if name == "folder" else name)
    calls = []
    with pytest.raises(error, match=message):
        run(
            pipe,
            tone(0.2),
            sampling_rate=SR,
            output_path=target,
            callback_on_chunk_end=lambda *a: calls.append(a),
        )
    assert calls == []  # nothing was generated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "folder", "folder.mp4"]


def test_a_failure_mid_generation_leaves_nothing(pipe, tmp_path):
    path = tmp_path / "out.mp4"

    def fail(done, total):
        if done == 2:
            raise RuntimeError("stopped by the test")

    with pytest.raises(RuntimeError, match="stopped by the test"):
        run(
            pipe, tone(1.0), sampling_rate=SR, output_path=path, chunk_seconds=0.2, callback_on_chunk_end=fail
        )
    assert list(tmp_path.iterdir()) == []  # no video, no partial file


def test_progress_callback_counts_chunks(pipe):
    calls = []
    run(
        pipe,
        tone(1.0),
        sampling_rate=SR,
        chunk_seconds=0.25,
        callback_on_chunk_end=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_frames_are_uint8_without_a_second_copy(pipe):
    out = run(pipe, tone(1.0), sampling_rate=SR)
    assert out.frames.dtype == np.uint8 and out.frames.flags["C_CONTIGUOUS"] and out.frames.base is None
    assert out.coarse_frames.dtype == np.uint8
    pt = run(pipe, tone(1.0), sampling_rate=SR, output_type="pt")
    np.testing.assert_allclose(pt.frames.permute(0, 2, 3, 1).numpy() * 255, out.frames, atol=0.51)
    none = run(pipe, tone(1.0), sampling_rate=SR, output_type=None)
    assert none.frames is None and none.coarse_frames is None and none.keypoints.shape == (30, 56, 2)


# -- precision --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_pipelines(pipe, pipe_dir, dtype):
    half = APVGPipeline.from_pretrained(pipe_dir, dtype=dtype)
    assert half.khp.dtype == dtype and half.stu.dtype == dtype
    a = run(pipe, tone(0.5), sampling_rate=SR)
    b = run(half, tone(0.5), sampling_rate=SR)
    assert b.frames.dtype == np.uint8 and b.keypoints.dtype == np.float32
    assert np.abs(a.keypoints - b.keypoints).max() < 0.05
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 4  # of 255 levels
    task = pipeline("audio-to-performance-video", model=str(pipe_dir), dtype=dtype)
    assert task.model.stu.dtype == dtype
    assert task(tone(0.5), sampling_rate=SR)["frames"].shape == (15, 32, 32, 3)


# -- the transformers task --------------------------------------------------------------------------------


def test_task_inputs_and_errors(pipe_dir, tmp_path):
    task = pipeline("audio-to-performance-video", model=str(pipe_dir))
    wave = tone(0.5)
    ref = task(wave, sampling_rate=SR)["keypoints"]
    np.testing.assert_allclose(task(wave.tolist(), sampling_rate=SR)["keypoints"], ref, atol=1e-5)
    with pytest.raises(ValueError, match="sampling_rate"):
        task(wave.tolist())
    with pytest.raises(ValueError, match="no inputs"):
        task([])
    with pytest.raises(ValueError, match="must end in .mp4"):
        task(wave, sampling_rate=SR, output_path=tmp_path / "x.gif")
    with pytest.raises(TypeError, match="unknown argument"):
        task(wave, sampling_rate=SR, colour="red")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean input warns about nothing
        task(wave, sampling_rate=SR)
