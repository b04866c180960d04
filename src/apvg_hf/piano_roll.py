"""Notes <-> piano roll at the video frame rate: the representation KHP hears and plays.

A piano roll is (T, 88, 3) float32, one row per video frame, one column per key (A0 = MIDI 21 to
C8 = 108), three channels:

    0  onset     1 on the frame a note starts (frame = round(onset * fps))
    1  sustain   1 on every frame the note sounds, [onset frame, max(offset frame, onset frame + 1))
    2  velocity  velocity / 127 on the sustained frames

Notes are dicts (or objects) with `pitch`, `onset`, `offset` (seconds) and optionally `velocity`
(1-127, default 80); pitches outside the 88 keys are ignored.

>>> roll = notes_to_roll([{"pitch": 60, "onset": 0.1, "offset": 0.3, "velocity": 100}], num_frames=12, fps=30)
>>> roll.shape, int(roll[3, 60 - LOWEST_PITCH, 0]), int(roll[:, 60 - LOWEST_PITCH, 1].sum())
((12, 88, 3), 1, 6)
>>> [(n["pitch"], n["onset"]) for n in roll_to_notes(roll, fps=30)]
[(60, 0.1)]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

NUM_KEYS = 88
LOWEST_PITCH = 21  # A0
HIGHEST_PITCH = LOWEST_PITCH + NUM_KEYS - 1  # C8
BLACK_PITCH_CLASSES = frozenset({1, 3, 6, 8, 10})  # C#, D#, F#, G#, A#


def is_black_key(pitch: int) -> bool:
    """True for the black keys (MIDI pitch)."""
    return pitch % 12 in BLACK_PITCH_CLASSES


CHANNELS = ("onset", "sustain", "velocity")


def note_field(note, name: str, default=None):
    """A field of a note given as a dict or as an object with attributes."""
    if isinstance(note, dict):
        return note.get(name, default)
    return getattr(note, name, default)


def _frames(note, fps: float) -> tuple[int, int, int]:
    """(key index, first frame, end frame) of a note: [round(onset * fps), max(round(offset * fps), +1))."""
    k = int(note_field(note, "pitch")) - LOWEST_PITCH
    f0 = int(round(float(note_field(note, "onset")) * fps))
    return k, f0, max(int(round(float(note_field(note, "offset")) * fps)), f0 + 1)


def sounding(notes: Iterable, num_frames: int, fps: float, out: np.ndarray | None = None) -> np.ndarray:
    """Which keys sound at each frame: (num_frames, 88) bool, the roll's sustain channel without the
    roll; `out`: an array to paint the notes into (for notes that arrive in parts)."""
    out = np.zeros((num_frames, NUM_KEYS), bool) if out is None else out
    for n in notes:
        k, f0, f1 = _frames(n, fps)
        if 0 <= k < NUM_KEYS:
            out[max(f0, 0) : max(min(f1, len(out)), 0), k] = True
    return out


def notes_to_roll(notes: Iterable, num_frames: int, fps: float) -> np.ndarray:
    """Note list -> (num_frames, 88, 3) piano roll (see the module docstring). Notes that began before
    frame 0 (negative onsets) sound from frame 0 without an onset."""
    roll = np.zeros((num_frames, NUM_KEYS, 3), dtype=np.float32)
    for n in notes:
        k, f0, f1 = _frames(n, fps)
        if not 0 <= k < NUM_KEYS:
            continue
        velocity = float(note_field(n, "velocity", 80) or 80) / 127.0
        a, b = max(f0, 0), min(f1, num_frames)
        if a < b:
            roll[a:b, k, 1] = 1.0
            roll[a:b, k, 2] = np.maximum(roll[a:b, k, 2], velocity)
        if 0 <= f0 < num_frames:
            roll[f0, k, 0] = 1.0
    return roll


def decode_roll(
    probabilities: np.ndarray, fps: float, onset_threshold: float = 0.5, frame_threshold: float = 0.5
) -> np.ndarray:
    """Transcription probabilities (T, 88, 3) -> the piano roll of the notes they decode to: what a
    note-aware KHP plays when it hears audio (`roll_to_notes`, then `notes_to_roll`)."""
    notes = roll_to_notes(probabilities, fps, onset_threshold, frame_threshold)
    return notes_to_roll(notes, len(probabilities), fps)


def roll_to_notes(
    roll: np.ndarray,
    fps: float,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.5,
    min_frames: int = 1,
) -> list[dict]:
    """(T, 88, 3) roll or probabilities (onset, sustain, velocity in [0, 1]) -> note dicts, by onset.

    A note starts on a frame whose onset probability passes `onset_threshold` and is a local maximum
    in time (a run of onset frames gives one note, at its peak); it lasts while the sustain
    probability stays above `frame_threshold` (at least `min_frames`) and ends at the next onset of
    the same key. Velocity is read at the onset frame.
    """
    roll = np.asarray(roll, dtype=np.float32)
    if roll.ndim != 3 or roll.shape[1:] != (NUM_KEYS, 3):
        raise ValueError(f"a piano roll is (T, {NUM_KEYS}, 3), got shape {roll.shape}")
    T = len(roll)
    onset, sustain, velocity = roll[..., 0], roll[..., 1], roll[..., 2]
    prev = np.vstack([np.full((1, NUM_KEYS), -1.0, np.float32), onset[:-1]])
    nxt = np.vstack([onset[1:], np.full((1, NUM_KEYS), -1.0, np.float32)])
    peaks = (onset >= onset_threshold) & (onset > prev) & (onset >= nxt)  # (T, 88)
    notes = []
    for k in range(NUM_KEYS):
        starts = np.flatnonzero(peaks[:, k])
        for i, f0 in enumerate(starts):
            limit = starts[i + 1] if i + 1 < len(starts) else T
            f1 = f0 + max(1, min_frames)
            while f1 < limit and sustain[f1, k] >= frame_threshold:
                f1 += 1
            f1 = min(f1, limit) if limit > f0 else f1
            notes.append(
                {
                    "pitch": k + LOWEST_PITCH,
                    "onset": round(float(f0) / fps, 6),
                    "offset": round(float(f1) / fps, 6),
                    "velocity": int(np.clip(round(float(velocity[f0, k]) * 127), 1, 127)),
                }
            )
    notes.sort(key=lambda n: (n["onset"], n["pitch"]))
    return notes
