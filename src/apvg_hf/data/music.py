"""Real music for the virtual pianist: a catalogue of keyboard-playable pieces from the offline music21
corpus, their note lists (seconds, velocities, hand hints) and performance augmentation.

Everything here is offline: music21 ships its corpus and metadata. Parsing costs up to a few seconds per
piece, so parsed note lists are cached on disk (see `cache_dir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from apvg_hf.data.notes import LEFT, PLAY_HIGH, PLAY_LOW, RIGHT, Note, sort_notes

KINDS = ("keyboard", "chorale", "reduction")
DEFAULT_QPM = {"keyboard": 100.0, "chorale": 80.0, "reduction": 100.0}
DEFAULT_VELOCITY = 72
MIN_DURATION_S = 0.03
# Bump when the score -> note-list conversion changes: old cache files are then ignored.
CACHE_VERSION = 2

# corpus folder -> (composer, year of death); all died more than 70 years ago.
_COMPOSERS = {
    "bach": ("Johann Sebastian Bach", 1750),
    "beach": ("Amy Beach", 1944),
    "beethoven": ("Ludwig van Beethoven", 1827),
    "chopin": ("Frédéric Chopin", 1849),
    "corelli": ("Arcangelo Corelli", 1713),
    "cpebach": ("Carl Philipp Emanuel Bach", 1788),
    "handel": ("George Frideric Handel", 1759),
    "haydn": ("Joseph Haydn", 1809),
    "joplin": ("Scott Joplin", 1917),
    "liliuokalani": ("Liliʻuokalani", 1917),
    "mozart": ("Wolfgang Amadeus Mozart", 1791),
    "schoenberg": ("Arnold Schoenberg", 1951),
    "schubert": ("Franz Schubert", 1828),
    "schumann_clara": ("Clara Schumann", 1896),
    "schumann_robert": ("Robert Schumann", 1856),
    "weber": ("Carl Maria von Weber", 1826),
}

# Solo keyboard works and the piano parts of songs/chamber works (the piano is always the last two staves):
# corpus path -> (title, tempo override in quarter notes per minute or None to use the score's marks).
# Overrides replace placeholder "playback" tempi (120) or fill in text-only tempi ("Langsam", "Largo").
_KEYBOARD = {
    "bach/bwv846.mxl": ("Prelude in C major, BWV 846 (WTC I)", None),
    "chopin/mazurka06-2.krn": ("Mazurka in C-sharp minor, Op. 6 No. 2", None),
    "cpebach/h186.mxl": ("Sonata in A major, H. 186, II. Poco adagio", 60.0),
    "joplin/maple_leaf_rag.mxl": ("Maple Leaf Rag", None),
    "mozart/k545/movement1_exposition.mxl": ("Sonata in C major, K. 545, I. Allegro (exposition)", None),
    "schoenberg/opus19/movement2.mxl": ("Six Little Piano Pieces, Op. 19 No. 2", 50.0),
    "schoenberg/opus19/movement6.mxl": ("Six Little Piano Pieces, Op. 19 No. 6", 40.0),
    "schumann_clara/polonaise_op1n1.mxl": ("Polonaise, Op. 1 No. 1", None),
    "schumann_clara/polonaise_op1n2.mxl": ("Polonaise, Op. 1 No. 2", None),
    "schumann_clara/polonaise_op1n3.mxl": ("Polonaise, Op. 1 No. 3", None),
    "schumann_clara/polonaise_op1n4.mxl": ("Polonaise, Op. 1 No. 4", None),
    "beach/prayer_of_a_tired_child.musicxml": ("Prayer of a Tired Child, Op. 75 No. 4 (piano part)", 72.0),
    "handel/rinaldo/Lascia_chio_pianga.mxl": ("Lascia ch'io pianga, from Rinaldo (piano part)", 60.0),
    "liliuokalani/aloha_oe.mxl": ("Aloha ʻOe (piano part)", None),
    "schubert/Lindenbaum.xml": ("Der Lindenbaum, D. 911 No. 5 (piano part)", 84.0),
    "schumann_clara/opus17/movement3.xml": ("Piano Trio, Op. 17, III. Andante (piano part)", None),
    "schumann_robert/dichterliebe_no2.xml": ("Dichterliebe, Op. 48 No. 2 (piano part)", None),
    "weber/concertino_clarinet.mxl": ("Clarinet Concertino, Op. 26 (piano part)", None),
}
# String quartets (and a trio sonata), one movement per file; whole-quartet files take minutes to parse.
_REDUCTION_FOLDERS = ("beethoven", "haydn", "mozart", "schumann_robert/opus41", "corelli")
_MAX_REDUCTION_QUARTERS = 1800
_SUFFIX = re.compile(r"\.(mxl|xml|musicxml|krn)$")


def _piece_id(corpus_path: str) -> str:
    return _SUFFIX.sub("", corpus_path)


KEYBOARD_PIECES: tuple[str, ...] = tuple(_piece_id(p) for p in _KEYBOARD)


@dataclass(frozen=True)
class PieceInfo:
    """One catalogued piece. `piece_id` is the music21 corpus path without extension (stable across runs).

    >>> PieceInfo("bach/bwv846", "Prelude", "J. S. Bach", "public domain", "keyboard", "bach/bwv846.mxl").kind
    'keyboard'
    """

    piece_id: str
    title: str
    composer: str
    licence: str
    kind: str
    corpus_path: str


def _licence(corpus_path: str, copyright_note: str | None) -> str:
    name, died = _COMPOSERS.get(corpus_path.split("/")[0], ("unknown", None))
    text = (
        f"composition public domain ({name}, d. {died}, over 70 years ago)"
        if died is not None
        else "composition copyright status unknown"
    )
    text += "; encoding from the music21 corpus"
    if copyright_note and copyright_note.strip(" ©\n"):
        text += f" (score metadata: {' '.join(copyright_note.split())})"
    return text


@lru_cache(maxsize=1)
def _catalogue() -> tuple[PieceInfo, ...]:
    from music21 import corpus
    from music21.corpus import chorales

    bwv_titles = {str(v["bwv"]): v["title"] for v in chorales.ChoraleList().byBWV.values()}
    entries = {}
    bundle = corpus.corpora.CoreCorpus().metadataBundle
    # MetadataBundle.__getitem__ copies its entries on every call (iterating it takes ~12 s): read the dict.
    raw = getattr(bundle, "_metadataEntries", None)
    for entry in raw.values() if raw is not None else bundle:
        if entry.metadata is not None:
            entries[str(entry.sourcePath)] = entry.metadata
    pieces: list[PieceInfo] = []
    for path, (title, _) in _KEYBOARD.items():
        md = entries.get(path)
        name = _COMPOSERS[path.split("/")[0]][0]
        pieces.append(
            PieceInfo(_piece_id(path), title, name, _licence(path, md and md.copyright), "keyboard", path)
        )
    seen: set[str] = set()
    for path in sorted(entries, key=_natural_key):
        md, pid = entries[path], _piece_id(path)
        if pid in seen or pid in KEYBOARD_PIECES or not _SUFFIX.search(path):
            continue
        if path.startswith("bach/bwv") and md.numberOfParts == 4:
            bwv = pid.removeprefix("bach/bwv")
            hymn = bwv_titles.get(bwv)
            title = f"Chorale BWV {bwv}" + (f": {hymn}" if hymn else "")
            kind = "chorale"
        elif (
            path.startswith(_REDUCTION_FOLDERS)
            and md.numberOfParts in (3, 4)
            and (md.scoreQuarterLength or 0) <= _MAX_REDUCTION_QUARTERS
            and not path.endswith(".krn")  # the same movements exist as MusicXML
        ):
            movement = md.movementName
            title = f"{movement if movement and not _SUFFIX.search(movement) else pid} (reduction)"
            kind = "reduction"
        else:
            continue
        seen.add(pid)
        name = _COMPOSERS[path.split("/")[0]][0]
        pieces.append(PieceInfo(pid, title, name, _licence(path, md.copyright), kind, path))
    return tuple(pieces)


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def list_pieces(
    kinds: Sequence[str] | str = ("keyboard", "chorale"), limit: int | None = None
) -> list[PieceInfo]:
    """Catalogued pieces of the given kinds, in a fixed order (keyboard first, then by corpus path).

    >>> [p.piece_id for p in list_pieces(kinds=("keyboard",), limit=1)]
    ['bach/bwv846']
    """
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; expected some of {KINDS}")
    pieces = [p for p in _catalogue() if p.kind in kinds]
    return pieces[:limit] if limit is not None else pieces


def get_piece(piece_id: str) -> PieceInfo:
    """The catalogue entry for `piece_id` (KeyError if not catalogued)."""
    for piece in _catalogue():
        if piece.piece_id == piece_id:
            return piece
    raise KeyError(f"{piece_id!r} is not in the catalogue (see list_pieces(kinds={KINDS}))")


# ----------------------------------------------------------------------------------------------- parsing


def fold_pitch(pitch: int) -> int:
    """Move `pitch` by octaves into PLAY_LOW..PLAY_HIGH.

    >>> fold_pitch(24), fold_pitch(60), fold_pitch(100)
    (36, 60, 88)
    """
    while pitch < PLAY_LOW:
        pitch += 12
    while pitch > PLAY_HIGH:
        pitch -= 12
    return pitch


def _tempo_map(score, default_qpm: float) -> tuple[np.ndarray, np.ndarray]:
    """(start offsets in quarters, qpm) of constant-tempo segments. Printed marks win over playback-only ones
    at the same offset; before the first mark the kind's default tempo applies (music21 would assume 120)."""
    from music21 import tempo

    at: dict[float, tuple[bool, float]] = {}
    for mark in score.flatten().getElementsByClass(tempo.MetronomeMark):
        printed = mark.number is not None
        qpm = mark.getQuarterBPM(useNumberSounding=not printed)
        offset = float(mark.offset)
        if qpm and qpm > 0 and (offset not in at or printed or not at[offset][0]):
            at[offset] = (printed, float(qpm))
    starts, qpms = [0.0], [default_qpm]
    for offset in sorted(at):
        if offset <= 0.0:
            qpms[0] = at[offset][1]
        elif at[offset][1] != qpms[-1]:
            starts.append(offset)
            qpms.append(at[offset][1])
    return np.array(starts), np.array(qpms)


