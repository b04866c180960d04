"""Piano rendering, audio I/O and the "ear proxy" that checks notes against audio."""

import io

import numpy as np
import pytest
import soundfile as sf

from apvg_hf.data.audio import (
    check_notes_in_audio,
    detect_onsets,
    find_soundfont,
    load_audio,
    notes_to_midi,
    render_notes,
    save_audio,
)
from apvg_hf.data.notes import Note

SR = 16000
PEAK = 10 ** (-1 / 20)


def scale_and_chords() -> list[Note]:
    """A C-major scale, then four chords (3-5 notes, both hands)."""
    notes = [
        Note(p, 0.3 + 0.4 * i, 0.65 + 0.4 * i, 80) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])
    ]
    t = 3.5
    for chord in ([48, 60, 64, 67], [53, 65, 69, 72], [43, 59, 62, 67, 71], [36, 55, 64, 72]):
        notes += [Note(p, t, t + 0.8, 85) for p in chord]
        t += 1.0
    return notes


@pytest.fixture(scope="module")
def rendered():
    notes = scale_and_chords()
    return notes, render_notes(notes, sampling_rate=SR, duration=8.0)


@pytest.mark.parametrize("sr", [16000, 24000])
def test_render_length_type_level(sr):
    audio = render_notes(scale_and_chords(), sampling_rate=sr, duration=8.0)
    assert audio.shape == (8 * sr,) and audio.dtype == np.float32
    assert np.max(np.abs(audio)) == pytest.approx(PEAK, abs=1e-4)
    assert np.sqrt(np.mean(audio**2)) > 0.01
    assert np.abs(audio[: int(0.25 * sr)]).max() < 1e-3, "sound before the first note"
    cut = render_notes(scale_and_chords(), sampling_rate=sr, duration=2.5)
    assert cut.shape == (round(2.5 * sr),)


def test_render_without_duration_keeps_the_release():
    notes = [Note(60, 0.0, 0.5), Note(64, 0.5, 1.0)]
    audio = render_notes(notes, sampling_rate=SR)
    assert len(audio) >= 1.5 * SR
    assert np.abs(audio[int(1.05 * SR) : int(1.15 * SR)]).max() > 1e-3, "release cut off at the note-off"


def test_render_silence_and_soundfont():
    assert render_notes([], duration=1.5).shape == (24000,)
    assert not render_notes([], duration=1.5).any()
    assert render_notes([]).shape == (0,)
    assert find_soundfont().is_file() and find_soundfont().suffix == ".sf2"
    with pytest.raises(FileNotFoundError, match="nope.sf2"):
        find_soundfont("/nowhere/nope.sf2")


def test_soundfont_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("APVG_HF_SOUNDFONT", str(tmp_path / "missing.sf2"))
    with pytest.raises(FileNotFoundError, match="APVG_HF_SOUNDFONT"):
        find_soundfont()
    monkeypatch.delenv("APVG_HF_SOUNDFONT")
    assert find_soundfont().is_file()


def test_midi_times_are_exact():
    import pretty_midi

    notes = [Note(60 + i, 0.1234 * i + 0.0007, 0.1234 * i + 0.2, 30 + i) for i in range(20)]
    midi = pretty_midi.PrettyMIDI(io.BytesIO(notes_to_midi(notes, end_time=5.0)))
    back = sorted(midi.instruments[0].notes, key=lambda n: n.start)
    assert len(back) == 20 and midi.instruments[0].program == 0
    assert max(abs(b.start - n.onset) for b, n in zip(back, notes)) < 1e-3
    assert max(abs(b.end - n.offset) for b, n in zip(back, notes)) < 1e-3
    assert [b.velocity for b in back] == [n.velocity for n in notes]


