"""MIDI files and note lists: read, write, render to audio.

Notes are dicts {"pitch", "onset", "offset", "velocity"} (seconds; velocity 1-127) or any object with
those attributes (`apvg_hf.data.notes.Note`). A MIDI file or a note list enters the pipeline where the
notes are: `read_midi` / `check_notes` give the note dicts, `render_notes` the audio the video carries.

>>> notes = check_notes([{"pitch": 60, "onset": 0.0, "offset": 0.5}, {"pitch": 64, "onset": 0.5, "offset": 1.0}])
>>> notes[0]
{'pitch': 60, 'onset': 0.0, 'offset': 0.5, 'velocity': 80}
>>> [(n["pitch"], n["onset"]) for n in read_midi(notes_to_midi(notes))]
[(60, 0.0), (64, 0.5)]
>>> audio = render_notes(notes, sampling_rate=16000)
>>> audio.dtype, len(audio) / 16000 >= 2.0
(dtype('float32'), True)
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from .piano_roll import HIGHEST_PITCH, LOWEST_PITCH  # A0 .. C8: the 88 keys
from .piano_roll import note_field as _get

RELEASE_TAIL_S = 1.0  # midirenderer stops at the last MIDI event: keep rendering this long for note releases
PEAK_DBFS = -1.0
DEFAULT_VELOCITY = 80
# Named SoundFonts: the PyPI-only default, and Debian's General MIDI fonts where installed
# (`apt-get install fluid-soundfont-gm csound-soundfont`). The default is always the
# bundled one, whatever is installed, so installing a package never changes what a build renders.
SOUNDFONTS = {
    "timgm6mb": (),  # inside the pretty_midi wheel (GPL-2)
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2"),  # MIT
    # Csound's GM bank (public domain). MuseScore's Debian fonts are SoundFont 3 (Ogg samples), which
    # midirenderer cannot read.
    "csound": ("/usr/share/sounds/sf2/sf_GMbank.sf2", "/usr/share/samples/sf_GMbank.sf2"),
}
DEFAULT_SOUNDFONT = "timgm6mb"


# --------------------------------------------------------------------------------------- reading MIDI


def read_midi(path_or_bytes: str | os.PathLike | bytes | bytearray) -> list[dict]:
    """A standard MIDI file (a path or its bytes) -> note dicts sorted by onset (then pitch).

    Times are seconds through the file's tempo map; all non-drum instruments are merged; pitches outside
    the 88 keys (21..108) are dropped with a warning. Raises FileNotFoundError for a missing file and
    ValueError for a file that is not MIDI (or is corrupt) or that holds no notes.
    """
    import pretty_midi

    if isinstance(path_or_bytes, bytes | bytearray):
        name, data = "the MIDI data", bytes(path_or_bytes)
    elif isinstance(path_or_bytes, str | os.PathLike):
        path = Path(path_or_bytes).expanduser()
        name = str(path)
        if not path.exists():
            raise FileNotFoundError(f"no such MIDI file: {name}")
        if path.is_dir():
            raise IsADirectoryError(f"{name} is a directory, not a MIDI file")
        data = path.read_bytes()
    else:
        raise TypeError(f"a MIDI file is a path or bytes, got {type(path_or_bytes).__name__}")
    if not data:
        raise ValueError(f"{name} is empty (0 bytes), not a MIDI file")
    if not data.startswith(b"MThd"):
        raise ValueError(f"{name} is not a MIDI file (no 'MThd' header)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pretty_midi's type-0 / tempo-change remarks
            midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as err:  # mido/pretty_midi raise OSError, EOFError, KeyError, ValueError ... on bad data
        raise ValueError(
            f"{name} is not a readable MIDI file (corrupt?): {type(err).__name__}: {err}"
        ) from err
    notes, outside = [], 0
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        for n in instrument.notes:
            if not LOWEST_PITCH <= n.pitch <= HIGHEST_PITCH:
                outside += 1
                continue
            onset, offset = float(n.start), float(n.end)
            if offset <= onset:  # a zero-length note: give it the shortest sound a file can hold
                offset = onset + 1e-3
            notes.append(
                {"pitch": int(n.pitch), "onset": onset, "offset": offset, "velocity": int(max(1, n.velocity))}
            )
    if outside:
        warnings.warn(
            f"{name}: dropped {outside} note(s) outside the piano's 88 keys (MIDI pitches 21..108)",
            stacklevel=2,
        )
    if not notes:
        raise ValueError(f"{name} holds no notes (on the piano's 88 keys, outside drum tracks)")
    notes.sort(key=lambda n: (n["onset"], n["pitch"]))
    return notes


def check_notes(notes) -> list[dict]:
    """Validate a user's note list -> normalised note dicts {"pitch", "onset", "offset", "velocity"},
    sorted by onset; notes outside the 88 keys are dropped with a warning, as `read_midi` does. Each
    entry is a dict or an object with `pitch` (int 0-127), `onset` >= 0,
    `offset` > onset (seconds, finite) and optionally `velocity` (1-127, default 80). Any problem is a
    ValueError (TypeError for the wrong kind of thing) naming the entry's index."""
    if isinstance(notes, str | bytes | dict) or not hasattr(notes, "__iter__"):
        raise TypeError(f"notes must be a list of note dicts, got {type(notes).__name__}")
    notes = list(notes)
    if len(notes) == 0:
        raise ValueError("the note list is empty")
    out = []
    for i, n in enumerate(notes):
        where = f"note {i} ({n!r})"
        if not isinstance(n, dict) and not hasattr(n, "pitch"):
            raise TypeError(f"{where}: a note is a dict with pitch, onset, offset (and velocity)")
        missing = [k for k in ("pitch", "onset", "offset") if _get(n, k) is None]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        pitch, onset, offset = _get(n, "pitch"), _get(n, "onset"), _get(n, "offset")
        velocity = _get(n, "velocity")
        velocity = DEFAULT_VELOCITY if velocity is None else velocity
        if not _is_int(pitch) or not 0 <= int(pitch) <= 127:
            raise ValueError(f"{where}: pitch must be a whole number 0-127 (MIDI), got {pitch!r}")
        for key, value in (("onset", onset), ("offset", offset)):
            if not _is_number(value) or not math.isfinite(float(value)):
                raise ValueError(f"{where}: {key} must be a finite number of seconds, got {value!r}")
        if float(onset) < 0:
            raise ValueError(f"{where}: onset must be >= 0 s, got {onset!r}")
        if float(offset) <= float(onset):
            raise ValueError(f"{where}: offset ({offset!r}) must be after onset ({onset!r})")
        if not _is_int(velocity) or not 1 <= int(velocity) <= 127:
            raise ValueError(f"{where}: velocity must be a whole number 1-127, got {velocity!r}")
        out.append(
            {"pitch": int(pitch), "onset": float(onset), "offset": float(offset), "velocity": int(velocity)}
        )
    outside = [n["pitch"] for n in out if not LOWEST_PITCH <= n["pitch"] <= HIGHEST_PITCH]
    if outside:  # as read_midi does: a piano has 88 keys
        warnings.warn(
            f"dropped {len(outside)} notes outside the piano's 88 keys ({LOWEST_PITCH}-{HIGHEST_PITCH}): "
            f"pitches {sorted(set(outside))}",
            stacklevel=2,
        )
        out = [n for n in out if LOWEST_PITCH <= n["pitch"] <= HIGHEST_PITCH]
        if not out:
            raise ValueError("no note of the list is on the piano's 88 keys (MIDI pitches 21-108)")
    out.sort(key=lambda n: (n["onset"], n["pitch"]))
    return out