def _to_seconds(quarters: np.ndarray, starts: np.ndarray, qpms: np.ndarray) -> np.ndarray:
    seg_seconds = np.concatenate([[0.0], np.cumsum(np.diff(starts) * 60.0 / qpms[:-1])])
    i = np.searchsorted(starts, quarters, side="right") - 1
    return seg_seconds[i] + (quarters - starts[i]) * 60.0 / qpms[i]


def _hands(kind: str, n_parts: int) -> list[tuple[int, str]]:
    if kind == "keyboard":
        return [(n_parts - 2, RIGHT), (n_parts - 1, LEFT)]
    return [(i, RIGHT if i < 2 else LEFT) for i in range(n_parts)]


def _score_events(score, kind: str) -> list[list]:
    """[pitch, onset q, offset q, velocity, hand] per sounding note, ties merged, grace notes dropped."""
    from music21 import dynamics

    parts = list(score.parts)
    chosen = _hands(kind, len(parts))
    flats = {i: parts[i].flatten() for i, _ in chosen}
    marks = sorted(
        (float(d.offset), d.volumeScalar)
        for flat in flats.values()
        for d in flat.getElementsByClass(dynamics.Dynamic)
        if d.volumeScalar is not None
    )
    mark_offsets = np.array([m[0] for m in marks])
    events = []
    for i, hand in chosen:
        for element in flats[i].notes:
            if element.duration.isGrace or element.quarterLength <= 0:
                continue
            onset, offset = float(element.offset), float(element.offset + element.quarterLength)
            velocity = element.volume.velocity
            if velocity is None:
                k = int(np.searchsorted(mark_offsets, onset + 1e-6)) - 1
                velocity = round(20 + 100 * marks[k][1]) if k >= 0 else DEFAULT_VELOCITY
            # Mild phrasing: accent strong beats, soften weak ones (+-4; NaN without a time signature).
            strength = float(element.beatStrength)
            accent = round(8 * (strength - 0.5)) if np.isfinite(strength) else 0
            velocity = int(np.clip(velocity + accent, 1, 127))
            for n in element.notes if element.isChord else [element]:
                tie = n.tie.type if n.tie is not None else None
                events.append((i, int(n.pitch.midi), onset, offset, velocity, hand, tie))
    return _merge_ties(events)


