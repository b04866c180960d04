"""APVGPipeline on tiny random components: chunked == one pass, save/load, mp4 export, input forms, errors."""

import numpy as np
import pytest
import soundfile as sf
import torch

from apvg_hf import (
    AppearanceReference,
    APVGPipeline,
    KHPModel,
    STUModel,
    export_to_video,
)
from apvg_hf.video_io import probe_video
from conftest import tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def tone(seconds=2.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.4 < 0.2)).astype(np.float32)


def test_chunked_equals_one_pass(pipe):
    wave = tone(3.0)
    one = pipe(wave, sampling_rate=16000, chunk_seconds=100, output_type="pt", show_progress=False)
    chunked = pipe(wave, sampling_rate=16000, chunk_seconds=0.3, output_type="pt", show_progress=False)
    assert one.frames.shape == (90, 3, 32, 32)
    assert (one.frames - chunked.frames).abs().max() <= 1e-4
    assert np.abs(one.keypoints - chunked.keypoints).max() <= 1e-4


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Saved and loaded weights are bit for bit the same (names, dtypes, shapes, values)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name


def test_save_load_same_output_and_components(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    for sub in ("feature_extractor", "khp", "stu", "reference"):
        assert (tmp_path / sub).is_dir(), sub
    loaded = APVGPipeline.from_pretrained(tmp_path)
    for name in ("khp", "stu", "reference"):
        assert_same_weights(getattr(pipe, name), getattr(loaded, name))
    wave = tone(1.0)
    a = pipe(wave, sampling_rate=16000, output_type="pt", show_progress=False).frames
    b = loaded(wave, sampling_rate=16000, output_type="pt", show_progress=False).frames
    # Outputs: within 1e-5, not bit for bit: a loader may place weights at other memory alignments, and
    # CPU kernels then take other paths (transformers 5.24 does; differences ~1e-7 were seen).
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # Saving again gives the same safetensors bytes.
    loaded.save_pretrained(tmp_path / "again")
    for sub, name in [("khp", "model.safetensors"), ("stu", "diffusion_pytorch_model.safetensors")]:
        assert (tmp_path / sub / name).read_bytes() == (tmp_path / "again" / sub / name).read_bytes(), sub
    assert torch.equal(
        STUModel.from_pretrained(tmp_path, subfolder="stu").to_rgb.weight, pipe.stu.to_rgb.weight
    )
    assert torch.equal(
        AppearanceReference.from_pretrained(tmp_path, subfolder="reference").frame, pipe.reference.frame
    )
    assert isinstance(KHPModel.from_pretrained(tmp_path, subfolder="khp"), KHPModel)


def test_input_forms_agree(pipe, tmp_path):
    wave = tone(1.0)
    path = tmp_path / "tone.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    ref = pipe(wave, sampling_rate=16000, show_progress=False).frames
    for audio, kw in [
        (str(path), {}),
        (path, {}),
        (torch.from_numpy(wave), {"sampling_rate": 16000}),
        ({"array": wave, "sampling_rate": 16000}, {}),
        (np.stack([wave, wave], 1), {"sampling_rate": 16000}),  # stereo, (N, 2)
    ]:
        out = pipe(audio, show_progress=False, **kw).frames
        assert out.shape == ref.shape and np.abs(out.astype(int) - ref.astype(int)).max() <= 1, type(audio)
    pil = pipe(wave, sampling_rate=16000, output_type="pil", show_progress=False).frames
    assert len(pil) == 30 and pil[0].size == (32, 32)


def test_bad_inputs_give_clear_errors(pipe, tmp_path):
    with pytest.raises(ValueError, match="sampling_rate is required"):
        pipe(tone(), show_progress=False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        pipe(tmp_path / "missing.wav", show_progress=False)
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00not really audio")
    with pytest.raises(ValueError, match="not an audio file this package can decode"):
        pipe(bad, show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        pipe(np.zeros(0, np.float32), sampling_rate=16000, show_progress=False)
    with pytest.raises(ValueError, match="output_type"):
        pipe(tone(), sampling_rate=16000, output_type="gif", show_progress=False)


def test_export_to_video_with_audio(pipe, tmp_path):
    wave = tone(2.0, sr=22050)
    out = pipe(wave, sampling_rate=22050, show_progress=False)
    path = export_to_video(out, tmp_path / "out.mp4", overlay=True)
    info = probe_video(path)
    assert info["frames"] == len(out.frames) == 60
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["duration"] - 2.0) <= 1.5 / 30 + 0.05  # container duration (AAC priming included)


def test_pixel_shuffle_stu_in_the_pipeline(pipe, tmp_path):
    """An STU at twice the resolution (pixel_shuffle=2, the network at 32): 64 x 64 frames, chunked ==
    one pass, an mp4 at 64, and before training the small STU's frames upsampled where the reference is
    constant on 2 x 2 blocks."""
    import torch.nn.functional as F

    ref = pipe.reference.at(32)  # a 64 reference constant on 2 x 2 blocks
    big = APVGPipeline(
        pipe.feature_extractor,
        pipe.khp,
        STUModel.upscaled_from(pipe.stu, 2).eval(),
        AppearanceReference.from_frame(F.interpolate(ref[None], scale_factor=2)[0], pipe.reference.keypoints),
    )
    wave = tone(2.0)
    one = big(wave, sampling_rate=16000, chunk_seconds=100, output_type="pt", show_progress=False)
    chunked = big(wave, sampling_rate=16000, chunk_seconds=0.3, output_type="pt", show_progress=False)
    small = pipe(wave, sampling_rate=16000, output_type="pt", show_progress=False)
    assert one.frames.shape == (60, 3, 64, 64)
    assert (one.frames - chunked.frames).abs().max() <= 1e-4
    assert (one.frames - F.interpolate(small.frames, scale_factor=2)).abs().max() <= 1e-4
    big(wave, sampling_rate=16000, output_path=tmp_path / "big.mp4", show_progress=False)
    assert probe_video(tmp_path / "big.mp4")["width"] == 64
