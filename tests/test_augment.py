"""Audio augmentation (`apvg_hf.data.augment`): shapes, determinism, levels, reverb, gain, range."""

import numpy as np
import pytest

from apvg_hf.data.augment import AudioAugmentation, augment_audio, rms_dbfs

SR = 16000
ONLY = dict(gain_p=0.0, eq_p=0.0, reverb_p=0.0, noise_p=0.0, hum_p=0.0)


def _tone(seconds=2.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-t)).astype(np.float32)


@pytest.mark.parametrize("n", [1, 1000, 6 * SR + 7])
def test_length_dtype_range_and_finite(n):
    rng = np.random.default_rng(0)
    wave = np.random.default_rng(1).uniform(-1, 1, n).astype(np.float32)
    everything = AudioAugmentation(reverb_p=1, eq_p=1, noise_p=1, hum_p=1, gain_db=(6.0, 6.0))
    for cfg in (None, everything):
        for _ in range(5):
            out = augment_audio(wave, SR, rng, cfg)
            assert out.shape == (n,) and out.dtype == np.float32
            assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert augment_audio(np.zeros(0, np.float32), SR, rng).shape == (0,)


def test_deterministic_for_an_rng_state_and_input_untouched():
    wave = _tone()
    copy = wave.copy()
    a, pa = augment_audio(wave, SR, np.random.default_rng(7), return_params=True)
    b, pb = augment_audio(wave, SR, np.random.default_rng(7), return_params=True)
    c = augment_audio(wave, SR, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert pa == pb and not np.array_equal(a, c)
    np.testing.assert_array_equal(wave, copy)


@pytest.mark.parametrize("pink", [False, True])
@pytest.mark.parametrize("level", [-90.0, -60.0, -30.0])
def test_noise_level_on_silence(level, pink):
    cfg = AudioAugmentation(**ONLY | {"noise_p": 1.0, "pink_p": float(pink)}, noise_dbfs=(level, level))
    out, params = augment_audio(np.zeros(6 * SR, np.float32), SR, np.random.default_rng(0), cfg, True)
    assert params["noise"]["colour"] == ("pink" if pink else "white")
    assert abs(rms_dbfs(out) - level) <= 1.0


def test_pink_noise_has_less_treble_than_white():
    def treble_share(pink):
        cfg = AudioAugmentation(**ONLY | {"noise_p": 1.0, "pink_p": float(pink)}, noise_dbfs=(-40, -40))
        out = augment_audio(np.zeros(SR, np.float32), SR, np.random.default_rng(0), cfg)
        power = np.abs(np.fft.rfft(out)) ** 2
        return power[len(power) // 2 :].sum() / power.sum()

    assert treble_share(False) > 0.4 and treble_share(True) < 0.1


def test_silence_stays_silent_without_noise_or_hum():
    cfg = AudioAugmentation(reverb_p=1.0, eq_p=1.0, noise_p=0.0, hum_p=0.0)
    out = augment_audio(np.zeros(2 * SR, np.float32), SR, np.random.default_rng(0), cfg)
    assert np.abs(out).max() < 1e-6


def test_gain_is_exact():
    wave = _tone()
    for g in (-12.0, -3.5, 0.0, 6.0):
        cfg = AudioAugmentation(**ONLY | {"gain_p": 1.0}, gain_db=(g, g))
        out = augment_audio(wave, SR, np.random.default_rng(0), cfg)
        np.testing.assert_array_equal(out, np.clip(wave * np.float32(10 ** (g / 20)), -1, 1))


def _decay_time(x, sr, floor_db=-40.0):
    """Seconds until the 10 ms-energy envelope falls `floor_db` below its peak for good."""
    frames = np.square(x[: len(x) // 160 * 160].astype(np.float64)).reshape(-1, 160).sum(1)
    db = 10 * np.log10(frames / frames.max() + 1e-30)
    above = np.flatnonzero(db > floor_db)
    return (above[-1] - db.argmax() + 1) * 160 / sr


def test_reverb_lengthens_the_decay_of_an_impulse():
    impulse = np.zeros(3 * SR, np.float32)
    impulse[SR // 2] = 0.5
    dry = _decay_time(impulse, SR)
    for rt60 in (0.3, 1.0):
        cfg = AudioAugmentation(**ONLY | {"reverb_p": 1.0}, rt60_s=(rt60, rt60), wet=(0.5, 0.5))
        wet = _decay_time(augment_audio(impulse, SR, np.random.default_rng(0), cfg), SR)
        assert dry <= 0.01
        # -40 dB of a decay reaching -60 dB at RT60: about 2/3 RT60 (the dry impulse is 1 of 2 halves).
        assert 0.4 * rt60 < wet < 0.9 * rt60, (rt60, wet)


def test_eq_changes_the_spectrum_within_its_bounds():
    wave = np.random.default_rng(3).standard_normal(2 * SR).astype(np.float32) * 0.05
    cfg = AudioAugmentation(**ONLY | {"eq_p": 1.0})
    out, params = augment_audio(wave, SR, np.random.default_rng(0), cfg, return_params=True)
    assert [b[0] for b in params["eq"]] == ["low_shelf", "high_shelf", "peak"]
    ratio_db = 10 * np.log10(np.sum(out.astype(np.float64) ** 2) / np.sum(wave.astype(np.float64) ** 2))
    assert 0.05 < abs(ratio_db) < 18  # three bands of at most ±6 dB


def test_hum_is_at_mains_frequency():
    cfg = AudioAugmentation(**ONLY | {"hum_p": 1.0, "hum_harmonics_p": 0.0}, hum_dbfs=(-50, -50))
    out, params = augment_audio(np.zeros(SR, np.float32), SR, np.random.default_rng(0), cfg, True)
    assert abs(rms_dbfs(out) + 50) < 0.1
    assert np.abs(np.fft.rfft(out)).argmax() == params["hum"]["hz"]  # 1 Hz bins over 1 s