def test_audio_is_not_time_shifted():
    """Isolated notes: the detected onsets sit on the note onsets (no renderer latency to compensate)."""
    notes = [Note(p, 0.5 + 0.6 * i, 0.9 + 0.6 * i, 90) for i, p in enumerate([40, 52, 60, 67, 76, 88])]
    audio = render_notes(notes, sampling_rate=SR, duration=4.5)
    detected = detect_onsets(audio, SR)
    assert len(detected) == len(notes)
    assert np.max(np.abs(detected - [n.onset for n in notes])) <= 0.012


def test_ear_proxy_accepts_the_rendered_notes(rendered):
    notes, audio = rendered
    scores = check_notes_in_audio(audio, SR, notes)
    assert scores["n_notes"] == len(notes) and scores["n_onsets"] == 12
    assert scores["onset_f1"] >= 0.9 and scores["pitch_confirmed"] >= 0.9, scores


def test_ear_proxy_rejects_shifted_notes(rendered):
    notes, audio = rendered
    for dt in (0.3, -0.3):
        shifted = [n.replace(onset=n.onset + dt, offset=n.offset + dt) for n in notes]
        scores = check_notes_in_audio(audio, SR, shifted)
        assert scores["onset_f1"] < 0.3, (dt, scores)


def test_ear_proxy_rejects_transposed_notes(rendered):
    notes, audio = rendered
    for semitones in (6, -6, 1):
        scores = check_notes_in_audio(audio, SR, [n.replace(pitch=n.pitch + semitones) for n in notes])
        assert scores["onset_f1"] >= 0.9  # the times are still right ...
        assert scores["pitch_confirmed"] < 0.3, (semitones, scores)  # ... the pitches are not


def test_ear_proxy_on_a_corpus_excerpt(monkeypatch, tmp_path):
    from apvg_hf.data.music import load_piece_notes

    monkeypatch.setenv("APVG_HF_CACHE", str(tmp_path))

    notes = load_piece_notes("bach/bwv846", max_seconds=10.0)
    audio = render_notes(notes, sampling_rate=SR, duration=10.0)
    scores = check_notes_in_audio(audio, SR, notes)
    assert scores["onset_f1"] >= 0.9 and scores["pitch_confirmed"] >= 0.9, scores
    late = check_notes_in_audio(
        audio, SR, [n.replace(onset=n.onset + 0.3, offset=n.offset + 0.3) for n in notes]
    )
    assert late["onset_f1"] < 0.3, late
    tritone = check_notes_in_audio(audio, SR, [n.replace(pitch=n.pitch + 6) for n in notes])
    assert tritone["pitch_confirmed"] < 0.3, tritone


def test_save_load_round_trip(tmp_path, rendered):
    _, audio = rendered
    path = save_audio(tmp_path / "a" / "x.wav", audio, SR)
    back, sr = load_audio(path)
    assert sr == SR and back.dtype == np.float32 and back.shape == audio.shape
    assert np.max(np.abs(back - audio)) < 1e-3  # 16-bit PCM
    down, sr = load_audio(path, target_sr=8000)
    assert sr == 8000 and abs(len(down) - len(audio) // 2) <= 1
    stereo, _ = load_audio(save_audio(tmp_path / "s.flac", np.stack([audio, audio], 1), SR), mono=False)
    assert stereo.shape == (len(audio), 2)


def test_audio_io_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        save_audio(tmp_path / "e.wav", np.zeros(0), SR)
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "n.wav", np.array([0.0, np.nan, 0.1]), SR)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="zero.wav"):
        load_audio(tmp_path / "zero.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file" * 10)
    with pytest.raises(ValueError, match="junk.wav.*not an audio file"):
        load_audio(tmp_path / "junk.wav")
    sf.write(tmp_path / "nosamples.wav", np.zeros((0, 1)), SR)
    with pytest.raises(ValueError, match="nosamples.wav.*no samples"):
        load_audio(tmp_path / "nosamples.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.5], dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(ValueError, match="nan.wav.*NaN"):
        load_audio(tmp_path / "nan.wav")
