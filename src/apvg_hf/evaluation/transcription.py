"""Note-transcription metrics (mir_eval) and the basic-pitch baseline transcriber.

`note_metrics` scores estimated notes against reference notes the way the transcription literature
does (`mir_eval.transcription`, optimal one-to-one matching, same pitch within 50 cents):

- ``onset``: onsets within ±50 ms, offsets ignored (``offset_ratio=None``);
- ``onset_offset``: also offsets within 20 % of the reference note's duration or 50 ms, whichever
  is larger (mir_eval's default);
- ``onset_velocity``: onsets within ±50 ms and velocities within 0.1 after mir_eval's per-clip
  least-squares rescaling (`mir_eval.transcription_velocity`, offsets ignored).

Each gives precision, recall, F1 and the counts behind them (``matched``, ``reference``,
``estimated``: numbers of notes), so `aggregate` can micro-average over all notes of many clips (sum
the counts, then P/R/F1) instead of averaging per-clip F1s. ``recall_by_octave`` counts the onset
matches per octave of the reference notes (where on the keyboard a transcriber goes deaf).

Conventions: a note is a dict ``{"pitch" (MIDI), "onset", "offset" (s), "velocity"}``; notes with a
negative onset (they began before the clip: a clip's note list keeps them) are left out of both
lists; with no reference and no estimated notes P = R = F1 = 1 (nothing to find, nothing found
wrongly); with only one side empty they are 0.

`basic_pitch_transcribe` runs Spotify's basic-pitch 0.4.0 (its ONNX model ships in the wheel) in
its own virtual environment, `.venv-basic-pitch`, made on first use by `ensure_basic_pitch_env`:
basic-pitch declares tensorflow (<2.15.1) as a dependency, so it is installed with ``--no-deps`` next
to what it really imports (onnxruntime, librosa, mir_eval, pretty_midi, resampy, scipy). It runs
with the main environment's numpy 2.4, but in the main environment its declared tensorflow would
break `pip check` and the lock's resolution, and librosa, numba, scikit-learn and onnxruntime would
add ~400 MB for an evaluation-only baseline (the separate environment is ~620 MB). Speed: about 10x
real time on 2 busy CPU cores plus ~5 s to start (the very first run also compiles numba code, ~30 s).

>>> ref = [{"pitch": 60, "onset": 0.0, "offset": 0.5, "velocity": 80},
...        {"pitch": 64, "onset": 0.5, "offset": 1.0, "velocity": 80}]
>>> est = [{"pitch": 60, "onset": 0.02, "offset": 0.5, "velocity": 70}]
>>> m = note_metrics(ref, est)
>>> m["onset"]["precision"], m["onset"]["recall"], round(m["onset"]["f1"], 3)
(1.0, 0.5, 0.667)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ONSET_TOLERANCE = 0.05  # seconds
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE = 0.05
VELOCITY_TOLERANCE = 0.1
METRICS = ("onset", "onset_offset", "onset_velocity")

# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def _arrays(notes: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Notes -> intervals (N, 2) s, pitches (N,) Hz, velocities (N,) or None if any is missing."""
    notes = [n for n in notes if n["onset"] >= 0]
    intervals = np.array([[n["onset"], n["offset"]] for n in notes], dtype=np.float64).reshape(-1, 2)
    pitches = 440.0 * 2.0 ** ((np.array([n["pitch"] for n in notes], dtype=np.float64) - 69) / 12)
    vel = [n.get("velocity") for n in notes]
    velocities = None if any(v is None for v in vel) else np.array(vel, dtype=np.float64)
    return intervals, pitches, velocities


def prf(matched: int, n_ref: int, n_est: int) -> dict:
    """Precision, recall, F1 from counts (both empty: all 1; one side empty: all 0)."""
    if n_ref == 0 and n_est == 0:
        p = r = f = 1.0
    else:
        p = matched / n_est if n_est else 0.0
        r = matched / n_ref if n_ref else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "matched": int(matched),
        "reference": int(n_ref),
        "estimated": int(n_est),
    }


