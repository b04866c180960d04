"""Piano audio for note lists: SoundFont rendering, audio I/O, and an "ear proxy" that checks that a recording
contains given notes at the given times.

The SoundFonts, MIDI writing and rendering live in `apvg_hf.midi` (generating videos from MIDI needs them
without the `data` extra); they are re-exported here under their old names for the data builders.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from apvg_hf.data.notes import Note
from apvg_hf.midi import (  # noqa: F401 (re-exported)
    DEFAULT_SOUNDFONT,
    PEAK_DBFS,
    RELEASE_TAIL_S,
    SOUNDFONTS,
    _bundled_soundfont,
    _fit_length,
    _soundfont_bytes,
    available_soundfonts,
    find_soundfont,
    normalize_peak,
    notes_to_midi,
    render_notes,
)
from apvg_hf.video_io import load_audio, save_audio  # noqa: F401 (re-exported)

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
