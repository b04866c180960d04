#!/usr/bin/env python
"""Render the demo's bundled example audio: a short piano performance of a public-domain piece that is in
none of the dataset presets, made by the dataset's own virtual pianist and SoundFont synth (audio only).

The audio is what the dataset's pianist plays (`virtual_pianist.perform`: the notes it cannot reach are
left out, exactly as in the dataset), cut to `--seconds`, faded out over the last 0.5 s, peak-normalised to
-1 dBFS and written as mono Ogg Vorbis. The same arguments give the same file, byte for byte.

Usage:
    PYTHONPATH=src python scripts/make_example_audio.py --piece mozart/k458/movement1 --seconds 20
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

from apvg_hf.data.audio import PEAK_DBFS, find_soundfont, normalize_peak

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PIECE = "mozart/k458/movement1"  # String Quartet K. 458 "The Hunt", I. Allegro vivace assai
OGG_SERIAL = 0x41505647  # "APVG": libsndfile picks a random Ogg stream serial; a fixed one keeps the bytes


def slug(piece_id: str) -> str:
    """`mozart/k458/movement1` -> `mozart_k458_movement1`."""
    return "".join(c if c.isalnum() else "_" for c in piece_id).strip("_")


def presets_using(piece_id: str) -> list[str]:
    """The presets whose piece list holds `piece_id`, or another version of it (same `piece_group`)."""
    from apvg_hf.data.presets import PRESETS, preset_pieces
    from apvg_hf.data.virtual_pianist import piece_group

    group = piece_group(piece_id)
    return [name for name in PRESETS if any(piece_group(p) == group for p, _ in preset_pieces(name))]


def check_piece(piece_id: str) -> None:
    """Exit with a clear message unless `piece_id` is catalogued and in none of the presets' piece lists."""
    from apvg_hf.data.music import KINDS, get_piece

    used = presets_using(piece_id)
    if used:
        sys.exit(
            f"error: {piece_id!r} is in the piece list of preset(s) {', '.join(used)}: the example must be "
            "music the models never saw; pick a piece outside every preset (e.g. a string-quartet "
            "reduction, see apvg_hf.data.music.list_pieces(kinds=('reduction',)))"
        )
    try:
        get_piece(piece_id)
    except KeyError:
        sys.exit(f"error: {piece_id!r} is not in the music catalogue (see list_pieces(kinds={KINDS}))")


def fade_out(audio: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """A half-cosine fade to silence over the last `seconds`."""
    n = min(len(audio), round(seconds * sr))
    out = np.asarray(audio, dtype=np.float32).copy()
    if n > 0:
        out[-n:] *= (0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n)))).astype(np.float32)
    return out


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def set_ogg_serial(data: bytes, serial: int) -> bytes:
    """The Ogg stream `data` with every page's stream serial number set to `serial` (page CRCs redone)."""
    out, pos = bytearray(), 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_segments = data[pos + 26]
        end = pos + 27 + n_segments + sum(data[pos + 27 : pos + 27 + n_segments])
        page = bytearray(data[pos:end])
        page[14:18] = serial.to_bytes(4, "little")
        page[22:26] = bytes(4)
        page[22:26] = _ogg_crc(page).to_bytes(4, "little")
        out += page
        pos = end
    return bytes(out)


