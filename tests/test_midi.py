"""MIDI in: reading MIDI files and note lists, the keyboard geometry in the appearance reference, MIDI and
notes through the pipeline (tiny random models), lit keys in the video, the task and the CLI."""

import io
import json

import mido
import numpy as np
import PIL.Image
import PIL.ImageDraw
import pretty_midi
import pytest
import torch
from transformers import pipeline

import apvg_hf  # noqa: F401  (registers the task)
from apvg_hf import AppearanceReference, APVGPipeline, KHPModel
from apvg_hf.cli import main as cli
from apvg_hf.data.notes import Note
from apvg_hf.data.scene import Camera, keyboard_quads
from apvg_hf.midi import check_notes, notes_to_midi, read_midi, render_notes
from apvg_hf.piano_roll import LOWEST_PITCH, notes_to_roll
from apvg_hf.pipeline_apvg import compose_frames, sounding_keys
from apvg_hf.video_io import probe_video, read_audio_track, read_video
from conftest import ROOT, tiny_khp_config, tiny_pipeline

SR = 16000
QUADS = keyboard_quads(Camera())  # (88, 4, 2): the virtual pianist's keyboard, default camera
# 1.5 s of music: the video lasts until a second after the last note ends -> 2.5 s, 75 frames at 30 fps.
NOTES = [
    {"pitch": 60, "onset": 0.0, "offset": 0.5, "velocity": 90},
    {"pitch": 64, "onset": 0.5, "offset": 1.0},
    {"pitch": 67, "onset": 1.0, "offset": 1.5, "velocity": 70},
    {"pitch": 48, "onset": 0.0, "offset": 1.5, "velocity": 60},
]


def reference_with_keys(seed: int = 1) -> AppearanceReference:
    g = torch.Generator().manual_seed(seed)
    return AppearanceReference.from_frame(
        torch.rand(3, 64, 64, generator=g), torch.rand(56, 2, generator=g), 32, keyboard_quads=QUADS
    )


@pytest.fixture(scope="module")
def pipe():
    tiny = tiny_pipeline()
    return APVGPipeline(tiny.feature_extractor, tiny.khp, tiny.stu, reference_with_keys())


