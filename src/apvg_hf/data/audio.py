"""Piano audio for note lists: SoundFont rendering (midirenderer), audio I/O, and an "ear proxy" that checks
that a recording contains given notes at the given times."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from apvg_hf.data.notes import Note
from apvg_hf.video_io import load_audio, save_audio  # noqa: F401 (re-exported)

RELEASE_TAIL_S = 1.0  # midirenderer stops at the last MIDI event: keep rendering this long for note releases
PEAK_DBFS = -1.0
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


def notes_to_midi(notes: Sequence[Note], end_time: float | None = None) -> bytes:
    """A standard MIDI file (acoustic grand piano, 960 ticks per beat at 120 bpm: 0.5 ms resolution)
    playing `notes`; a no-op controller event at `end_time` makes renderers run until then."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name="piano")
    for n in notes:
        velocity = int(np.clip(n.velocity, 1, 127))
        piano.notes.append(pretty_midi.Note(velocity, int(n.pitch), float(n.onset), float(n.offset)))
    if end_time is not None:
        piano.control_changes.append(pretty_midi.ControlChange(number=64, value=0, time=float(end_time)))
    midi.instruments.append(piano)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def render_notes(
    notes: Sequence[Note],
    sampling_rate: int = 16000,
    soundfont: str | os.PathLike | None = None,
    duration: float | None = None,
) -> np.ndarray:
    """Render `notes` as piano audio: mono float32 at `sampling_rate`, peak-normalised to -1 dBFS (silence
    stays zero), `round(duration * sampling_rate)` samples if `duration` is given (padded/cut), else up to the
    last note release.

    Rendering is MIDI -> midirenderer (48 kHz stereo WAV) -> mono -> soxr resampling; deterministic. With
    the bundled TimGM6mb.sf2 it runs at ~90-170x real time on one CPU core (mostly synthesis). The audio is
    aligned with the notes: the measured onset latency of the piano attack is 0-5 ms, so nothing is
    compensated.

    >>> audio = render_notes([Note(60, 0.0, 0.5)], duration=1.0)
    >>> audio.shape, audio.dtype, round(float(abs(audio).max()), 2)
    ((16000,), dtype('float32'), 0.89)
    """
    import midirenderer
    import soundfile as sf

    n_out = round(duration * sampling_rate) if duration is not None else None
    if not notes:
        return np.zeros(n_out or 0, dtype=np.float32)
    end = max(n.offset for n in notes) + RELEASE_TAIL_S
    if duration is not None:
        end = duration + 0.05  # a little extra so resampling has context at the cut
        notes = [n.replace(offset=min(n.offset, end)) for n in notes if n.onset < end]
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


# ------------------------------------------------------------------------------------------------- I/O


# save_audio / load_audio live with the rest of the audio and video I/O (apvg_hf.video_io); they are
# re-exported here for the data builders.


# ------------------------------------------------------------------------------------------ ear proxy


