"""End to end on tiny random components: the transformers task, streaming mp4 output, the CLI."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import pipeline

import apvg_hf  # noqa: F401  (registers the task)
from apvg_hf import APVGPipeline
from apvg_hf.cli import main as cli
from apvg_hf.video_io import probe_video, read_audio_track
from conftest import tiny_pipeline

SR = 16000


@pytest.fixture(scope="module")
def pipe_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe")
    tiny_pipeline().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def task(pipe_dir):
    return pipeline("audio-to-performance-video", model=str(pipe_dir))


def tone(seconds=1.0, sr=SR):
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.4 < 0.2)).astype(np.float32)


def test_saved_folder_has_the_task_config(pipe_dir):
    cfg = json.loads((pipe_dir / "config.json").read_text())
    assert cfg["model_type"] == "apvg_pipeline" and cfg["resolution"] == 32
    assert json.loads((pipe_dir / "model_index.json").read_text())["_class_name"] == "APVGPipeline"


def test_task_accepts_every_input_form(task, tmp_path):
    wave = tone(1.0)
    path = tmp_path / "tone.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    ref = task(wave, sampling_rate=SR)
    assert ref["frames"].shape == (30, 32, 32, 3) and ref["keypoints"].shape == (30, 56, 2)
    assert ref["video"] is None and ref["fps"] == 30.0
    for inputs, kw in [
        (str(path), {}),
        (path.read_bytes(), {}),
        ({"array": wave, "sampling_rate": SR}, {}),
        (torch.from_numpy(wave), {"sampling_rate": SR}),
    ]:
        got = task(inputs, **kw)
        assert np.abs(got["frames"].astype(int) - ref["frames"].astype(int)).max() <= 1, type(inputs)
    batch = task([wave, {"array": tone(0.5), "sampling_rate": SR}], sampling_rate=SR)
    assert [len(b["frames"]) for b in batch] == [30, 15]


def test_task_writes_mp4s_and_checks_inputs(task, tmp_path):
    out = task(tone(2.0, sr=22050), sampling_rate=22050, output_path=tmp_path / "a.mp4", return_frames=False)
    assert out["frames"] is None and out["video"] == str(tmp_path / "a.mp4")
    info = probe_video(out["video"])
    assert info["frames"] == 60 and info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["duration"] - 2.0) <= 1 / 30 + 0.05
    outs = task([tone(0.5), tone(1.0)], sampling_rate=SR, output_path=tmp_path / "batch")
    assert [probe_video(o["video"])["frames"] for o in outs] == [15, 30]
    with pytest.raises(ValueError, match="sampling_rate"):
        task(tone())
    with pytest.raises(TypeError, match="unknown argument"):
        task(tone(), sampling_rate=SR, colour="red")


def test_streaming_file_equals_in_memory_and_fps(pipe_dir, tmp_path):
    pipe = APVGPipeline.from_pretrained(pipe_dir)
    wave = tone(3.0)
    full = pipe(wave, sampling_rate=SR, chunk_seconds=100, show_progress=False)
    streamed = pipe(
        wave, sampling_rate=SR, chunk_seconds=0.4, stu_batch=3, output_type=None,
        output_path=tmp_path / "s.mp4", show_progress=False,
    )  # fmt: skip
    assert streamed.frames is None and streamed.coarse_frames is None
    assert np.abs(streamed.keypoints - full.keypoints).max() <= 1e-4
    assert probe_video(tmp_path / "s.mp4")["frames"] == 90
    audio, sr = read_audio_track(tmp_path / "s.mp4")
    assert sr == SR and abs(len(audio) / sr - 3.0) < 0.1
    half = pipe(wave, sampling_rate=SR, fps=15, show_progress=False)
    assert len(half.frames) == 45 and half.fps == 15.0
    assert np.array_equal(half.frames, full.frames[1::2])  # nearest model frame to each output frame


def test_video_layouts_and_size(pipe_dir, tmp_path):
    pipe = APVGPipeline.from_pretrained(pipe_dir)
    for layout, width in [("overlay", 64), ("side-by-side", 128)]:
        out = pipe(tone(0.5), sampling_rate=SR, output_path=tmp_path / f"{layout}.mp4", video_layout=layout,
                   video_size=64, show_progress=False)  # fmt: skip
        info = probe_video(tmp_path / f"{layout}.mp4")
        assert (info["width"], info["height"], info["frames"]) == (width, 64, len(out.frames))
    with pytest.raises(ValueError, match="video_layout"):
        pipe(tone(), sampling_rate=SR, video_layout="mosaic", show_progress=False)


def test_failure_mid_generation_leaves_no_file(pipe_dir, tmp_path, monkeypatch):
    pipe = APVGPipeline.from_pretrained(pipe_dir)
    calls = {"n": 0}
    run = pipe.stu.run  # the network on one step's assembled input

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory (simulated)")
        return run(*args, **kwargs)

    monkeypatch.setattr(pipe.stu, "run", flaky)
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="simulated"):
        pipe(tone(2.0), sampling_rate=SR, chunk_seconds=0.5, output_path=target, show_progress=False)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []  # neither the video nor a partial file


def test_too_long_audio_is_refused_before_decoding(pipe_dir, tmp_path):
    pipe = APVGPipeline.from_pretrained(pipe_dir)
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(5 * SR, np.float32), SR)
    with pytest.raises(ValueError, match="max_seconds"):
        pipe(path, max_seconds=2, show_progress=False)
    with pytest.raises(ValueError, match="max_seconds"):
        pipe(np.zeros(5 * SR, np.float32), sampling_rate=SR, max_seconds=2, show_progress=False)


def test_cli_generate(pipe_dir, tmp_path, capsys):
    wav = tmp_path / "in.wav"
    sf.write(wav, np.stack([tone(1.5, 44100)] * 2, 1), 44100)  # stereo, 44.1 kHz
    out = tmp_path / "out.mp4"
    assert cli(["generate", str(wav), "-o", str(out), "--model", str(pipe_dir), "--overlay"]) == 0
    info = probe_video(out)
    assert info["frames"] == 45 and info["audio_codec"] == "aac"
    assert "wrote" in capsys.readouterr().out
    assert cli(["info", "--model", str(pipe_dir)]) == 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"), "not an audio file"),
        (lambda p: sf.write(p, np.zeros(0, np.float32), SR), "no samples"),
    ],
    ids=["missing", "empty-file", "corrupt", "zero-length"],
)
def test_cli_bad_audio(pipe_dir, tmp_path, capsys, make, message):
    wav = tmp_path / "bad.wav"
    make(wav)
    assert cli(["generate", str(wav), "-o", str(tmp_path / "x.mp4"), "--model", str(pipe_dir), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("apvg: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow  # subprocess memory runs
def test_pipeline_benchmark_writes_results(pipe_dir, tmp_path):
    from conftest import load_script

    out = tmp_path / "bench.json"
    load_script("benchmark").main(
        ["--model", str(pipe_dir), "--resolutions", "32", "--seconds", "1", "--repeats", "1"]
        + ["--memory-seconds", "1", "2", "--output", str(out)]
    )
    result = json.loads(out.read_text())
    assert [(r["resolution"], r["precision"]) for r in result["rows"]] == [(32, "fp32"), (32, "bf16")]
    row = result["rows"][0]
    assert row["frames"] == 30 and row["real_time_factor"] > 0
    assert {"features", "khp", "heatmaps", "stu", "encoding"} <= set(row["ms_per_frame"])
    assert result["rows"][1]["bf16_vs_fp32_psnr_db"] > 20
    assert [m["seconds_of_audio"] for m in result["memory"]] == [1, 2]
    assert all(m["peak_rss_mb"] >= m["rss_after_imports_mb"] > 50 for m in result["memory"])
    assert "real-time factor" in out.with_suffix(".md").read_text()


def test_pipeline_benchmark_compares_pipelines_in_one_run(pipe_dir, tmp_path):
    from conftest import load_script

    out = tmp_path / "bench.json"
    bench = load_script("benchmark")
    bench.main(
        ["--model", str(pipe_dir), "--compare", f"before={pipe_dir}", "--resolutions", "32", "64"]
        + [
            "--precisions",
            "fp32",
            "--seconds",
            "1",
            "--repeats",
            "1",
            "--memory-seconds",
            "--output",
            str(out),
        ]
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["pipeline"], r["resolution"], r["weights"]) for r in rows] == [
        (pipe_dir.name, 32, "trained"),
        (pipe_dir.name, 64, "random (same architecture)"),
        ("before", 32, "trained"),
        ("before", 64, "random (same architecture)"),
    ]
    assert "| before | 64 | random (same architecture) | fp32 |" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):
        bench.main(["--compare", f"x={tmp_path}", "--output", str(out)])  # not a pipeline folder