@pytest.fixture(scope="module")
def pipe_dir(pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe")
    pipe.save_pretrained(path)
    return path


@pytest.fixture
def mid(tmp_path):
    path = tmp_path / "piece.mid"
    path.write_bytes(notes_to_midi(NOTES))
    return path


# ------------------------------------------------------------------------------------------ reading MIDI


def test_read_midi_round_trip():
    rng = np.random.default_rng(0)
    onsets = np.arange(200) * 0.1 + rng.uniform(0, 0.05, 200)
    # A key sounds once at a time (MIDI cannot hold overlapping notes of one pitch): 88 notes apart.
    notes = [
        {"pitch": 21 + i % 88, "onset": float(t), "offset": float(t + d), "velocity": int(v)}
        for i, (t, d, v) in enumerate(zip(onsets, rng.uniform(0.01, 2, 200), rng.integers(1, 128, 200)))
    ]
    rng.shuffle(notes)
    back = read_midi(notes_to_midi(notes, end_time=25.0))
    notes.sort(key=lambda n: (n["onset"], n["pitch"]))
    assert len(back) == len(notes)
    assert [n["pitch"] for n in back] == [n["pitch"] for n in notes]
    for key in ("onset", "offset"):
        err = np.abs(np.array([n[key] for n in back]) - [n[key] for n in notes])
        assert err.max() < 1e-3, key
    assert [n["velocity"] for n in back] == [n["velocity"] for n in notes]
    assert set(back[0]) == {"pitch", "onset", "offset", "velocity"}


def test_read_midi_follows_the_tempo_map_and_merges_tracks(tmp_path):
    # One beat = 480 ticks; 120 bpm for two beats, then 60 bpm: beat 1 is 0.5 s, beat 3 is 1.0 + 1.0 s.
    f = mido.MidiFile(ticks_per_beat=480)
    tempo = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    tempo.append(mido.MetaMessage("set_tempo", tempo=1000000, time=960))
    right = mido.MidiTrack(
        [
            mido.Message("note_on", note=72, velocity=100, time=480),
            mido.Message("note_off", note=72, velocity=0, time=480),
            mido.Message("note_on", note=74, velocity=50, time=480),
            mido.Message("note_off", note=74, velocity=0, time=480),
        ]
    )
    left = mido.MidiTrack(
        [
            mido.Message("note_on", channel=1, note=36, velocity=80, time=0),
            mido.Message("note_off", channel=1, note=36, velocity=0, time=1920),
            mido.Message("note_on", channel=9, note=38, velocity=80, time=0),  # a drum: ignored
            mido.Message("note_off", channel=9, note=38, velocity=0, time=100),
        ]
    )
    f.tracks += [tempo, right, left]
    path = tmp_path / "tempo.mid"
    f.save(path)
    notes = read_midi(path)
    got = [(n["pitch"], round(n["onset"], 4), round(n["offset"], 4), n["velocity"]) for n in notes]
    assert got == [(36, 0.0, 3.0, 80), (72, 0.5, 1.0, 100), (74, 2.0, 3.0, 50)]
    assert read_midi(path.read_bytes()) == notes  # bytes work too


def test_read_midi_drops_notes_outside_the_keyboard_with_a_warning():
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(80, p, 0.0, 0.5) for p in (10, 21, 108, 120)]
    midi.instruments.append(piano)
    buffer = io.BytesIO()
    midi.write(buffer)
    with pytest.warns(UserWarning, match="dropped 2 note"):
        notes = read_midi(buffer.getvalue())
    assert [n["pitch"] for n in notes] == [21, 108]


def midi_without_notes(drums: bool = False) -> bytes:
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(0, is_drum=drums)
    if drums:
        instrument.notes.append(pretty_midi.Note(80, 38, 0.0, 0.5))
    midi.instruments.append(instrument)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, error, message",
    [
        (b"", ValueError, "empty"),
        (b"hello, this is no MIDI file", ValueError, "not a MIDI file"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", ValueError, "not a MIDI file"),
        (notes_to_midi(NOTES)[:30], ValueError, "not a readable MIDI file"),  # truncated
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrkjunk", ValueError, "not a readable MIDI file"),
        (midi_without_notes(), ValueError, "no notes"),
        (midi_without_notes(drums=True), ValueError, "no notes"),
    ],
    ids=["empty", "text", "wav", "truncated", "corrupt", "no-notes", "drums-only"],
)
def test_read_midi_errors(tmp_path, data, error, message):
    with pytest.raises(error, match=message):
        read_midi(data)
    path = tmp_path / "bad.mid"
    path.write_bytes(data)
    with pytest.raises(error, match=message) as info:
        read_midi(path)
    assert "bad.mid" in str(info.value)


def test_read_midi_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such MIDI file.*nowhere.mid"):
        read_midi(tmp_path / "nowhere.mid")
    with pytest.raises(IsADirectoryError):
        read_midi(tmp_path)


# ------------------------------------------------------------------------------------------- note lists


def test_check_notes_normalises():
    notes = check_notes(
        [
            {"pitch": np.int64(64), "onset": 1, "offset": np.float32(1.5)},
            Note(60, 0.0, 0.5, 100),
            {"pitch": 62.0, "onset": 0.5, "offset": 1.0, "velocity": None},
        ]
    )
    assert notes == [
        {"pitch": 60, "onset": 0.0, "offset": 0.5, "velocity": 100},
        {"pitch": 62, "onset": 0.5, "offset": 1.0, "velocity": 80},
        {"pitch": 64, "onset": 1.0, "offset": 1.5, "velocity": 80},
    ]
    assert all(type(n["pitch"]) is int and type(n["onset"]) is float for n in notes)


