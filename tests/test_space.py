"""The Gradio Space (spaces_demo/app.py) served on 127.0.0.1 and called through `gradio_client`.

The server tests run the app in-process with a tiny random pipeline (they test the server, not the
models): audio and MIDI in, lit keys, the notes download, bad input. One test starts `spaces_demo/app.py`
as a subprocess with the embedded default pipeline, as `make space` does, and makes two end-to-end calls
(audio, then a short MIDI file with lit keys). Everything binds to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")
av = pytest.importorskip("av")
sf = pytest.importorskip("soundfile")

from conftest import tiny_khp_config, tiny_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "spaces_demo" / "app.py"
MOZART = ROOT / "spaces_demo" / "examples" / "mozart_k458_movement1.ogg"
MOZART_MIDI = ROOT / "spaces_demo" / "examples" / "mozart_k458_movement1.mid"
FPS = 30


def load_app():
    """spaces_demo/app.py as a module (the Space is not a package)."""
    if "apvg_space_app" in sys.modules:
        return sys.modules["apvg_space_app"]
    spec = importlib.util.spec_from_file_location("apvg_space_app", APP)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["apvg_space_app"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wav(path: Path, seconds: float, sr: int = 16000, seed: int = 0) -> Path:
    """A short piano-like signal: decaying tones at a few onsets (so onset strength is not flat)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    wave = np.zeros(n, np.float32)
    for onset in np.arange(0.1, seconds, 0.4):
        f = 220 * 2 ** (rng.integers(0, 24) / 12)
        env = np.where(t >= onset, np.exp(-(t - onset) * 6), 0.0)
        wave += (0.2 * env * np.sin(2 * np.pi * f * (t - onset))).astype(np.float32)
    sf.write(path, wave, sr)
    return path


def write_midi(path: Path, notes: list[dict]) -> Path:
    from apvg_hf.midi import notes_to_midi

    path.write_bytes(notes_to_midi(notes))
    return path


