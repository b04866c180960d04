"""Run a keypoint predictor over held-out clips and score it (shared by training and evaluation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .keypoints import KeypointMetrics
from .keypress import decode_key_presses, f1_from_counts, match_events, note_events, note_hits


def performance_key(clip) -> str:
    """Clips of one performance share the piece, the appearance and the camera."""
    m = clip.meta
    camera = sorted(m["camera"].items()) if m.get("camera") else None  # None: a real video
    return f"{m['piece_id']}|{m['appearance']}|{camera}"


def reference_source(clip, clips) -> tuple[int, int]:
    """Where `clip`'s reference frame comes from, as (index into `clips`, frame): the middle frame of
    another clip of the same performance (the next one), so nothing of the scored frames leaks in;
    the clip's own first frame if it is the only one."""
    same = sorted(
        (i for i, c in enumerate(clips) if performance_key(c) == performance_key(clip)),
        key=lambda i: clips[i].meta["clip_index"],
    )
    others = [i for i in same if clips[i] is not clip]
    if not others:
        return next(i for i, c in enumerate(clips) if c is clip), 0
    after = [i for i in others if clips[i].meta["clip_index"] > clip.meta["clip_index"]]
    src = (after or others)[0]
    return src, clips[src].num_frames // 2


def reference_for(clip, clips) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """A reference for `clip` (see `reference_source`): keypoints (K, 2), the coarse frame
    (3, s, s) in [0, 1] (None without coarse frames) and the keyboard's key quads (88, 4, 2)."""
    i, t = reference_source(clip, clips)
    src = clips[i]
    frame = None if src.coarse is None or not src.coarse.size else src.coarse[t].astype(np.float32) / 255
    keys = np.asarray(src.meta["keyboard_quads"], np.float32)
    return np.asarray(src.keypoints[t], np.float32), frame, keys


def khp_predict(
    model,
    features: np.ndarray,
    reference_keypoints: np.ndarray | None = None,
    reference_frame: np.ndarray | None = None,
    reference_keys: np.ndarray | None = None,
    chunk: int = 1800,
    piano_roll: np.ndarray | None = None,
    fps: float = 30.0,
) -> dict:
    """Whole-clip KHP inference in the metrics' format: (T, F) -> {"keypoints" (T, K, 2), "visibility"
    (T, K), "coarse" (T, 3, s, s)} numpy arrays, and "notes" (the notes played) for "notes" models,
    which play `piano_roll` (T, 88, 3) when given. The inference itself is `KHPModel.predict`
    (chunked, with context: the one-pass result at bounded memory)."""
    extra = {}
    if getattr(model, "uses_notes", False):
        extra = {"reference_keys": reference_keys, "piano_roll": piano_roll, "fps": fps}
    out = model.predict(features, reference_keypoints, reference_frame, chunk_frames=chunk, **extra)
    arrays = {"keypoints": out.keypoints[0], "visibility": out.visibility[0]}
    if out.coarse_frames is not None:
        arrays["coarse"] = out.coarse_frames[0]
    result = {k: v.numpy() for k, v in arrays.items()}
    if out.notes is not None:
        result["notes"] = out.notes[0]
    return result


def evaluate_predictor(
    predict: Callable[[np.ndarray], dict | np.ndarray], clips, image_size: int = 256
) -> dict:
    """Score `predict(features) -> keypoints or {"keypoints", "coarse"?}` on clips.

    Returns {"body": {...}, "hands": {...}, "all": {...}, "keypress": {precision, recall, f1},
    "coarse_l1": float (when predicted)}. Key presses are scored on the clips that know their notes
    and keyboard (NaN when none does: real videos).
    """
    metrics = KeypointMetrics(image_size)
    counts = np.zeros(3, dtype=np.int64)
    hits = np.zeros(2, dtype=np.int64)
    coarse_err, coarse_n, scored = 0.0, 0, 0
    for clip in clips:
        out = predict(clip)
        out = out if isinstance(out, dict) else {"keypoints": out}
        kp = np.asarray(out["keypoints"])
        metrics.update(kp, clip.keypoints, clip.visibility)
        meta = clip.meta
        if meta.get("notes") is not None and meta.get("keyboard_quads") is not None:  # not real videos
            quads = np.asarray(meta["keyboard_quads"])
            notes = note_events(meta["notes"], meta["fps"], clip.num_frames)
            counts += match_events(
                decode_key_presses(kp, quads, meta["keyboard_pitches"]), notes, tolerance=2
            )
            hits += note_hits(kp, quads, meta["keyboard_pitches"], notes, tolerance=2)
            scored += 1
        if "coarse" in out and clip.coarse is not None and clip.coarse.size:
            coarse_err += (
                float(np.abs(out["coarse"] - clip.coarse.astype(np.float32) / 255).mean()) * clip.num_frames
            )
            coarse_n += clip.num_frames
    result = metrics.compute()
    result["keypress"] = f1_from_counts(*counts.tolist())
    result["keypress"]["note_hit_rate"] = float(hits[0] / max(hits[1], 1))
    if not scored:  # no clip knows its notes and keys (real videos): nothing to score key presses on
        result["keypress"] |= {"precision": float("nan"), "recall": float("nan"), "f1": float("nan")}
        result["keypress"]["note_hit_rate"] = float("nan")
    result["keypress"]["events"] = {
        "matched": int(counts[0]),
        "predicted": int(counts[1]),
        "notes": int(counts[2]),
    }
    if coarse_n:
        result["coarse_l1"] = coarse_err / coarse_n
    return result


def sweep_key_contact(model, clips, settings: list[dict]) -> list[dict]:
    """Key-press scores of a note-aware KHP under each of `settings` (config overrides, e.g.
    {"key_contact_frames": 3, "key_approach_frames": 2}), playing the audio (transcribed) and the true
    notes (as from MIDI), with each clip's reference: [{"settings", "audio": evaluate_predictor(...),
    "notes": ...}]. Run it on the validation split to choose; the model's config is restored after."""
    if not getattr(model, "uses_notes", False):
        raise ValueError("key contact needs a note-aware KHP (config.architecture='notes')")
    names = sorted({k for s in settings for k in s})
    keep, results = {k: getattr(model.config, k) for k in names}, []
    try:
        for setting in settings:
            for k, v in keep.items():
                setattr(model.config, k, setting.get(k, v))
            results.append(
                {
                    "settings": dict(setting),
                    "audio": evaluate_predictor(
                        lambda c: khp_predict(model, c.features, *reference_for(c, clips), fps=c.meta["fps"]),
                        clips,
                    ),
                    "notes": evaluate_predictor(
                        lambda c: khp_predict(
                            model,
                            c.features,
                            *reference_for(c, clips),
                            piano_roll=c.piano_roll(),
                            fps=c.meta["fps"],
                        ),
                        clips,
                    ),
                }
            )
    finally:
        for k, v in keep.items():
            setattr(model.config, k, v)
    return results