def note_metrics(
    reference_notes: Sequence[dict],
    estimated_notes: Sequence[dict],
    onset_tolerance: float = ONSET_TOLERANCE,
    offset_ratio: float = OFFSET_RATIO,
    velocity_tolerance: float = VELOCITY_TOLERANCE,
) -> dict:
    """{"onset", "onset_offset", "onset_velocity"} -> {precision, recall, f1, matched, reference, estimated}.

    ``onset_velocity`` is None when some note has no velocity.
    """
    from mir_eval import transcription, transcription_velocity

    ri, rp, rv = _arrays(reference_notes)
    ei, ep, ev = _arrays(estimated_notes)
    n_ref, n_est = len(ri), len(ei)
    octaves = [int(n["pitch"]) // 12 - 1 for n in reference_notes if n["onset"] >= 0]  # C4 = 60 -> 4
    out: dict = {}
    if n_ref == 0 or n_est == 0:
        out["onset"] = prf(0, n_ref, n_est)
        out["onset_offset"] = prf(0, n_ref, n_est)
        out["onset_velocity"] = None if rv is None or ev is None else prf(0, n_ref, n_est)
        out["recall_by_octave"] = _by_octave(octaves, set())
        return out
    transcription.validate(ri, rp, ei, ep)
    common = dict(onset_tolerance=onset_tolerance, offset_min_tolerance=OFFSET_MIN_TOLERANCE)
    onset = transcription.match_notes(ri, rp, ei, ep, offset_ratio=None, **common)
    out["onset"] = prf(len(onset), n_ref, n_est)
    out["recall_by_octave"] = _by_octave(octaves, {i for i, _ in onset})
    both = transcription.match_notes(ri, rp, ei, ep, offset_ratio=offset_ratio, **common)
    out["onset_offset"] = prf(len(both), n_ref, n_est)
    if rv is None or ev is None:
        out["onset_velocity"] = None
    else:
        vel = transcription_velocity.match_notes(
            ri, rp, rv, ei, ep, ev, offset_ratio=None, velocity_tolerance=velocity_tolerance, **common
        )
        out["onset_velocity"] = prf(len(vel), n_ref, n_est)
    return out


def _by_octave(octaves: Sequence[int], matched: set[int]) -> dict:
    """{octave: {"matched", "reference"}} onset counts per octave of the reference notes (MIDI
    octaves: 60 = C4 is in octave 4)."""
    out: dict = {}
    for i, o in enumerate(octaves):
        c = out.setdefault(str(o), {"matched": 0, "reference": 0})
        c["reference"] += 1
        c["matched"] += i in matched
    return out


def clip_reference_notes(clip, tolerance: float = ONSET_TOLERANCE) -> list[dict]:
    """A dataset clip's notes as a transcriber should hear them: those that start inside the clip
    (clip-relative seconds; within the onset tolerance before it too, moved to 0), offsets cut at the
    clip's end."""
    T = clip.num_frames / clip.meta["fps"]
    return [
        {**n, "onset": max(n["onset"], 0.0), "offset": min(n["offset"], T)}
        for n in clip.meta["notes"]
        if -tolerance <= n["onset"] < T
    ]


def aggregate(results: Sequence[dict]) -> dict:
    """Micro average of per-clip `note_metrics` results: counts summed over clips, then P/R/F1.

    (``onset_velocity`` sums the clips that have it; its velocity rescaling is fitted per clip.)
    """
    out: dict = {}
    for key in METRICS:
        parts = [r[key] for r in results if r.get(key) is not None]
        if not parts and key == "onset_velocity":
            out[key] = None
            continue
        out[key] = prf(*(sum(p[c] for p in parts) for c in ("matched", "reference", "estimated")))
    octaves: dict = {}
    for r in results:
        for o, c in r.get("recall_by_octave", {}).items():
            t = octaves.setdefault(o, {"matched": 0, "reference": 0})
            t["matched"] += c["matched"]
            t["reference"] += c["reference"]
    for t in octaves.values():
        t["recall"] = t["matched"] / t["reference"] if t["reference"] else float("nan")
    out["recall_by_octave"] = dict(sorted(octaves.items(), key=lambda kv: int(kv[0])))
    out["clips"] = len(results)
    return out


# ---------------------------------------------------------------------------------------------
# basic-pitch, in its own virtual environment
# ---------------------------------------------------------------------------------------------

# What basic-pitch 0.4.0 imports at run time with the ONNX model (its declared dependencies add
# tensorflow); versions checked together on Python 3.11 (numpy 2.4 works).
BASIC_PITCH_VERSION = "0.4.0"
BASIC_PITCH_RUNTIME = [
    "numpy==2.4.6",
    "scipy==1.17.1",
    "onnxruntime==1.32.0",
    "librosa==0.11.0",
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "scikit-learn==1.9.1",
    "soundfile==0.14.0",
    "mir_eval==0.8.2",
    "pretty_midi==0.2.11.post0",
    "resampy==0.4.2",  # basic-pitch wants <0.4.3
]
# basic-pitch's defaults (its `predict` signature and CLI); no piano-specific values are documented.
BASIC_PITCH_DEFAULTS = {"onset_threshold": 0.5, "frame_threshold": 0.3, "minimum_note_length": 127.70}

_RUNNER = r"""
import contextlib, json, logging, sys
logging.disable(logging.WARNING)  # "coremltools / tflite / tensorflow is not installed"
from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
from basic_pitch.inference import Model, predict

job = json.load(sys.stdin)
model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
results = []
with contextlib.redirect_stdout(sys.stderr):  # predict() prints progress
    for path in job["paths"]:
        _, _, events = predict(path, model, **job["params"])
        results.append(sorted(
            ({"pitch": int(p), "onset": float(s), "offset": float(e), "velocity": int(round(127 * a))}
             for s, e, p, a, _ in events),
            key=lambda n: (n["onset"], n["pitch"]),
        ))
json.dump(results, sys.stdout)
"""


def _env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_basic_pitch_env(path: str | os.PathLike = ".venv-basic-pitch", quiet: bool = True) -> Path:
    """Create (once) a virtual environment at `path` with basic-pitch and its ONNX runtime; returns
    its Python. Installs from the package index pip is configured with (about 40 s, ~600 MB); a
    marker file records what was installed, so later calls return at once."""
    path = Path(path).absolute()
    python = _env_python(path)
    wanted = [f"basic-pitch=={BASIC_PITCH_VERSION}", *BASIC_PITCH_RUNTIME]
    marker = path / ".apvg-installed"
    if python.exists() and marker.exists() and marker.read_text().split() == wanted:
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(path)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"] + (["-q"] if quiet else [])
    subprocess.run([*pip, "--no-deps", wanted[0]], check=True)
    subprocess.run([*pip, *wanted[1:]], check=True)
    marker.write_text("\n".join(wanted) + "\n")
    return python


def basic_pitch_transcribe(
    wave_paths: Sequence[str | os.PathLike],
    env: str | os.PathLike = ".venv-basic-pitch",
    timeout: float | None = None,
    **params,
) -> list[list[dict]]:
    """Transcribe audio files with basic-pitch (ONNX model, CPU) -> one sorted note list per file,
    notes as ``{"pitch", "onset", "offset", "velocity"}`` (velocity = 127 x basic-pitch's amplitude).

    One subprocess in the environment `env` (made by `ensure_basic_pitch_env` if missing) loads the
    model once and transcribes every file. `params` override `BASIC_PITCH_DEFAULTS` (any keyword of
    `basic_pitch.inference.predict`, e.g. ``minimum_frequency``).
    """
    if not wave_paths:
        return []
    python = ensure_basic_pitch_env(env)
    job = {"paths": [str(Path(p).absolute()) for p in wave_paths], "params": BASIC_PITCH_DEFAULTS | params}
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(python), "-c", _RUNNER],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"basic-pitch failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


if __name__ == "__main__":  # python -m apvg_hf.evaluation.transcription a.wav b.flac
    print(json.dumps(basic_pitch_transcribe(sys.argv[1:]), indent=1))