def _merge_ties(events: list[tuple]) -> list[list]:
    """Join each tied note with the note it is tied to (same part and pitch, starting where it ends)."""
    merged: list[list] = []
    open_ties: dict[tuple[int, int], list] = {}
    for part, pitch, on, off, vel, hand, tie in sorted(events, key=lambda e: (e[0], e[1], e[2])):
        prev = open_ties.pop((part, pitch), None)
        if tie in ("stop", "continue") and prev is not None and abs(prev[2] - on) < 1e-6:
            prev[2] = off
            event = prev
        else:
            event = [pitch, on, off, vel, hand]
            merged.append(event)
        if tie in ("start", "continue"):
            open_ties[(part, pitch)] = event
    return merged


def _resolve_overlaps(notes: Iterable[Note]) -> list[Note]:
    """One key cannot sound twice: merge same-pitch notes starting together (<1 ms), and release a
    still-sounding note where the same pitch is struck again. Returns notes sorted by (onset, pitch)."""
    out: list[Note] = []
    last: dict[int, int] = {}
    for note in sorted(notes, key=lambda n: (n.onset, n.pitch, n.hand or "")):
        j = last.get(note.pitch)
        if j is not None and note.onset < out[j].offset:
            prev = out[j]
            if note.onset - prev.onset < 1e-3:
                out[j] = prev.replace(
                    offset=max(prev.offset, note.offset), velocity=max(prev.velocity, note.velocity)
                )
                continue
            out[j] = prev.replace(offset=note.onset)
        last[note.pitch] = len(out)
        out.append(note)
    return sort_notes(out)