GOOD = {"pitch": 60, "onset": 0.0, "offset": 0.5}


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ({"onset": 0.0, "offset": 0.5}, ValueError, "note 1 .*missing pitch"),
        ({"pitch": 60, "offset": 0.5}, ValueError, "note 1 .*missing onset"),
        ({**GOOD, "pitch": 128}, ValueError, "note 1 .*pitch must be a whole number 0-127"),
        ({**GOOD, "pitch": -1}, ValueError, "note 1 .*pitch"),
        ({**GOOD, "pitch": 60.5}, ValueError, "note 1 .*pitch"),
        ({**GOOD, "pitch": "C4"}, ValueError, "note 1 .*pitch"),
        ({**GOOD, "pitch": True}, ValueError, "note 1 .*pitch"),
        ({**GOOD, "onset": -0.1}, ValueError, "note 1 .*onset must be >= 0"),
        ({**GOOD, "onset": float("nan")}, ValueError, "note 1 .*onset must be a finite number"),
        ({**GOOD, "offset": float("inf")}, ValueError, "note 1 .*offset must be a finite number"),
        ({**GOOD, "offset": 0.0}, ValueError, "note 1 .*offset .* must be after onset"),
        ({**GOOD, "velocity": 0}, ValueError, "note 1 .*velocity must be a whole number 1-127"),
        ({**GOOD, "velocity": 128}, ValueError, "note 1 .*velocity"),
        (5, TypeError, "note 1 .*a note is a dict"),
    ],
)
def test_check_notes_names_the_bad_entry(bad, error, message):
    with pytest.raises(error, match=message):
        check_notes([GOOD, bad, GOOD])


def test_check_notes_wrong_containers():
    with pytest.raises(ValueError, match="empty"):
        check_notes([])
    for wrong in (GOOD, "notes.mid", 3):
        with pytest.raises(TypeError, match="list of note dicts"):
            check_notes(wrong)


def test_render_notes_takes_dicts_and_notes_alike():
    as_notes = [Note(n["pitch"], n["onset"], n["offset"], n.get("velocity", 80)) for n in NOTES]
    a = render_notes(NOTES, sampling_rate=SR, duration=1.2)  # cut inside the notes
    assert a.shape == (round(1.2 * SR),) and np.abs(a).max() > 0.5
    assert np.array_equal(a, render_notes(as_notes, sampling_rate=SR, duration=1.2))


# ------------------------------------------------------------------------------------- the reference


def test_reference_with_keyboard_saves_and_loads(tmp_path):
    ref = reference_with_keys()
    assert ref.config.num_keys == 88 and ref.has_keyboard
    assert torch.equal(ref.keyboard_quads, torch.from_numpy(QUADS))
    ref.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["num_keys"] == 88
    back = AppearanceReference.from_pretrained(tmp_path)
    for name in ("frame", "keypoints", "keyboard_quads"):
        assert torch.equal(getattr(back, name), getattr(ref, name)), name


def test_reference_saved_before_keyboards_still_loads(tmp_path):
    g = torch.Generator().manual_seed(0)
    old = AppearanceReference.from_frame(torch.rand(3, 16, 16, generator=g), torch.rand(56, 2, generator=g))
    old.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["num_keys"]  # exactly the config an older version wrote
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    back = AppearanceReference.from_pretrained(tmp_path)
    assert back.keyboard_quads is None and not back.has_keyboard
    assert torch.equal(back.frame, old.frame) and "keyboard_quads" not in back.state_dict()


