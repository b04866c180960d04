"""Dataset presets: which pieces, how much of each, how many variants, what resolution.

Each piece's split comes from `piece_split` (a hash of the piece alone), so a piece is in the same
split in every preset; the demo piece (`DEMO_PIECE`) is always in the test split.

>>> sorted(PRESETS)
['full', 'medium', 'small', 'tiny']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .music import list_pieces
from .virtual_pianist import DEMO_PIECE, piece_split


@dataclass(frozen=True)
class Preset:
    keyboard: int | None  # number of solo keyboard pieces (None: all)
    chorales: int | None  # number of Bach chorales (None: all)
    seconds: dict[str, float | None] = field(default_factory=dict)  # per kind: cut pieces after this long
    variants: int = 1  # augmented performances per piece
    clip_seconds: float = 20.0
    resolution: int = 256


PRESETS = {
    "tiny": Preset(
        keyboard=3, chorales=3, seconds={"keyboard": 6.0, "chorale": 6.0}, clip_seconds=3.0, resolution=64
    ),
    # ~20 minutes of music: 10 keyboard excerpts of 70 s and 12 chorale excerpts of 40 s (+ the demo piece).
    "small": Preset(keyboard=10, chorales=12, seconds={"keyboard": 70.0, "chorale": 40.0}),
    # ~63 minutes: every keyboard piece (first 90 s) and 60 chorale excerpts of 40 s: the KHP recipe's data.
    "medium": Preset(keyboard=None, chorales=60, seconds={"keyboard": 90.0, "chorale": 40.0}),
    # ~5.3 hours: every keyboard piece and chorale of the catalogue, whole (`--variants 3` for ~16 h).
    "full": Preset(keyboard=None, chorales=None),
}


def preset_pieces(name: str) -> list[tuple[str, float | None]]:
    """(piece_id, max_seconds) for a preset, in a deterministic order.

    Pieces are spread over the catalogue; validation and test get at least 10% of the pieces (at
    least one: chorales of a thin split replace chorales picked for train), and the demo piece is
    always included.

    >>> from apvg_hf.data.virtual_pianist import SPLITS
    >>> pieces = preset_pieces("tiny")
    >>> sorted({piece_split(p) for p, _ in pieces}) == sorted(SPLITS)
    True
    """
    p = PRESETS[name]
    chosen = [(DEMO_PIECE, p.seconds.get("keyboard"))]
    for kind, count in (("keyboard", p.keyboard), ("chorale", p.chorales)):
        pool = [q.piece_id for q in list_pieces(kinds=(kind,)) if q.piece_id != DEMO_PIECE]
        picked = pool if count is None else pool[:: max(1, len(pool) // max(count, 1))][:count]
        if kind == "chorale" and count is not None:  # top up thin splits with chorales of that split
            need = max(1, round(0.1 * (len(chosen) + len(picked))))
            for split in ("validation", "test"):
                have = sum(piece_split(q) == split for q in [c for c, _ in chosen] + picked)
                spare = [q for q in pool if piece_split(q) == split and q not in picked]
                swap = [i for i in reversed(range(len(picked))) if piece_split(picked[i]) == "train"]
                for i, q in zip(swap, spare[: max(0, need - have)]):
                    picked[i] = q
        chosen += [(q, p.seconds.get(kind)) for q in picked]
    return chosen