def _is_number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float | np.integer | np.floating)


def _is_int(x) -> bool:
    return _is_number(x) and float(x) == int(x)


# --------------------------------------------------------------------------------------- writing MIDI


def notes_to_midi(notes: Sequence, end_time: float | None = None) -> bytes:
    """A standard MIDI file (acoustic grand piano, 960 ticks per beat at 120 bpm: 0.5 ms resolution)
    playing `notes` (dicts or `Note`s); a no-op controller event at `end_time` makes renderers run
    until then."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name="piano")
    for n in notes:
        velocity = _get(n, "velocity")
        velocity = int(np.clip(DEFAULT_VELOCITY if velocity is None else velocity, 1, 127))
        piano.notes.append(
            pretty_midi.Note(
                velocity, int(_get(n, "pitch")), float(_get(n, "onset")), float(_get(n, "offset"))
            )
        )
    if end_time is not None:
        piano.control_changes.append(pretty_midi.ControlChange(number=64, value=0, time=float(end_time)))
    midi.instruments.append(piano)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------- SoundFonts


def _bundled_soundfont() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The SoundFont to render with: `path` (a file, or a name in `SOUNDFONTS`) if given, else
    `$APVG_HF_SOUNDFONT` (the same), else TimGM6mb.sf2 from the pretty_midi wheel.

    >>> find_soundfont().name
    'TimGM6mb.sf2'
    """
    explicit = path if path is not None else os.environ.get("APVG_HF_SOUNDFONT") or None
    source = "" if path is not None else " (from $APVG_HF_SOUNDFONT)"
    name = str(explicit).lower() if explicit is not None else DEFAULT_SOUNDFONT
    if name in SOUNDFONTS:
        candidates = [Path(c) for c in SOUNDFONTS[name]] or [_bundled_soundfont()]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"SoundFont {name!r}{source} is not installed (looked for {', '.join(map(str, candidates))})"
        )
    found = Path(explicit).expanduser()
    if not found.is_file():
        raise FileNotFoundError(
            f"SoundFont {str(found)!r}{source} does not exist (a .sf2 file or one of {sorted(SOUNDFONTS)})"
        )
    return found


