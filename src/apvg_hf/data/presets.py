"""Dataset presets: which pieces, how much of each, how many variants, what resolution.

The demo piece (`DEMO_PIECE`) is never trained on: it always goes to the test split.

>>> sorted(PRESETS)
['full', 'small', 'tiny']
"""

from __future__ import annotations

from dataclasses import dataclass

from .music import list_pieces

DEMO_PIECE = "bach/bwv846"  # WTC I, Prelude in C major: the README's demo audio; held out


@dataclass(frozen=True)
class Preset:
    keyboard: int | None  # number of solo keyboard pieces (None: all)
    chorales: int | None  # number of Bach chorales (None: all)
    max_seconds: float | None  # cut each piece after this long (before tempo augmentation)
    variants: int = 1  # augmented performances per piece
    clip_seconds: float = 20.0
    resolution: int = 256
    reductions: int = 0  # ensemble works reduced to two hands


PRESETS = {
    "tiny": Preset(keyboard=3, chorales=3, max_seconds=6.0, variants=1, clip_seconds=3.0, resolution=64),
    # ~20 minutes of music: 10 keyboard excerpts of 70 s and 12 chorale excerpts of 40 s.
    "small": Preset(keyboard=10, chorales=12, max_seconds=None, variants=1, clip_seconds=20.0),
    # ~5.3 hours: every keyboard piece and chorale of the catalogue, whole (`--variants 3` for ~16 h).
    "full": Preset(keyboard=None, chorales=None, max_seconds=None, variants=1, clip_seconds=20.0),
}
_SMALL_SECONDS = {"keyboard": 70.0, "chorale": 40.0}


def preset_pieces(name: str) -> list[tuple[str, float | None]]:
    """(piece_id, max_seconds) for a preset, in a deterministic order; always includes the demo piece."""
    p = PRESETS[name]
    chosen: list[tuple[str, float | None]] = [
        (DEMO_PIECE, p.max_seconds or (_SMALL_SECONDS["keyboard"] if name == "small" else None))
    ]
    for kind, count in (("keyboard", p.keyboard), ("chorale", p.chorales), ("reduction", p.reductions)):
        if count == 0:
            continue
        pieces = [q for q in list_pieces(kinds=(kind,)) if q.piece_id != DEMO_PIECE]
        step = max(1, len(pieces) // count) if count else 1  # spread the choice over the catalogue
        picked = pieces[::step][:count] if count else pieces
        secs = p.max_seconds if p.max_seconds else (_SMALL_SECONDS.get(kind) if name == "small" else None)
        chosen += [(q.piece_id, secs) for q in picked]
    return chosen