def render_example(
    piece_id: str,
    seconds: float,
    sampling_rate: int,
    seed: int = 0,
    variant: int = 0,
    augment: bool = False,
    soundfont: str | None = None,
    fade_seconds: float = 0.5,
    peak_dbfs: float = PEAK_DBFS,
) -> tuple[np.ndarray, dict]:
    """(mono float32 audio, info) of the first `seconds` of `piece_id` as the dataset's pianist plays it."""
    from apvg_hf.data.music import get_piece
    from apvg_hf.data.virtual_pianist import PerformanceSpec, perform

    spec = PerformanceSpec(
        piece_id,
        variant=variant,
        seed=seed,
        max_seconds=seconds,
        sampling_rate=sampling_rate,
        augment=augment,
        soundfont=soundfont,
    )
    perf = perform(spec)  # also plans the motion (a few seconds); its audio is the dataset's audio
    audio = perf.audio[: round(seconds * sampling_rate)]
    audio = normalize_peak(fade_out(audio, sampling_rate, fade_seconds), peak_dbfs)
    piece = get_piece(piece_id)
    info = {
        "title": piece.title,
        "composer": piece.composer,
        "licence": piece.licence,
        "notes": len(perf.notes),
        "dropped": perf.n_dropped,
        "augmentation": perf.augmentation,
        "performed_notes": [n for n in perf.notes if n.onset < seconds],
    }
    return audio, info


def write_ogg(path: Path, audio: np.ndarray, sr: int) -> int:
    """Write mono Ogg Vorbis (fixed stream serial: reproducible bytes); returns the size in bytes."""
    import soundfile as sf

    if audio.size == 0 or not np.all(np.isfinite(audio)):
        raise ValueError(f"refusing to write {path}: the audio is empty or not finite")
    buffer = io.BytesIO()
    sf.write(buffer, audio, sr, format="OGG", subtype="VORBIS")
    data = set_ogg_serial(buffer.getvalue(), OGG_SERIAL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--piece", default=DEFAULT_PIECE, help=f"catalogue piece id (default {DEFAULT_PIECE})")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the excerpt (default 20)")
    ap.add_argument("--output", help="the .ogg to write (default spaces_demo/examples/<slug>.ogg)")
    ap.add_argument("--sampling-rate", type=int, default=16000, help="Hz (default 16000, the dataset's rate)")
    ap.add_argument("--seed", type=int, default=0, help="performance seed (default 0)")
    ap.add_argument("--variant", type=int, default=0, help="performance variant (default 0)")
    ap.add_argument(
        "--augment",
        action="store_true",
        help="random tempo/transposition/jitter as in training (default: the score as written)",
    )
    ap.add_argument("--soundfont", help="a .sf2 file (default: as the dataset, see find_soundfont)")
    ap.add_argument(
        "--midi",
        action="store_true",
        help="also write the notes played as a standard MIDI file (<output>.mid)",
    )
    args = ap.parse_args(argv)
    if args.seconds <= 1.0:
        sys.exit(f"error: --seconds must be > 1, got {args.seconds}")
    if args.sampling_rate < 8000:
        sys.exit(f"error: --sampling-rate must be >= 8000, got {args.sampling_rate}")
    check_piece(args.piece)
    output = (
        Path(args.output) if args.output else REPO / "spaces_demo" / "examples" / f"{slug(args.piece)}.ogg"
    )

    t0 = time.perf_counter()
    audio, info = render_example(
        args.piece,
        args.seconds,
        args.sampling_rate,
        seed=args.seed,
        variant=args.variant,
        augment=args.augment,
        soundfont=args.soundfont,
    )
    size = write_ogg(output, audio, args.sampling_rate)
    if args.midi:
        from apvg_hf.midi import notes_to_midi

        notes = [n.replace(offset=min(n.offset, args.seconds)) for n in info["performed_notes"]]
        output.with_suffix(".mid").write_bytes(notes_to_midi(notes))
        print(f"wrote {output.with_suffix('.mid')}: {len(notes)} notes")
    print(f"piece: {args.piece} ({info['composer']}: {info['title']})")
    print(f"  licence: {info['licence']}")
    print(f"  soundfont: {find_soundfont(args.soundfont).name}")
    print(f"  notes played: {info['notes']} (dropped by the pianist: {info['dropped']})")
    print(f"  augmentation: {info['augmentation']}")
    print(
        f"wrote {output}: {len(audio) / args.sampling_rate:.2f} s, {args.sampling_rate} Hz mono Ogg Vorbis, "
        f"{size / 1024:.1f} KiB ({size} bytes) in {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