def _frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    padded = np.pad(audio, (n_fft // 2, n_fft // 2 + hop))
    n = 1 + (len(padded) - n_fft) // hop
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n]


def detect_onsets(audio: np.ndarray, sampling_rate: int, min_gap_s: float = 0.03) -> np.ndarray:
    """Onset times (s) by spectral flux: the rectified increase of a log-compressed 32 ms STFT over 10 ms,
    peak-picked (one per `min_gap_s`) above a 200 ms running mean + 0.05 (flux normalised to max 1)."""
    hop = max(1, round(0.005 * sampling_rate))
    n_fft = 1 << round(np.log2(0.03 * sampling_rate))
    audio = np.asarray(audio, dtype=np.float64)
    peak = np.max(np.abs(audio)) if audio.size else 0.0
    if peak == 0.0:
        return np.zeros(0)
    lead = hop * (n_fft // (2 * hop) + 3)  # silence first, so that a note at t=0 is seen arriving
    frames = _frames(np.concatenate([np.zeros(lead), audio / peak]), n_fft, hop)
    spec = np.log1p(100.0 * np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)))
    flux = np.zeros(len(spec))
    flux[2:] = np.maximum(spec[2:] - spec[:-2], 0.0).sum(axis=1)
    flux /= max(flux.max(), 1e-12)
    w = max(1, round(min_gap_s * sampling_rate / hop))
    neighbourhood = np.lib.stride_tricks.sliding_window_view(np.pad(flux, w, mode="edge"), 2 * w + 1)
    local_max = flux == neighbourhood.max(axis=1)
    k = round(0.1 * sampling_rate / hop)
    running = np.convolve(np.pad(flux, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
    times = (np.nonzero(local_max & (flux > running + 0.05))[0] * hop - lead) / sampling_rate
    times = np.maximum(times[times > -min_gap_s], 0.0)
    return times[times < (len(audio) - n_fft / 2) / sampling_rate]  # the cut at the end is no onset


def _group_onsets(onsets: np.ndarray, gap_s: float = 0.03) -> np.ndarray:
    onsets = np.sort(onsets)
    if onsets.size == 0:
        return onsets
    return onsets[np.concatenate([[True], np.diff(onsets) >= gap_s])]


def _match(reference: np.ndarray, detected: np.ndarray, tolerance_s: float) -> int:
    """Number of one-to-one matches within the tolerance (greedy, closest pairs first)."""
    detected = np.sort(detected)
    lo = np.searchsorted(detected, reference - tolerance_s, side="left")
    hi = np.searchsorted(detected, reference + tolerance_s, side="right")
    pairs = sorted((abs(r - detected[d]), i, d) for i, r in enumerate(reference) for d in range(lo[i], hi[i]))
    used_r, used_d = set(), set()
    for _, i, d in pairs:
        if i not in used_r and d not in used_d:
            used_r.add(i)
            used_d.add(d)
    return len(used_r)


@lru_cache(maxsize=8)
def _comb_matrix(n_fft: int, sampling_rate: int, n_harmonics: int = 6) -> np.ndarray:
    """(128, n_bins) weights: row p sums the spectrum over semitone-wide bands around p's first harmonics."""
    n_bins = n_fft // 2 + 1
    comb = np.zeros((128, n_bins))
    for p in range(128):
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        for h in range(1, n_harmonics + 1):
            f = h * f0
            if f > 0.45 * sampling_rate:
                break
            lo, hi = (f * 2 ** (s / 24) * n_fft / sampling_rate for s in (-1, 1))
            bins = np.arange(int(np.ceil(lo)), int(np.floor(hi)) + 1)
            if bins.size == 0:
                bins = np.array([round(f * n_fft / sampling_rate)])
            comb[p, bins[bins < n_bins]] += 1.0 / np.sqrt(h)
    return comb


def _pitch_confirmed(audio: np.ndarray, sampling_rate: int, notes: Sequence[Note]) -> np.ndarray:
    """Per note: does new energy appear on its harmonic comb in the 120 ms after its onset (vs the 120 ms
    before), at least 0.7x that of the combs a semitone away and 5% of the strongest new pitch?"""
    seg, gap = round(0.12 * sampling_rate), round(0.01 * sampling_rate)
    n_fft = 1 << int(np.ceil(np.log2(4 * seg)))  # zero-padded: finer bins for the semitone bands
    window = np.hanning(seg)
    padded = np.pad(np.asarray(audio, dtype=np.float64), (seg + gap, seg + gap))
    comb = _comb_matrix(n_fft, sampling_rate)
    salience = {}
    for t in np.unique(np.round([n.onset for n in notes], 4)):
        i = round(t * sampling_rate) + seg + gap
        after = np.abs(np.fft.rfft(padded[i + gap : i + gap + seg] * window, n_fft))
        before = np.abs(np.fft.rfft(padded[i - gap - seg : i - gap] * window, n_fft))
        salience[t] = comb @ np.maximum(after - before, 0.0)
    ok = np.zeros(len(notes), dtype=bool)
    for j, n in enumerate(notes):
        s, p = salience[np.round(n.onset, 4)], int(np.clip(n.pitch, 1, 126))
        ok[j] = s[p] > 0 and s[p] >= 0.7 * max(s[p - 1], s[p + 1]) and s[p] >= 0.05 * s[21:109].max()
    return ok


def check_notes_in_audio(
    audio: np.ndarray, sampling_rate: int, notes: Sequence[Note], tolerance_s: float = 0.05
) -> dict:
    """An "ear proxy": does `audio` contain `notes` at their times? Numpy only.

    Onsets: spectral-flux onsets vs the distinct note onsets (onsets closer than 30 ms grouped), matched
    one-to-one within +-`tolerance_s` -> recall, precision, F1. Pitch: the fraction of notes whose harmonic
    comb gains energy right after the onset (vs just before) and stands out from the neighbouring semitones.
    Notes starting before 0 or after the end of the audio are ignored.

    >>> notes = [Note(60 + i, 0.5 * i, 0.5 * i + 0.4) for i in range(4)]
    >>> r = check_notes_in_audio(render_notes(notes), 16000, notes)
    >>> r["onset_f1"] > 0.9 and r["pitch_confirmed"] > 0.9
    True
    """
    audio = np.asarray(audio, dtype=np.float64)
    notes = [n for n in notes if 0.0 <= n.onset < len(audio) / sampling_rate]
    reference = _group_onsets(np.array([n.onset for n in notes]))
    detected = detect_onsets(audio, sampling_rate)
    hits = _match(reference, detected, tolerance_s)
    recall = hits / len(reference) if len(reference) else 0.0
    precision = hits / len(detected) if len(detected) else 0.0
    f1 = 2 * recall * precision / (recall + precision) if hits else 0.0
    confirmed = _pitch_confirmed(audio, sampling_rate, notes) if notes else np.zeros(0, dtype=bool)
    return {
        "onset_recall": recall,
        "onset_precision": precision,
        "onset_f1": f1,
        "pitch_confirmed": float(confirmed.mean()) if confirmed.size else 0.0,
        "n_notes": len(notes),
        "n_onsets": len(reference),
        "n_detected": len(detected),
    }