def score_to_notes(score, kind: str = "keyboard", qpm: float | None = None) -> list[Note]:
    """Notes of a music21 score (see `load_piece_notes`), first onset at 0 s. `qpm` (quarter notes per minute)
    replaces the score's tempo marks; where the score has none, the kind's default tempo applies."""
    starts, qpms = _tempo_map(score, DEFAULT_QPM[kind]) if qpm is None else (np.array([0.0]), np.array([qpm]))
    events = _score_events(score, kind)
    if not events:
        return []
    quarters = np.array([[e[1], e[2]] for e in events])
    seconds = _to_seconds(quarters.ravel(), starts, qpms).reshape(-1, 2)
    seconds -= seconds[:, 0].min()
    notes = [
        Note(fold_pitch(e[0]), round(float(on), 6), round(float(off), 6), int(e[3]), e[4])
        for e, (on, off) in zip(events, seconds)
    ]
    return _resolve_overlaps(notes)


def _parse_piece(piece: PieceInfo) -> list[Note]:
    from music21 import corpus
    from music21.exceptions21 import Music21Exception

    with warnings.catch_warnings():  # encodings' quirks (overfull measures, ...) are music21's business
        warnings.filterwarnings("ignore", module=r"music21\.")
        score = corpus.parse(piece.corpus_path)
    with contextlib.suppress(Music21Exception):  # cheap (< 1 s); some encodings have malformed repeats
        score = score.expandRepeats()
    return score_to_notes(score, piece.kind, qpm=_KEYBOARD.get(piece.corpus_path, (None, None))[1])


# ------------------------------------------------------------------------------------------------ cache


def cache_dir() -> Path:
    """Where parsed note lists live: `$APVG_HF_CACHE/notes`, default `~/.cache/apvg_hf/notes`."""
    root = os.environ.get("APVG_HF_CACHE") or Path.home() / ".cache" / "apvg_hf"
    return Path(root) / "notes"


def _cache_path(piece_id: str) -> Path:
    return cache_dir() / f"{re.sub(r'[^A-Za-z0-9._-]+', '__', piece_id)}.v{CACHE_VERSION}.json"


def _source_key(piece: PieceInfo) -> str:
    """What a cached note list was parsed from: it is re-parsed when any of this changes."""
    import music21

    override = _KEYBOARD.get(piece.corpus_path, (None, None))[1]
    return f"{CACHE_VERSION}|music21 {music21.VERSION_STR}|{piece.corpus_path}|{piece.kind}|qpm {override}"


