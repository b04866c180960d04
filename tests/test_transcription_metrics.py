"""Note-transcription metrics (mir_eval) and the basic-pitch baseline."""

from pathlib import Path

import numpy as np
import pytest

from apvg_hf.evaluation.transcription import aggregate, basic_pitch_transcribe, note_metrics

ROOT = Path(__file__).parents[1]


def note(pitch, onset, offset, velocity=80):
    return {"pitch": pitch, "onset": onset, "offset": offset, "velocity": velocity}


REFERENCE = [
    note(60, 0.0, 0.5, 40),
    note(62, 0.5, 1.0, 60),
    note(64, 1.0, 1.5, 80),
    note(65, 1.5, 2.0, 100),
    note(67, 2.0, 2.5, 120),
]
ESTIMATED = [
    note(60, 0.01, 0.52, 40),  # right (onset and offset)
    # 62 missed
    note(63, 1.0, 1.5, 80),  # wrong pitch
    note(65, 1.56, 2.0, 100),  # 60 ms late: outside the 50 ms onset tolerance
    note(67, 2.02, 3.5, 120),  # onset right, offset 1 s late (tolerance: max(0.2 x 0.5 s, 50 ms))
]


def test_note_metrics_known_answer():
    m = note_metrics(REFERENCE, ESTIMATED)
    onset = m["onset"]
    assert (onset["matched"], onset["reference"], onset["estimated"]) == (2, 5, 4)
    assert onset["precision"] == pytest.approx(0.5) and onset["recall"] == pytest.approx(0.4)
    assert onset["f1"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    both = m["onset_offset"]
    assert both["matched"] == 1
    assert (both["precision"], both["recall"]) == pytest.approx((0.25, 0.2))
    assert both["f1"] == pytest.approx(2 * 0.25 * 0.2 / 0.45)
    # Velocities agree up to mir_eval's linear rescaling: the same matches as onsets alone.
    assert m["onset_velocity"]["matched"] == 2


def test_note_metrics_velocity_must_follow_the_reference():
    flat = [dict(n, velocity=64) for n in REFERENCE]  # one velocity for everything
    ref = [dict(n, velocity=v) for n, v in zip(REFERENCE, [20, 120, 20, 120, 20])]
    m = note_metrics(ref, flat)
    assert m["onset"]["f1"] == 1.0 and m["onset_velocity"]["f1"] == 0.0
    no_velocity = [{k: v for k, v in n.items() if k != "velocity"} for n in REFERENCE]
    assert note_metrics(REFERENCE, no_velocity)["onset_velocity"] is None


def test_note_metrics_empty_and_pre_clip_notes():
    both_empty = note_metrics([], [])
    assert all(both_empty[k]["f1"] == 1.0 for k in ("onset", "onset_offset", "onset_velocity"))
    no_estimate = note_metrics(REFERENCE, [])
    assert no_estimate["onset"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "matched": 0, "reference": 5, "estimated": 0
    }  # fmt: skip
    assert note_metrics([], ESTIMATED)["onset"]["f1"] == 0.0
    # A note that began before the clip (negative onset) is left out on both sides.
    m = note_metrics([note(59, -0.3, 0.2), *REFERENCE], [note(59, -0.28, 0.2), *REFERENCE])
    assert m["onset"]["reference"] == 5 and m["onset"]["f1"] == 1.0


def test_aggregate_is_a_micro_average_over_notes():
    clips = [note_metrics(REFERENCE, ESTIMATED), note_metrics([note(60, 0, 1)], [note(60, 0.01, 1)])]
    total = aggregate(clips)
    assert total["clips"] == 2
    assert (total["onset"]["matched"], total["onset"]["reference"], total["onset"]["estimated"]) == (3, 6, 5)
    assert (total["onset"]["precision"], total["onset"]["recall"]) == pytest.approx((0.6, 0.5))
    assert total["onset"]["f1"] == pytest.approx(2 * 0.6 * 0.5 / 1.1)  # not the mean of per-clip F1s (0.72)
    assert total["onset_offset"]["matched"] == 2
    assert aggregate([])["onset"]["f1"] == 1.0


def test_recall_by_octave_counts_where_notes_are_missed():
    ref = [note(60, 0.0, 0.5), note(62, 0.5, 1.0), note(86, 1.0, 1.5), note(59, -0.2, 0.3)]
    est = [note(60, 0.01, 0.5), note(62, 0.52, 1.0), note(74, 1.0, 1.5)]  # C6 heard an octave low
    m = note_metrics(ref, est)["recall_by_octave"]
    assert m == {
        "4": {"matched": 2, "reference": 2},
        "6": {"matched": 0, "reference": 1},
    }  # 59: before the clip
    total = aggregate([note_metrics(ref, est), note_metrics([note(86, 0, 1)], [note(86, 0, 1)])])
    assert total["recall_by_octave"]["6"] == {"matched": 1, "reference": 2, "recall": 0.5}
    assert list(total["recall_by_octave"]) == ["4", "6"]
    assert note_metrics(ref, [])["recall_by_octave"]["6"] == {"matched": 0, "reference": 1}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_basic_pitch_transcribes_rendered_piano(tmp_path):
    """Creates .venv-basic-pitch on first use (pip, ~40 s), then transcribes in one subprocess."""
    import soundfile as sf

    from apvg_hf.data.audio import render_notes
    from apvg_hf.data.notes import Note

    rng = np.random.default_rng(0)
    notes, t = [], 0.2
    for _ in range(16):
        pitch = int(rng.integers(48, 84))
        chord = [pitch] + ([pitch - 4] if rng.random() < 0.3 else [])
        notes += [Note(p, t, t + 0.35, int(rng.integers(60, 110))) for p in chord]
        t += float(rng.uniform(0.2, 0.4))
    paths = []
    for i, sr in enumerate((16000, 44100)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, render_notes(notes, sampling_rate=sr), sr)
        paths.append(path)
    estimated = basic_pitch_transcribe(paths, env=ROOT / ".venv-basic-pitch", timeout=600)
    assert len(estimated) == 2
    reference = [n.to_dict() for n in notes]
    for est in estimated:
        assert all(set(n) == {"pitch", "onset", "offset", "velocity"} for n in est)
        assert note_metrics(reference, est)["onset"]["f1"] > 0.5
