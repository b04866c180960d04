"""The note list: the one description of a performance that audio, kinematics and metrics share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

# Piano range (A0..C8) and the range the virtual pianist plays (C2..C7: what its camera frames).
PIANO_LOW, PIANO_HIGH = 21, 108
PLAY_LOW, PLAY_HIGH = 36, 96

LEFT, RIGHT = "left", "right"


@dataclass(frozen=True)
class Note:
    """One played note. Times in seconds from the start of the performance.

    `hand` is a hint from the score (staff/voice) before planning, and the hand that plays it after;
    `finger` is 1 (thumb) .. 5 (little finger), 0 while unassigned.

    >>> Note(pitch=60, onset=0.0, offset=0.5, velocity=80).duration
    0.5
    """

    pitch: int
    onset: float
    offset: float
    velocity: int = 80
    hand: str | None = None
    finger: int = 0

    @property
    def duration(self) -> float:
        return self.offset - self.onset

    def replace(self, **changes) -> Note:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


def notes_to_array(notes: list[Note]) -> np.ndarray:
    """(N, 4) float array of pitch, onset, offset, velocity — handy for vectorised checks."""
    if not notes:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[n.pitch, n.onset, n.offset, n.velocity] for n in notes], dtype=np.float64)


def sort_notes(notes: list[Note]) -> list[Note]:
    return sorted(notes, key=lambda n: (n.onset, n.pitch))


def notes_duration(notes: list[Note]) -> float:
    return max((n.offset for n in notes), default=0.0)