def test_reference_checks_the_keyboard():
    frame, kp = np.zeros((16, 16, 3), np.uint8), np.full((56, 2), 0.5)
    with pytest.raises(ValueError, match=r"keyboard_quads must be \(88, 4, 2\).*got shape \(87, 4, 2\)"):
        AppearanceReference.from_frame(frame, kp, keyboard_quads=QUADS[:87])
    with pytest.raises(ValueError, match="keyboard_quads must be"):
        AppearanceReference.from_frame(frame, kp, keyboard_quads=QUADS.reshape(88, 8))
    nan = QUADS.copy()
    nan[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        AppearanceReference.from_frame(frame, kp, keyboard_quads=nan)
    with pytest.raises(ValueError, match="num_keys"):
        AppearanceReference(num_keys=12)


def test_default_pipeline_reference_has_its_keyboard():
    ref = AppearanceReference.from_pretrained(ROOT / "pipelines" / "apvg-virtual-pianist" / "reference")
    source = json.loads(
        (ROOT / "pipelines" / "apvg-virtual-pianist" / "reference" / "source.json").read_text()
    )
    camera = Camera(**{k: tuple(v) if isinstance(v, list) else v for k, v in source["camera"].items()})
    np.testing.assert_array_equal(ref.keyboard_quads.numpy(), keyboard_quads(camera))


# --------------------------------------------------------------------------------------- the pipeline


def test_notes_and_midi_end_to_end(pipe, mid, tmp_path):
    out = pipe(notes=NOTES, output_path=tmp_path / "notes.mp4", show_progress=False)
    assert out.frames.shape == (75, 32, 32, 3) and out.keypoints.shape == (75, 56, 2)
    assert out.notes == check_notes(NOTES) and out.sampling_rate == SR and out.audio.shape == (40000,)
    info = probe_video(tmp_path / "notes.mp4")
    assert info["frames"] == 75 and info["audio_codec"] == "aac"
    sound, _ = read_audio_track(tmp_path / "notes.mp4")
    assert np.abs(sound).max() > 0.3  # the rendered piano, not silence

    from_file = pipe(midi=mid, output_path=tmp_path / "midi.mp4", show_progress=False)
    assert probe_video(tmp_path / "midi.mp4")["frames"] == 75
    from_bytes = pipe(midi=mid.read_bytes(), fps=25, show_progress=False)
    assert from_bytes.frames.shape[0] == 63  # ceil(2.5 s * 25)
    assert [n["pitch"] for n in from_file.notes] == [n["pitch"] for n in out.notes]
    np.testing.assert_allclose(from_file.keypoints, out.keypoints, atol=1e-6)
    # An audio-only KHP hears the rendered notes: exactly the audio path on that audio.
    heard = pipe(out.audio, sampling_rate=SR, show_progress=False)
    assert heard.notes is None
    np.testing.assert_array_equal(heard.keypoints, out.keypoints)


def test_note_aware_khp_plays_the_notes_or_transcribes_the_audio(pipe, tmp_path):
    torch.manual_seed(0)
    config = tiny_khp_config(
        hidden_size=16, intermediate_size=16, coarse_channels=8, architecture="notes",
        transcriber_layers=1, transcriber_channels=4, key_context=2,
    )  # fmt: skip
    khp = KHPModel(config).eval()
    notes_pipe = APVGPipeline(pipe.feature_extractor, khp, pipe.stu, pipe.reference)
    assert notes_pipe.khp_architecture == "notes" and pipe.khp_architecture == "audio"
    ref = pipe.reference
    # Notes in: KHP plays their piano roll on the reference's keyboard (no transcription).
    kw = dict(output_path=tmp_path / "n.mp4", highlight_keys=True, show_progress=False)
    out = notes_pipe(notes=NOTES, chunk_seconds=0.5, **kw)
    assert out.notes == check_notes(NOTES) and probe_video(tmp_path / "n.mp4")["frames"] == 75
    direct = khp.predict(
        piano_roll=notes_to_roll(NOTES, 75, 30.0), reference_keys=ref.keyboard_quads, fps=30.0,
        reference_keypoints=ref.keypoints, reference_frames=ref.at(khp.config.coarse_size),
    )  # fmt: skip
    np.testing.assert_allclose(out.keypoints, direct.keypoints[0].numpy(), atol=1e-5)
    # Audio in: KHP transcribes it; the notes it heard come back (and light the keys).
    heard = notes_pipe(out.audio, sampling_rate=SR, **(kw | {"output_path": tmp_path / "a.mp4"}))
    features = pipe.feature_extractor(out.audio, sampling_rate=SR)["input_features"][0]
    assert heard.notes == khp.predict(features, fps=30.0).notes[0]
    assert probe_video(tmp_path / "a.mp4")["frames"] == 75


def test_exactly_one_input_and_highlight_checks(pipe, tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises(ValueError, match="exactly one of audio=.*got none"):
        pipe(output_path=path)
    with pytest.raises(ValueError, match="got audio and midi"):
        pipe(np.zeros(SR, np.float32), sampling_rate=SR, midi=b"MThd", output_path=path)
    with pytest.raises(ValueError, match="got midi and notes"):
        pipe(midi=b"MThd", notes=NOTES, output_path=path)
    with pytest.raises(ValueError, match="note 0"):
        pipe(notes=[{"pitch": 60, "onset": 1.0, "offset": 0.5}], output_path=path)
    with pytest.raises(ValueError, match="the piece is 102.0 s long, more than max_seconds=10"):
        pipe(notes=[{"pitch": 60, "onset": 100.0, "offset": 101.0}], max_seconds=10, output_path=path)
    with pytest.raises(ValueError, match="highlight_keys lights the keys in the video: pass output_path"):
        pipe(notes=NOTES, highlight_keys=True)
    with pytest.raises(ValueError, match="highlight_keys needs notes"):
        pipe(np.zeros(SR, np.float32), sampling_rate=SR, highlight_keys=True, output_path=path)
    plain = AppearanceReference.from_frame(np.zeros((32, 32, 3), np.uint8), np.full((56, 2), 0.5))
    with pytest.raises(ValueError, match="needs the keyboard's geometry"):
        pipe(notes=NOTES, reference=plain, highlight_keys=True, output_path=path)
    assert not path.exists()


def test_sounding_keys_is_the_rolls_sustain():
    rng = np.random.default_rng(1)
    notes = [
        {"pitch": int(p), "onset": float(t), "offset": float(t + d)}
        for p, t, d in zip(rng.integers(15, 115, 60), rng.uniform(-1, 5, 60), rng.uniform(0.0, 1, 60))
    ]
    for fps in (30.0, 25.0):
        np.testing.assert_array_equal(
            sounding_keys(notes, 120, fps), notes_to_roll(notes, 120, fps)[..., 1] > 0
        )


def key_mask(quads: np.ndarray, keys, size: int, grow: int = 1) -> np.ndarray:
    """(size, size) bool: the pixels of the keys' quads, grown by `grow` pixels."""
    image = PIL.Image.new("L", (size, size))
    draw = PIL.ImageDraw.Draw(image)
    for k in keys:
        draw.polygon([tuple(p) for p in quads[k] * size], fill=1, outline=1)
    m = np.asarray(image) > 0
    for _ in range(grow):
        m = m | np.roll(m, 1, 0) | np.roll(m, -1, 0) | np.roll(m, 1, 1) | np.roll(m, -1, 1)
    return m


@pytest.mark.parametrize("layout", ["overlay", "frames", "side-by-side"])
def test_highlight_changes_only_the_sounding_keys(layout):
    rng = np.random.default_rng(0)
    n, S = 60, 128  # 2 s at 30 fps; the notes end at 1.5 s
    frames = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    kp, vis = rng.uniform(0, 1, (n, 56, 2)), np.ones((n, 56))
    coarse = rng.uniform(0, 1, (n, 3, 16, 16)).astype(np.float32)
    on = sounding_keys(NOTES, n, 30.0)
    plain = compose_frames(frames, kp, vis, coarse, layout, S)
    lit = compose_frames(frames, kp, vis, coarse, layout, S, keyboard_quads=QUADS, sounding=on)
    assert lit.shape == plain.shape
    changed = np.abs(lit.astype(int) - plain.astype(int)).sum(-1) > 0  # (n, S, W)
    panels = [changed[:, :, i * S : (i + 1) * S] for i in range(plain.shape[2] // S)]
    for t in range(n):
        keys = np.flatnonzero(on[t])
        for panel in panels:
            if len(keys) == 0:
                assert not panel[t].any(), t
            else:
                assert panel[t][key_mask(QUADS, keys, S, grow=0)].mean() > 0.9, t  # the keys are lit ...
                assert not panel[t][~key_mask(QUADS, keys, S, grow=1)].any(), t  # ... nothing else changes
    assert not on[45:].any() and on[:45].any(axis=1).all()
    # The frames' keys: C4 and C3 at the start, G4 (with C3) at 1.0 s.
    assert set(np.flatnonzero(on[0]) + LOWEST_PITCH) == {48, 60}
    assert set(np.flatnonzero(on[31]) + LOWEST_PITCH) == {48, 67}


def test_highlight_keys_in_the_pipelines_video(pipe, tmp_path):
    kw = dict(notes=NOTES, video_layout="overlay", video_size=128, output_type=None, show_progress=False)
    pipe(**kw, output_path=tmp_path / "plain.mp4")
    pipe(**kw, output_path=tmp_path / "lit.mp4", highlight_keys=True)
    plain = read_video(tmp_path / "plain.mp4").astype(int)
    lit = read_video(tmp_path / "lit.mp4").astype(int)
    assert plain.shape == lit.shape == (75, 128, 128, 3)
    diff = np.abs(lit - plain).sum(-1)
    c4 = key_mask(QUADS, [60 - LOWEST_PITCH], 128, grow=0)
    assert diff[5][c4].mean() > 60  # C4 sounds at 0.17 s: lit
    assert diff[60][c4].mean() < 10  # nothing sounds at 2 s
    green = lit[5][c4].mean(0)
    assert green[1] > green[0] + 30 and green[1] > green[2] + 30


# ------------------------------------------------------------------------------------ the task, the CLI


def test_task_takes_a_midi_file(pipe_dir, mid, tmp_path):
    task = pipeline("audio-to-performance-video", model=str(pipe_dir))
    out = task(str(mid), output_path=tmp_path / "task.mp4", highlight_keys=True, video_layout="overlay")
    assert out["frames"].shape == (75, 32, 32, 3) and out["video"] == str(tmp_path / "task.mp4")
    assert [n["pitch"] for n in out["notes"]] == [48, 60, 64, 67]
    assert probe_video(tmp_path / "task.mp4")["frames"] == 75
    assert task(mid.read_bytes())["frames"].shape[0] == 75  # MIDI bytes too


def test_cli_generate_midi(pipe_dir, mid, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    args = ["--model", str(pipe_dir), "--overlay", "--highlight-keys"]
    assert cli(["generate", str(mid), "-o", str(out), *args]) == 0
    info = probe_video(out)
    assert info["frames"] == 75 and info["audio_codec"] == "aac"
    assert "wrote" in capsys.readouterr().out
    # --midi: a MIDI file whatever its name
    odd = tmp_path / "piece.bin"
    odd.write_bytes(mid.read_bytes())
    assert (
        cli(["generate", str(odd), "--midi", "-o", str(tmp_path / "odd.mp4"), "--model", str(pipe_dir), "-q"])
        == 0
    )
    assert probe_video(tmp_path / "odd.mp4")["frames"] == 75


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such MIDI file"), (b"not midi", "not a MIDI file"), (midi_without_notes(), "no notes")],
    ids=["missing", "corrupt", "no-notes"],
)
def test_cli_bad_midi(pipe_dir, tmp_path, capsys, content, message):
    mid = tmp_path / "bad.mid"
    if content is not None:
        mid.write_bytes(content)
    assert cli(["generate", str(mid), "-o", str(tmp_path / "x.mp4"), "--model", str(pipe_dir), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("apvg: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()
