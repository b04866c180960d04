"""Corpus catalogue, score -> note list conversion, note cache and performance augmentation."""

import json

import numpy as np
import pytest

from apvg_hf.data import music
from apvg_hf.data.music import (
    KEYBOARD_PIECES,
    augment_notes,
    fold_pitch,
    get_piece,
    list_pieces,
    load_piece_notes,
    sample_augmentation,
)
from apvg_hf.data.notes import LEFT, PLAY_HIGH, PLAY_LOW, RIGHT, Note, notes_duration

CHORALE = "bach/bwv269"


@pytest.fixture(scope="module", autouse=True)
def note_cache(tmp_path_factory):
    """One fresh note cache for the module: every piece is parsed once, here, never read from ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("cache")
        mp.setenv("APVG_HF_CACHE", str(root))
        yield root / "notes"


def assert_sane(notes: list[Note], both_hands: bool = True) -> None:
    assert notes, "no notes"
    keys = [(n.onset, n.pitch) for n in notes]
    assert keys == sorted(keys), "not sorted by (onset, pitch)"
    assert notes[0].onset == 0.0
    assert all(n.offset > n.onset for n in notes)
    assert all(PLAY_LOW <= n.pitch <= PLAY_HIGH for n in notes)
    assert all(1 <= n.velocity <= 127 for n in notes)
    assert {n.hand for n in notes} <= {LEFT, RIGHT}
    if both_hands:
        assert {n.hand for n in notes} == {LEFT, RIGHT}
    last_offset: dict[int, float] = {}
    for n in notes:  # one key never sounds twice at once
        assert n.onset >= last_offset.get(n.pitch, -1.0) - 1e-9, n
        last_offset[n.pitch] = n.offset


def test_catalogue_is_deterministic_and_covers_the_kinds():
    pieces = list_pieces(kinds=music.KINDS)
    assert pieces == list_pieces(kinds=music.KINDS)
    ids = [p.piece_id for p in pieces]
    assert len(ids) == len(set(ids))
    kinds = {k: [p for p in pieces if p.kind == k] for k in music.KINDS}
    assert [p.piece_id for p in kinds["keyboard"]] == list(KEYBOARD_PIECES)
    assert len(kinds["chorale"]) > 300 and len(kinds["reduction"]) > 20
    assert CHORALE in ids and get_piece(CHORALE).kind == "chorale"
    assert all("public domain" in p.licence and "music21 corpus" in p.licence for p in pieces)
    default = list_pieces()
    assert {p.kind for p in default} == {"keyboard", "chorale"}
    assert list_pieces(limit=3) == default[:3]
    with pytest.raises(ValueError):
        list_pieces(kinds=("opera",))
    with pytest.raises(KeyError):
        get_piece("nobody/nothing")


@pytest.mark.parametrize("piece_id", KEYBOARD_PIECES)
def test_keyboard_pieces_load(piece_id):
    notes = load_piece_notes(piece_id)
    assert_sane(notes)
    assert len(notes) >= 40 and notes_duration(notes) >= 20.0
    right = np.mean([n.pitch for n in notes if n.hand == RIGHT])
    left = np.mean([n.pitch for n in notes if n.hand == LEFT])
    assert right > left, "upper staff should be the right hand"


def test_chorale_soprano_alto_right_tenor_bass_left():
    from music21 import corpus

    notes = load_piece_notes(CHORALE)
    assert_sane(notes)
    # The first chord, straight from music21: soprano + alto -> right hand, tenor + bass -> left hand.
    score = corpus.parse(get_piece(CHORALE).corpus_path)
    voices = [
        {fold_pitch(n.pitch.midi) for n in p.flatten().notes.getElementsByOffset(0.0)} for p in score.parts
    ]
    first = [n for n in notes if n.onset == 0.0]
    assert {n.pitch for n in first if n.hand == RIGHT} == voices[0] | voices[1]
    assert {n.pitch for n in first if n.hand == LEFT} == voices[2] | voices[3]
    # Four-voice chords: the two highest notes are the right hand's, the two lowest the left's.
    by_onset: dict[float, list[Note]] = {}
    for n in notes:
        by_onset.setdefault(n.onset, []).append(n)
    chords = [sorted(c, key=lambda n: n.pitch) for c in by_onset.values() if len(c) == 4]
    assert len(chords) > 10
    ok = [[n.hand for n in c] == [LEFT, LEFT, RIGHT, RIGHT] for c in chords]
    assert np.mean(ok) > 0.95


def tiny_score():
    """Two piano staves: a tie, a grace note, a chord, a unison across staves, out-of-range pitches,
    p then f, and the tempo doubling from 60 to 120 qpm at beat 3."""
    from music21 import chord, dynamics, note, stream, tempo, tie

    rh, lh = stream.PartStaff(), stream.PartStaff()
    rh.insert(0, tempo.MetronomeMark(number=60))
    rh.insert(0, dynamics.Dynamic("p"))
    for offset, kind in ((0, "start"), (1, "stop")):
        tied = note.Note("C5", quarterLength=1)
        tied.tie = tie.Tie(kind)
        rh.insert(offset, tied)
    rh.insert(2, note.Note("D5").getGrace())
    rh.insert(2, chord.Chord(["E5", "G5"], quarterLength=1))
    rh.insert(3, tempo.MetronomeMark(number=120))
    rh.insert(3, dynamics.Dynamic("f"))
    rh.insert(3, note.Note("C8", quarterLength=2))
    lh.insert(0, note.Note("C1", quarterLength=4))
    lh.insert(2, note.Note("E5", quarterLength=1))
    score = stream.Score()
    score.insert(0, rh)
    score.insert(0, lh)
    return score


def test_score_to_notes():
    notes = music.score_to_notes(tiny_score())
    assert [(n.pitch, n.onset, n.offset) for n in notes] == [
        (36, 0.0, 3.5),  # C1 folded up; 3 beats at 60 qpm + 1 at 120
        (72, 0.0, 2.0),  # tied C5: one note
        (76, 2.0, 3.0),  # E5 in both staves: one key, struck once
        (79, 2.0, 3.0),  # the grace note before the chord is gone
        (96, 3.0, 4.0),  # C8 folded down; 2 beats at 120 qpm
    ]
    assert [n.hand for n in notes if n.pitch != 76] == [LEFT, RIGHT, RIGHT, RIGHT]
    assert [n.velocity for n in notes] == [55, 55, 55, 55, 90]  # p, f
    slow = music.score_to_notes(tiny_score(), qpm=30.0)
    assert notes_duration(slow) == 10.0
    # Real ties: in the C major prelude the left hand's E4 is held through the half bar.
    held = [n for n in load_piece_notes("bach/bwv846", max_seconds=1.0) if n.pitch == 64 and n.hand == LEFT]
    assert [(n.onset, n.offset) for n in held] == [(0.208333, 1.0)]  # clipped at max_seconds


def test_max_seconds_truncates():
    full = load_piece_notes("bach/bwv846")
    cut = load_piece_notes("bach/bwv846", max_seconds=5.0)
    assert cut and all(n.onset < 5.0 and n.offset <= 5.0 for n in cut)
    assert len(cut) == sum(n.onset < 5.0 for n in full)


def test_cache_hit_returns_identical_notes(note_cache, monkeypatch):
    first = load_piece_notes("mozart/k545/movement1_exposition")
    files = list(note_cache.glob("mozart__k545__movement1_exposition.v*.json"))
    assert (
        len(files) == 1 and json.loads(files[0].read_text())["piece_id"] == "mozart/k545/movement1_exposition"
    )
    assert not list(note_cache.glob("*.tmp"))

    def no_parsing(piece):
        raise AssertionError("parsed although cached")

    monkeypatch.setattr(music, "_parse_piece", no_parsing)
    assert load_piece_notes("mozart/k545/movement1_exposition") == first
    files[0].write_text("{not json")  # a damaged cache file is re-parsed, not trusted
    monkeypatch.undo()
    assert load_piece_notes("mozart/k545/movement1_exposition") == first


def test_overlapping_duplicates_merge():
    notes = [Note(60, 0.0, 1.0, 70, RIGHT), Note(60, 0.0, 0.5, 90, LEFT), Note(60, 0.5, 1.5, 80, RIGHT)]
    out = music._resolve_overlaps(notes)
    assert [(n.pitch, n.onset, n.offset, n.velocity) for n in out] == [(60, 0.0, 0.5, 90), (60, 0.5, 1.5, 80)]


@pytest.fixture(scope="module")
def chorale():
    return load_piece_notes(CHORALE, max_seconds=20.0)


def test_augment_tempo_scales_time(chorale):
    out = augment_notes(chorale, tempo=1.25, rng=np.random.default_rng(0))
    assert notes_duration(out) == pytest.approx(notes_duration(chorale) / 1.25, abs=1e-5)
    assert [n.onset for n in out] == pytest.approx([n.onset / 1.25 for n in chorale], abs=1e-5)
    assert [n.pitch for n in out] == [n.pitch for n in chorale]
    slow = augment_notes(chorale, tempo=0.8, rng=np.random.default_rng(0))
    assert notes_duration(slow) == pytest.approx(notes_duration(chorale) / 0.8, abs=1e-5)


def test_augment_transposes_within_range(chorale):
    out = augment_notes(chorale, transpose=3, rng=np.random.default_rng(0))
    assert sorted(n.pitch for n in out) == sorted(n.pitch + 3 for n in chorale)
    edge = [Note(PLAY_HIGH - 1, 0.0, 0.5), Note(PLAY_LOW + 1, 0.5, 1.0)]
    assert [n.pitch for n in augment_notes(edge, transpose=4, rng=np.random.default_rng(0))] == [
        PLAY_HIGH - 9,
        41,
    ]
    assert [n.pitch for n in augment_notes(edge, transpose=-4, rng=np.random.default_rng(0))] == [
        91,
        PLAY_LOW + 9,
    ]


def test_augment_jitter_is_seeded(chorale):
    kw = {"timing_jitter_s": 0.01, "velocity_jitter": 8}
    a = augment_notes(chorale, rng=np.random.default_rng(1), **kw)
    b = augment_notes(chorale, rng=np.random.default_rng(1), **kw)
    c = augment_notes(chorale, rng=np.random.default_rng(2), **kw)
    assert a == b and a != c
    assert len(a) == len(chorale)
    assert_sane([n.replace(onset=n.onset - a[0].onset, offset=n.offset - a[0].onset) for n in a])
    assert all(n.duration >= 0.03 - 1e-6 for n in a)
    shift, dv = [], []
    for pitch in {n.pitch for n in chorale}:  # same-pitch notes keep their order
        x = [n for n in a if n.pitch == pitch]
        y = [n for n in chorale if n.pitch == pitch]
        shift += [u.onset - v.onset for u, v in zip(x, y)]
        dv += [u.velocity - v.velocity for u, v in zip(x, y)]
    assert 0.004 < np.std(shift) < 0.02 and np.max(np.abs(shift)) < 0.06
    assert 4 < np.std(dv) < 12


def test_sample_augmentation_ranges():
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(rng) for _ in range(200)]
    assert all(0.75 <= d["tempo"] <= 1.3 and -4 <= d["transpose"] <= 4 for d in draws)
    assert all(0 < d["timing_jitter_s"] <= 0.02 and 0 < d["velocity_jitter"] <= 16 for d in draws)
    assert {d["transpose"] for d in draws} == set(range(-4, 5))
    assert sample_augmentation(np.random.default_rng(5)) == sample_augmentation(np.random.default_rng(5))


def test_stale_cache_entry_is_reparsed():
    """A cached note list parsed from something else (another music21, a changed catalogue entry)
    is not served."""
    import json

    from apvg_hf.data.music import _cache_path

    fresh = load_piece_notes("schoenberg/opus19/movement6")
    path = _cache_path("schoenberg/opus19/movement6")
    payload = json.loads(path.read_text())
    payload["source"] = "something else"
    payload["notes"] = [[60, 0.0, 1.0, 80, "right"]]
    path.write_text(json.dumps(payload))
    assert load_piece_notes("schoenberg/opus19/movement6") == fresh