def _read_cache(path: Path, source: str) -> list[Note] | None:
    try:
        payload = json.loads(path.read_text())
        if payload.get("source") != source:
            return None  # parsed from another music21, catalogue entry or conversion version
        return [Note(int(p), float(on), float(off), int(v), h) for p, on, off, v, h in payload["notes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, piece_id: str, notes: list[Note], source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"piece_id": piece_id, "version": CACHE_VERSION, "source": source}
    payload["notes"] = [[n.pitch, n.onset, n.offset, n.velocity, n.hand] for n in notes]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, path)  # atomic: concurrent writers each replace the file with a complete copy
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_piece_notes(piece_id: str, max_seconds: float | None = None, use_cache: bool = True) -> list[Note]:
    """The notes of a catalogued piece, sorted by (onset, pitch), first onset at 0 s.

    Repeats are expanded where music21 can; tempo comes from the score's metronome marks (or a per-piece
    override, or 100 qpm for keyboard / 80 for chorales where none is given). Velocities follow explicit
    note velocities or dynamics marks, with a mild metric accent. `hand` is the staff/voice hint: upper piano
    staff -> right, lower -> left; chorale S+A -> right, T+B -> left; reductions: top two parts -> right.
    Ties are merged, grace notes dropped, pitches folded by octaves into PLAY_LOW..PLAY_HIGH, and one key
    never sounds twice at once. `max_seconds` drops notes starting at or after it and clips offsets.

    >>> notes = load_piece_notes("bach/bwv846", max_seconds=2.0)
    >>> notes[0].onset, notes[0].pitch, notes[0].hand
    (0.0, 60, 'left')
    """
    piece = get_piece(piece_id)
    path, source = _cache_path(piece_id), _source_key(piece)
    notes = _read_cache(path, source) if use_cache else None
    if notes is None:
        notes = _parse_piece(piece)
        if use_cache:
            _write_cache(path, piece_id, notes, source)
    if max_seconds is not None:
        notes = [n.replace(offset=min(n.offset, max_seconds)) for n in notes if n.onset < max_seconds]
    return notes


# ----------------------------------------------------------------------------------------- augmentation


def augment_notes(
    notes: Sequence[Note],
    *,
    tempo: float = 1.0,
    transpose: int = 0,
    timing_jitter_s: float = 0.0,
    velocity_jitter: float = 0.0,
    rng: np.random.Generator,
) -> list[Note]:
    """A varied performance of `notes`: time scaled by 1/`tempo` (1.3 = faster), transposed by `transpose`
    semitones (notes leaving PLAY_LOW..PLAY_HIGH fold back by octaves), onsets humanised with Gaussian jitter
    of std `timing_jitter_s` (shared by a chord, plus a slight spread within it; durations kept, at least
    30 ms), velocities with Gaussian jitter of std `velocity_jitter`, clipped to 1..127.
    Deterministic for a given `rng` state.

    >>> out = augment_notes([Note(60, 1.0, 2.0)], tempo=2.0, transpose=3, rng=np.random.default_rng(0))
    >>> out[0].pitch, out[0].onset, out[0].offset
    (63, 0.5, 1.0)
    """
    if tempo <= 0:
        raise ValueError(f"tempo must be > 0, got {tempo}")
    if not notes:
        return []
    notes = sort_notes(list(notes))
    arr = np.array([[n.onset, n.offset, n.velocity] for n in notes], dtype=np.float64)
    onsets, durations = arr[:, 0] / tempo, np.maximum((arr[:, 1] - arr[:, 0]) / tempo, MIN_DURATION_S)
    if timing_jitter_s > 0:
        group = np.concatenate([[0], np.cumsum(np.diff(onsets) > 0.03)])  # chords: onsets within 30 ms
        shift = rng.normal(0.0, timing_jitter_s, group[-1] + 1)[group]
        onsets = np.maximum(onsets + shift + rng.normal(0.0, 0.25 * timing_jitter_s, len(onsets)), 0.0)
    velocities = arr[:, 2]
    if velocity_jitter > 0:
        velocities = velocities + rng.normal(0.0, velocity_jitter, len(velocities))
    velocities = np.clip(np.round(velocities), 1, 127).astype(int)
    out = [
        n.replace(
            pitch=fold_pitch(n.pitch + transpose),
            onset=round(float(on), 6),
            offset=round(float(on + d), 6),
            velocity=int(v),
        )
        for n, on, d, v in zip(notes, onsets, durations, velocities)
    ]
    return _resolve_overlaps(out)


def sample_augmentation(rng: np.random.Generator) -> dict:
    """Random `augment_notes` keyword arguments: tempo in [0.75, 1.3], transpose in [-4, 4] semitones,
    onset jitter ~10 ms and velocity jitter ~8.

    >>> sorted(sample_augmentation(np.random.default_rng(0)))
    ['tempo', 'timing_jitter_s', 'transpose', 'velocity_jitter']
    """
    return {
        "tempo": float(np.exp(rng.uniform(np.log(0.75), np.log(1.3)))),
        "transpose": int(rng.integers(-4, 5)),
        "timing_jitter_s": float(rng.uniform(0.005, 0.015)),
        "velocity_jitter": float(rng.uniform(4.0, 12.0)),
    }