def probe(path: str | Path) -> dict:
    """Frames decoded, codecs and durations of an mp4 (PyAV)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {
            "video_codec": v.codec_context.name,
            "audio_codec": a.codec_context.name if a else None,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(v.average_rate),
        }
        info["frames"] = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0)) if a else 0
        info["audio_seconds"] = samples / a.codec_context.sample_rate if a else 0.0
    info["video_seconds"] = info["frames"] / info["fps"]
    return info


def video_path(result) -> str:
    """gradio_client returns a Video output as a path (or a dict holding it)."""
    return result["video"] if isinstance(result, dict) else result


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """(url, client): the app with a tiny random pipeline, launched in this process on 127.0.0.1."""
    from gradio_client import Client

    app = load_app()
    demo = app.create_demo(
        pipe=tiny_pipeline(), model_path="tiny-random", output_dir=tmp_path_factory.mktemp("space_out")
    )
    _, url, _ = app.launch(
        demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    assert url.startswith("http://127.0.0.1:")
    try:
        yield url, Client(url, verbose=False)
    finally:
        demo.close()


def generate(client, wav, performer="default", size=128, layout="frames", longest=60, midi=None, keys=True):
    """One call of /generate: audio `wav` or MIDI `midi` (a path each, or None)."""

    def upload(path):
        return None if path is None else gradio_client.handle_file(str(path))

    return client.predict(
        upload(wav), upload(midi), performer, size, layout, longest, keys, api_name="/generate"
    )


def check_result(
    result, seconds: float, size: int, layout: str = "frames", hears_notes: bool = False
) -> dict:
    """An audio request's answer. The tiny pipeline's KHP hears audio (no notes, no lit keys); a note-aware
    KHP (`hears_notes`, the embedded default) transcribes it: notes to download, keys lit."""
    video, kp_file, plot, summary, notes = result
    if hears_notes:
        assert notes is not None and "keys that sound are lit" in summary, summary
        from apvg_hf.midi import read_midi

        assert len(read_midi(notes)) > 0
    else:
        assert notes is None and "Keys not lit" in summary
    info = probe(video_path(video))
    T = round(seconds * FPS)
    assert info["frames"] == T
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["audio_seconds"] - seconds) < 0.1 and abs(info["video_seconds"] - seconds) < 0.05
    assert info["height"] == size and info["width"] == (2 * size if layout == "side-by-side" else size)
    kp = json.loads(Path(kp_file).read_text())
    assert kp["num_frames"] == T and np.asarray(kp["keypoints"]).shape == (T, 56, 2)
    assert np.asarray(kp["visibility"]).shape == (T, 56) and kp["fps"] == FPS
    assert len(kp["keypoint_names"]) == 56
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{T} frames" in summary
    return kp


def test_api_lists_the_generate_endpoint(space):
    _, client = space
    api = client.view_api(return_format="dict", print_info=False)
    assert "/generate" in api["named_endpoints"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/generate"]["parameters"]]
    assert params == ["audio", "midi", "performer", "video_size", "layout", "longest", "highlight_keys"]
    # The page's helper events (gallery <-> performer, clearing the outputs) are not API endpoints.
    assert len(api["named_endpoints"]) == 1
    # The MIDI example is among the examples, and fits the Space's cap.
    from apvg_hf.midi import read_midi

    app = load_app()
    assert MOZART_MIDI.name in [f for f, _, _ in app.EXAMPLES]
    assert max(n["offset"] for n in read_midi(MOZART_MIDI)) + 1.0 <= 60


@pytest.mark.parametrize("layout", ["frames", "side-by-side"])
def test_generate_returns_mp4_keypoints_and_plot(space, tmp_path, layout):
    _, client = space
    wav = write_wav(tmp_path / "take one.wav", 2.5)
    kp = check_result(generate(client, wav, "ada", 256, layout), 2.5, 256, layout)
    assert kp["performer"] == "ada" and kp["source"] == "take one.wav"


def test_performers_change_the_frames(space, tmp_path):
    _, client = space
    wav = write_wav(tmp_path / "a.wav", 1.0)
    first = [av_frames(video_path(generate(client, wav, p)[0])) for p in ("default", "ben")]
    assert first[0].shape == first[1].shape
    assert np.abs(first[0].astype(int) - first[1].astype(int)).mean() > 1.0


def av_frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


MIDI_NOTES = [  # the last note ends at 1.234 s: a video of ceil(2.234 s * 30) frames
    {"pitch": 60, "onset": 0.1, "offset": 0.6, "velocity": 90},
    {"pitch": 64, "onset": 0.5, "offset": 1.0, "velocity": 70},
    {"pitch": 67, "onset": 0.9, "offset": 1.234, "velocity": 80},
]


def test_midi_in_lit_keys_and_the_notes_download(space, tmp_path):
    """A MIDI file in: the video lasts until a second after the last note ends, with the rendered notes
    as its sound, the keys lit (or not, as asked); the notes download is the file's notes."""
    from apvg_hf.midi import read_midi

    _, client = space
    midi = write_midi(tmp_path / "little piece.mid", MIDI_NOTES)
    given = read_midi(midi)  # the times as the file stores them (0.5 ms ticks)
    seconds = max(n["offset"] for n in given) + 1.0
    T = math.ceil(seconds * FPS)
    assert T == 68
    lit, unlit = (generate(client, None, "ada", midi=midi, keys=keys) for keys in (True, False))
    video, kp_file, plot, summary, notes_file = lit
    info = probe(video_path(video))
    assert info["frames"] == T and info["height"] == info["width"] == 128
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert abs(info["audio_seconds"] - seconds) < 0.1
    kp = json.loads(Path(kp_file).read_text())
    assert kp["num_frames"] == T and kp["input"] == "midi" and kp["source"] == "little piece.mid"
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{T} frames" in summary and "3 notes" in summary and "keys that sound are lit" in summary
    # The notes download round-trips: the same notes as the file.
    played = read_midi(notes_file)
    assert [(n["pitch"], n["velocity"]) for n in played] == [(n["pitch"], n["velocity"]) for n in given]
    np.testing.assert_allclose(
        [(n["onset"], n["offset"]) for n in played], [(n["onset"], n["offset"]) for n in given], atol=1e-3
    )
    # Unticked: the same performance, without the lit keys (they change a part of the picture only).
    assert "are lit" not in unlit[3] and "not lit" not in unlit[3] and read_midi(unlit[4]) == played
    a, b = av_frames(video_path(video)), av_frames(video_path(unlit[0]))
    changed = (np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 40).mean(axis=(1, 2))  # (T,)
    assert changed.max() > 0 and changed.max() < 0.5
    # With a performer whose picture has no keyboard geometry (the tiny pipeline's own), it says so.
    assert "does not know where the keys are" in generate(client, None, "default", midi=midi)[3]


