"""APVGFeatureExtractor: one row per video frame, any sampling rate/fps, batches, errors, save/load."""

import math

import numpy as np
import pytest
import torch

from apvg_hf import APVGFeatureExtractor

SR = 16000


def tone(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 60])
def test_one_row_per_video_frame(sr, fps):
    fe = APVGFeatureExtractor()
    n = int(sr * 2.345)
    out = fe(np.zeros(n, np.float32), sampling_rate=sr, fps=fps)
    assert out["input_features"].shape == (1, math.ceil(n / sr * fps - 1e-9), 80)


def test_rows_follow_the_audio_in_time_and_frequency():
    """A 440 Hz burst in the second half shows up in the rows of the second half, in the right band."""
    fe = APVGFeatureExtractor(fps=30)
    x = np.concatenate([np.zeros(SR, np.float32), tone(440, 1.0)])
    f = fe(x, sampling_rate=SR)["input_features"][0]  # (60, 80)
    energy = f.mean(1)
    assert energy[:28].max() < -1.4 and energy[32:].min() > energy[:28].max() + 0.3
    centres = np.array([fe.f_min, 440.0, fe.f_max])
    band = int(f[40].argmax())
    low, high = fe.mel_filters[:, band].nonzero()[0][[0, -1]] * SR / fe.n_fft
    assert low <= centres[1] <= high


def test_resampled_and_native_rates_agree():
    fe = APVGFeatureExtractor()
    native = fe(tone(330, 2.0), sampling_rate=SR)["input_features"]
    resampled = fe(tone(330, 2.0, sr=44100), sampling_rate=44100)["input_features"]
    assert native.shape == resampled.shape
    assert np.abs(native - resampled)[:, 1:-1].mean() < 0.05


def test_stereo_and_tensors_become_mono():
    fe = APVGFeatureExtractor()
    left, right = tone(220, 1.0), tone(550, 1.0)
    mono = fe((left + right) / 2, sampling_rate=SR)["input_features"]
    for stereo in (
        np.stack([left, right], 1),
        np.stack([left, right], 0),
        torch.from_numpy(np.stack([left, right], 1)),
    ):
        np.testing.assert_allclose(fe(stereo, sampling_rate=SR)["input_features"], mono, atol=1e-5)


def test_batch_of_different_lengths_has_an_attention_mask():
    fe = APVGFeatureExtractor(fps=25)
    out = fe([tone(440, 2.0), tone(440, 0.5), tone(440, 1.0)], sampling_rate=SR, return_tensors="pt")
    assert out["input_features"].shape == (3, 50, 80) and isinstance(out["input_features"], torch.Tensor)
    assert out["attention_mask"].sum(1).tolist() == [50, 13, 25]
    single = fe(tone(440, 0.5), sampling_rate=SR)["input_features"][0]
    np.testing.assert_allclose(out["input_features"][1, :13].numpy(), single, atol=1e-6)


def test_silence_is_valid_and_bad_audio_is_a_clear_error():
    fe = APVGFeatureExtractor()
    silent = fe(np.zeros(SR, np.float32), sampling_rate=SR)["input_features"]
    assert np.isfinite(silent).all()
    bad = {
        "empty": np.zeros(0, np.float32),
        "NaN": np.array([0.0, np.nan, 0.0], np.float32),
        "NaN or inf": np.array([0.0, np.inf], np.float32),
        "1D|2D": np.zeros((2, 3, 4), np.float32),
        "C <= 8": np.zeros((100, 100), np.float32),
        "numeric": np.array(["a", "b"]),
    }
    for message, x in bad.items():
        with pytest.raises(ValueError, match=message):
            fe(x, sampling_rate=SR)
    with pytest.raises(ValueError, match="sampling_rate"):
        fe(tone(440, 1.0), sampling_rate=0)


def test_long_audio_in_blocks_equals_one_pass():
    fe = APVGFeatureExtractor()
    x = np.random.default_rng(0).standard_normal(SR * 10).astype(np.float32) * 0.1
    T = fe.num_frames(len(x), SR)
    # (equal up to float rounding: the FFT and the mel product run on differently shaped blocks)
    np.testing.assert_allclose(fe._log_mel(x, T, 30.0, block=7), fe._log_mel(x, T, 30.0), atol=1e-6)


def test_save_load_round_trip(tmp_path):
    fe = APVGFeatureExtractor(feature_size=64, fps=25, n_fft=512, f_max=7000)
    fe.save_pretrained(tmp_path)
    loaded = APVGFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict() and "mel_filters" not in loaded.to_dict()
    x = tone(440, 1.3)
    np.testing.assert_array_equal(
        loaded(x, sampling_rate=SR)["input_features"], fe(x, sampling_rate=SR)["input_features"]
    )