def available_soundfonts() -> list[str]:
    """Names in `SOUNDFONTS` whose file is on this machine (always at least the bundled default)."""
    out = []
    for name in SOUNDFONTS:
        try:
            find_soundfont(name)
            out.append(name)
        except FileNotFoundError:
            pass
    return out


@lru_cache(maxsize=4)
def _soundfont_bytes(path: Path) -> bytes:
    return path.read_bytes()


# -------------------------------------------------------------------------------------------- rendering


def render_notes(
    notes: Sequence,
    sampling_rate: int = 16000,
    soundfont: str | os.PathLike | None = None,
    duration: float | None = None,
) -> np.ndarray:
    """Render `notes` (dicts or `Note`s) as piano audio: mono float32 at `sampling_rate`, peak-normalised
    to -1 dBFS (silence stays zero), `round(duration * sampling_rate)` samples if `duration` is given
    (padded/cut), else up to the last note release.

    Rendering is MIDI -> midirenderer (48 kHz stereo WAV) -> mono -> soxr resampling; deterministic. With
    the bundled TimGM6mb.sf2 it runs at ~90-170x real time on one CPU core (mostly synthesis). The audio is
    aligned with the notes: the measured onset latency of the piano attack is 0-5 ms, so nothing is
    compensated.

    >>> audio = render_notes([{"pitch": 60, "onset": 0.0, "offset": 0.5}], duration=1.0)
    >>> audio.shape, audio.dtype, round(float(abs(audio).max()), 2)
    ((16000,), dtype('float32'), 0.89)
    """
    import midirenderer
    import soundfile as sf

    n_out = round(duration * sampling_rate) if duration is not None else None
    if not notes:
        return np.zeros(n_out or 0, dtype=np.float32)
    end = max(float(_get(n, "offset")) for n in notes) + RELEASE_TAIL_S
    if duration is not None:
        end = duration + 0.05  # a little extra so resampling has context at the cut
        notes = [
            {
                "pitch": _get(n, "pitch"),
                "onset": float(_get(n, "onset")),
                "offset": min(float(_get(n, "offset")), end),
                "velocity": _get(n, "velocity", DEFAULT_VELOCITY),
            }
            for n in notes
            if float(_get(n, "onset")) < end
        ]
    midi = notes_to_midi(notes, end_time=end)
    wav = midirenderer.render_wave_from(_soundfont_bytes(find_soundfont(soundfont)), midi)
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != sampling_rate:
        import soxr

        audio = soxr.resample(audio, rate, sampling_rate)
    audio = _fit_length(audio, n_out) if n_out is not None else audio
    return normalize_peak(audio)


def normalize_peak(audio: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Scale so the largest absolute sample is at `peak_dbfs`; all-zero audio stays zero. Returns float32."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.pad(audio, (0, n - len(audio)))


__all__ = [
    "DEFAULT_SOUNDFONT",
    "PEAK_DBFS",
    "RELEASE_TAIL_S",
    "SOUNDFONTS",
    "available_soundfonts",
    "check_notes",
    "find_soundfont",
    "normalize_peak",
    "notes_to_midi",
    "read_midi",
    "render_notes",
]