def test_a_note_aware_khp_lights_the_keys_it_hears(tmp_path):
    """A KHP with architecture "notes" transcribes audio: the keys can be lit from audio too, and the
    notes it heard are offered. (The app's function called directly: no second server.)"""
    import gradio as gr

    from apvg_hf import APVGPipeline, KHPModel
    from apvg_hf.data.references import appearance_references

    app = load_app()
    pipe = tiny_pipeline()
    config = tiny_khp_config(
        hidden_size=16, intermediate_size=16, coarse_channels=8, architecture="notes",
        transcriber_layers=1, transcriber_channels=4, key_context=2,
    )  # fmt: skip
    pipe = APVGPipeline(pipe.feature_extractor, KHPModel(config).eval(), pipe.stu, pipe.reference)
    name, ref = appearance_references(64)[0]
    performers = [app.Performer(name, name.title(), ref, app._picture(ref))]
    demo = app.create_demo(pipe=pipe, model_path="tiny-notes", performers=performers, output_dir=tmp_path)
    fn = next(f.fn for f in demo.fns.values() if f.api_name == "generate")
    wav = write_wav(tmp_path / "heard.wav", 1.0)
    video, _, _, summary, notes_file = fn(
        str(wav), None, name, 128, "frames", 60, True, progress=gr.Progress()
    )
    assert probe(video)["frames"] == 30
    assert "keys that sound are lit" in summary and "not lit" not in summary and "Heard" in summary
    if notes_file is not None:  # a random transcriber may hear nothing
        from apvg_hf.midi import read_midi

        assert len(read_midi(notes_file)) >= 1


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (None, {}, "No audio or MIDI file"),
        ("empty", {}, "holds no sound"),
        ("corrupt", {}, "Cannot read"),
        ("long", {}, "at most 60 s"),
        ("wav", {"longest": 5}, "at most 5 s"),
        ("wav", {"performer": "nobody"}, "not in the list of choices"),
        ("wav", {"size": 5000}, "not in the list of choices"),
        ("wav", {"layout": "mosaic"}, "not in the list of choices"),
        ("both", {}, "Both a recording and a MIDI file were given"),
        ("corrupt.mid", {}, "Cannot use 'corrupt.mid': it is not a readable MIDI file"),
        ("silent.mid", {}, "Cannot use 'silent.mid': it holds no notes"),
        ("long.mid", {"longest": 5}, r"The MIDI file lasts 7\.0 s .* at most 5 s"),
        ("notes.txt", {}, "Invalid file type"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_app_keeps_serving(space, tmp_path, make, kwargs, message):
    from gradio_client.exceptions import AppError

    _, client = space
    wav = midi = None
    if make == "both":
        wav = write_wav(tmp_path / "one.wav", 1.0)
        midi = write_midi(tmp_path / "one.mid", [{"pitch": 60, "onset": 0.0, "offset": 0.5}])
    elif make == "corrupt.mid":  # a MIDI header, then noise
        midi = tmp_path / make
        midi.write_bytes(
            b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x07\xd0"
            + np.random.default_rng(0).integers(0, 256, 2000).astype(np.uint8).tobytes()
        )
    elif make == "silent.mid":  # a valid file without a note
        midi = write_midi(tmp_path / make, [])
    elif make == "long.mid":  # the last note ends at 6 s: 7 s with the release
        midi = write_midi(tmp_path / make, [{"pitch": 60, "onset": 5.0, "offset": 6.0}])
    elif make == "notes.txt":
        midi = write_midi(tmp_path / make, [{"pitch": 60, "onset": 0.0, "offset": 0.5}])
    elif make == "empty":
        wav = tmp_path / "empty.wav"
        sf.write(wav, np.zeros(0, np.float32), 16000)
    elif make == "corrupt":
        wav = tmp_path / "corrupt.wav"
        wav.write_bytes(
            b"RIFF\x00\x00\x00\x00WAVEfmt "
            + np.random.default_rng(0).integers(0, 256, 4000).astype(np.uint8).tobytes()
        )
    elif make == "long":  # 65 s: refused from the header, before anything is decoded
        wav = write_wav(tmp_path / "long.wav", 65.0, sr=8000)
    elif make == "wav":
        wav = write_wav(tmp_path / "six.wav", 6.0, sr=8000)
    with pytest.raises(AppError, match=message):
        if wav is None and midi is None:
            client.predict(None, None, "default", 128, "frames", 60, True, api_name="/generate")
        else:
            generate(client, wav, midi=midi, **kwargs)
    # The same server answers the next request correctly.
    ok = write_wav(tmp_path / "ok.wav", 1.0)
    check_result(generate(client, ok), 1.0, 128)


def test_progress_follows_the_chunks(tmp_path):
    """The pipeline is called with a per-chunk callback, once a chunk: the page's progress bar moves."""
    import inspect

    from gradio_client import Client

    import apvg_hf

    if "callback_on_chunk_end" not in inspect.signature(apvg_hf.APVGPipeline.__call__).parameters:
        pytest.skip("this apvg_hf has no callback_on_chunk_end (the app follows its tqdm bar instead)")
    app = load_app()
    calls = []
    pipe = tiny_pipeline()
    original = type(pipe).__call__

    class Recording(type(pipe)):
        def __call__(self, audio, *args, callback_on_chunk_end=None, **kwargs):
            def record(done, total):
                calls.append((done, total))
                callback_on_chunk_end(done, total)

            return original(self, audio, *args, callback_on_chunk_end=record, **kwargs)

    pipe.__class__ = Recording
    demo = app.create_demo(pipe=pipe, model_path="tiny-random", output_dir=tmp_path / "out")
    _, url, _ = app.launch(
        demo, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        check_result(generate(Client(url, verbose=False), write_wav(tmp_path / "x.wav", 7.0)), 7.0, 128)
    finally:
        demo.close()
    total = int(np.ceil(7.0 / app.chunk_seconds_for(7.0)))
    assert total >= 3
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_twenty_concurrent_requests_all_answered_none_mixed_up(space, tmp_path):
    """20 requests at once (loopback only), each with its own length: every answer is its own."""
    url, _ = space
    from gradio_client import Client

    lengths = [0.5 + 0.1 * i for i in range(20)]  # 15 .. 72 frames: each result says whose it is
    wavs = [write_wav(tmp_path / f"req{i:02d}.wav", s, seed=i) for i, s in enumerate(lengths)]

    def one(i):
        client = Client(url, verbose=False)  # one client (one session) per caller, as 20 browsers
        return generate(client, wavs[i], performer=["default", "ada", "ben", "chloe"][i % 4], size=128)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    took = time.perf_counter() - t0
    for i, (seconds, result) in enumerate(zip(lengths, results)):
        kp = check_result(result, seconds, 128)
        assert kp["source"] == f"req{i:02d}.wav"
    assert len({video_path(r[0]) for r in results}) == 20
    print(f"20 concurrent requests answered in {took:.1f} s")


def test_space_subprocess_with_the_default_pipeline(tmp_path):
    """`python spaces_demo/app.py` as `make space` starts it (embedded default pipeline, 127.0.0.1), then
    one end-to-end call with a 3 s cut of the bundled example."""
    from gradio_client import Client

    port = free_port()
    env = os.environ | {
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("APVG_SPACE_MODEL", None)
    with open(tmp_path / "space.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(APP)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        client = None
        deadline = time.monotonic() + 120
        while client is None:
            assert proc.poll() is None, (tmp_path / "space.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Space did not start in 120 s"
            try:
                client = Client(url, verbose=False)
            except Exception:  # noqa: BLE001  (not listening yet)
                time.sleep(0.5)
        audio, sr = sf.read(MOZART, dtype="float32")
        cut = tmp_path / "mozart_3s.wav"
        sf.write(cut, audio[: 3 * sr], sr)
        kp = check_result(generate(client, cut), 3.0, 128, hears_notes=True)
        assert kp["model"] == "apvg-virtual-pianist"
        # The trained model moves its hands: well above the random-walk floor, inside the frame.
        k = np.asarray(kp["keypoints"])
        assert k.min() >= 0.0 and k.max() <= 1.0 and k[:, 14:].std(axis=0).mean() > 1e-3
        # A short MIDI file: the default performer's picture knows where the keys are, so they light up.
        midi = write_midi(
            tmp_path / "chord.mid", [{"pitch": p, "onset": 0.0, "offset": 0.5} for p in (60, 64, 67)]
        )
        video, _, _, summary, notes = generate(client, None, midi=midi)
        assert probe(video_path(video))["frames"] == 45 and "keys that sound are lit" in summary
        assert notes is not None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
