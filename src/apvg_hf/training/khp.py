"""Training a KHP model (audio -> keypoints, visibility, coarse frames): the config, the batches and
the loop behind `scripts/train_khp.py`.

    cfg = load_config(TrainKHPConfig, "pipelines/apvg-virtual-pianist/khp.yaml", ["--steps=10"])
    model_dir = train(cfg)  # or main(["--config", "...", "--steps=10"])

Batches are a pure function of (seed, step, micro-step, process), and checkpoints hold the model,
optimizer, scheduler and RNG states, so a resumed run continues bit for bit like an uninterrupted one.
Writes `<output_dir>/model` (save_pretrained + feature extractor + the resolved config),
`<output_dir>/checkpoints/step-N`, TensorBoard logs in `<output_dir>/khp`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soxr
import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..configuration_khp import KHPConfig
from ..data.clips import load_clips
from ..data.motion_pool import MotionPool
from ..evaluation import evaluate_predictor, khp_predict
from ..evaluation.khp import performance_key, reference_for
from ..feature_extraction_apvg import APVGFeatureExtractor
from ..hand_anchor import TORSO_JOINTS, move_hands, note_anchors
from ..hand_anchor import resolve as resolve_hand_anchor
from ..modeling_khp import KHPModel
from ..piano_roll import LOWEST_PITCH, NUM_KEYS, notes_to_roll
from ..skeleton import FINGERTIPS, HANDS
from .config import MixedPrecision, kwargs_dataclass
from .loop import (
    GracefulStop,
    adamw,
    after_step,
    init_run,
    make_accelerator,
    parse_args,
    resume_step,
    save_final,
    step_log,
)

KHPConfigArgs = kwargs_dataclass(KHPConfig, module=__name__)
FeatureExtractorArgs = kwargs_dataclass(APVGFeatureExtractor, module=__name__)


@dataclass
class TrainKHPConfig:
    """Everything a KHP run depends on; a YAML recipe sets some fields, `--key=value` others."""

    dataset: list[str] | str = "data/virtual_pianist_small"  # folder(s) from scripts/build_dataset.py
    init_from: str | None = None  # start from a saved KHP (fine-tuning) instead of a fresh one
    output_dir: str = "outputs/khp"
    # KHPConfig kwargs; with init_from, those set (not at their defaults) override the loaded config's:
    # loss weights, key contact, pointer target, decoding thresholds (not the architecture's sizes)
    model: KHPConfigArgs = field(default_factory=KHPConfigArgs)
    feature_extractor: FeatureExtractorArgs = field(default_factory=FeatureExtractorArgs)  # its kwargs
    steps: int = 2000  # optimizer steps
    batch_size: int = 16  # windows per process per micro-step
    gradient_accumulation_steps: int = 1
    window_frames: int = 160  # frames per training window
    coarse_frames: int = 32  # frames per window whose coarse frame is decoded and scored
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    mixed_precision: MixedPrecision = (
        "no"  # no | bf16 | fp16 (accelerate launch --mixed_precision wins if given)
    )
    cpu: bool | None = None  # None: on CPU unless CUDA/XPU/MPS is there (several CPU processes need this)
    seed: int = 0
    log_every: int = 10
    eval_every: int = 250
    eval_clips: int = 16  # validation clips scored at each evaluation (0: all)
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    limit_clips: int | None = None  # use only the first N training clips (quick runs)
    # "notes" models: the transcriber hears augmented audio (gain, EQ, reverb, noise: data/augment.py),
    # the motion decoder plays the true notes with some mistakes (dropped, added, shifted by a frame).
    augment_audio: bool = True
    note_noise: float = 0.05
    # sideways shift augmentation, up to this fraction of the frame (0: off); for small real datasets,
    # where the model would otherwise learn the clips' average place instead of following the keys
    shift_augment: float = 0.0
    # whether the reference (its keypoints and frame) slides with the scene; false: only the performer,
    # the keyboard and the target frames move, so the reference's pose says nothing about where the
    # hands go
    shift_reference: bool = True
    # transposition augmentation for "notes" models, up to this many semitones (0: off): in a share
    # `transpose_prob` of the batches every window's audio is pitch-shifted and its notes transposed by
    # its own k, and the hands (arms partly) move to where those keys are in the frame, the keyboard
    # fixed, so that where the hands go must come from the keys of the notes; for small real datasets,
    # whose few minutes cover a few places on the keyboard. Those batches train no coarse frames
    # (the target frames show the hands where they were).
    transpose_augment: int = 0
    transpose_prob: float = 0.5
    # "notes" models: a motion pool (scripts/build_motion_pool.py: planned performances of the corpus's
    # training pieces, motion and notes only) to draw a share `motion_share` of the batches from; those
    # batches train the motion decoder (no audio, no coarse frames: the dataset's batches keep those)
    motion_pool: str | None = None
    motion_share: float = 0.0
    pool_keyboard_share: float = 0.5  # share of pooled windows from keyboard pieces (the rest: chorales)
    # "notes" models: false freezes the transcriber (trained in its own stage) and computes no audio
    # features for the batches: the motion decoder alone learns
    train_transcriber: bool = True
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps; --resume goes on


class WindowSampler:
    """Random training windows; batch (step, micro, rank) depends on nothing else (exact resume)."""

    def __init__(
        self,
        clips,
        window: int,
        batch_size: int,
        coarse_frames: int,
        seed: int,
        reference_dropout: float = 0.0,
        notes_extractor=None,
        augment_audio: bool = True,
        note_noise: float = 0.0,
        shift: float = 0.0,
        shift_reference: bool = True,
        transpose: int = 0,
        transpose_prob: float = 0.5,
        pool: MotionPool | None = None,
        motion_share: float = 0.0,
        audio: bool = True,
    ):
        self.clips, self.window, self.batch_size = clips, window, batch_size
        self.coarse_frames, self.seed, self.reference_dropout = coarse_frames, seed, reference_dropout
        # "notes" models: features are computed per window from (augmented) audio with this extractor
        self.notes_extractor, self.augment_audio, self.note_noise = notes_extractor, augment_audio, note_noise
        # shift augmentation in whole pixels of the coarse frames (or of a 64-pixel grid without them)
        self.shift_grid = clips[0].coarse.shape[-1] if clips and clips[0].coarse is not None else 64
        self.shift = int(round(shift * self.shift_grid))
        self.shift_reference = shift_reference
        if transpose and notes_extractor is None:
            raise ValueError("transposition augmentation needs a note-aware KHP (architecture 'notes')")
        self.transpose, self.transpose_prob = int(transpose), float(transpose_prob)
        if pool is not None and notes_extractor is None:
            raise ValueError("a motion pool trains a note-aware KHP's motion decoder (architecture 'notes')")
        if not 0.0 <= motion_share <= 1.0:
            raise ValueError(f"motion_share must be in [0, 1], got {motion_share}")
        self.pool = pool if pool is not None and motion_share > 0 else None  # a share of 0: no pool at all
        self.motion_share = float(motion_share) if self.pool is not None else 0.0
        self.audio = audio  # "notes" models: compute the windows' audio features (for the transcriber)
        lengths = np.array([c.num_frames for c in clips], dtype=np.float64)
        self.p = lengths / lengths.sum()
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(clips):
            groups.setdefault(performance_key(c), []).append(i)
        self.performance = [groups[performance_key(c)] for c in clips]  # clip -> clips of its performance

    def batch(self, step: int, micro: int, rank: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, micro, rank])
        if self.pool is not None and rng.random() < self.motion_share:
            return self.pool_batch(rng)
        W = self.window
        feats, kps, vis, coarse, mask, ref_kp, ref_frame = [], [], [], [], [], [], []
        rolls, true_rolls, ref_keys = [], [], []
        transposing = bool(self.transpose) and rng.random() < self.transpose_prob
        for i in rng.choice(len(self.clips), self.batch_size, p=self.p):
            c = self.clips[i]
            n = min(W, c.num_frames)
            s = int(rng.integers(0, c.num_frames - n + 1))
            r = self.clips[int(rng.choice(self.performance[i]))]  # reference: any frame of the performance
            rt = int(rng.integers(0, r.num_frames))
            # shift augmentation: the whole scene (performer, keyboard, reference, coarse frames) moves
            # sideways by a whole number of coarse pixels, so where the hands go must come from where
            # the notes' keys are, not from the training clips' average place
            px, dx = 0, 0.0
            if self.shift:
                px = int(rng.integers(-self.shift, self.shift + 1))
                dx = px / self.shift_grid
            rdx, rpx = (dx, px) if self.shift_reference else (0.0, 0)  # the reference stays put: the
            ref_kp.append(r.keypoints[rt] + [rdx, 0.0])  # hands must follow the keys, not the reference
            if r.coarse is not None:
                ref_frame.append(_shift_image(r.coarse[rt], rpx))
            pad = ((0, W - n),)
            kp = c.keypoints[s : s + n]  # (n, K, 2)
            if transposing:
                k, moves = self.choose_transposition(c, s, n, rng)
                kp = move_hands(kp, moves)
            if self.notes_extractor is not None:
                f, roll, true_roll = self.notes_window(c, s, n, rng, k if transposing else 0)
                rolls.append(np.pad(roll, pad + ((0, 0), (0, 0))))
                true_rolls.append(np.pad(true_roll, pad + ((0, 0), (0, 0))))
                ref_keys.append(
                    (np.asarray(r.meta["keyboard_quads"], np.float32) + [dx, 0.0]).astype(np.float32)
                )
                if f is not None:
                    feats.append(np.pad(f, pad + ((0, 0),)))
            else:
                feats.append(np.pad(c.features[s : s + n], pad + ((0, 0),)))
            kp = kp + [dx, 0.0]
            kps.append(np.pad(kp, pad + ((0, 0), (0, 0)), constant_values=0.5))
            vis.append(np.pad(c.visibility[s : s + n], pad + ((0, 0),)))
            if c.coarse is not None:
                coarse.append(np.pad(_shift_image(c.coarse[s : s + n], px), pad + ((0, 0),) * 3))
            mask.append(np.r_[np.ones(n), np.zeros(W - n)])
        out = {
            "attention_mask": torch.from_numpy(np.stack(mask)).long(),
            "target_keypoints": torch.from_numpy(np.stack(kps)).float(),
            "target_visibility": torch.from_numpy(np.stack(vis)).float(),
            "reference_keypoints": torch.from_numpy(np.stack(ref_kp)).float(),
            "reference_mask": torch.from_numpy(rng.random(self.batch_size) >= self.reference_dropout).long(),
        }
        if feats:
            out["input_features"] = torch.from_numpy(np.stack(feats)).float()
        if rolls:
            out["piano_roll"] = torch.from_numpy(np.stack(rolls))
            if feats:  # the transcriber hears the audio and learns the true notes
                out["target_piano_roll"] = torch.from_numpy(np.stack(true_rolls))
            out["reference_keys"] = torch.from_numpy(np.stack(ref_keys))
        if ref_frame:
            out["reference_frames"] = torch.from_numpy(np.stack(ref_frame)).float() / 255.0
        if coarse and self.coarse_frames:
            k = min(self.coarse_frames, W)
            out["coarse_frame_indices"] = torch.from_numpy(np.sort(rng.choice(W, k, replace=False)))
            if not transposing:  # (the target frames show the hands where they were: no coarse loss)
                out["target_coarse_frames"] = torch.from_numpy(np.stack(coarse)).float() / 255.0
        return out

    def pool_batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A batch of windows of pooled performances (`apvg_hf.data.motion_pool`): the notes played with
        mistakes as in `notes_window`, the targets, a reference frame of the same performance; no audio
        (the transcriber is not trained on them) and no coarse targets (one coarse frame is decoded)."""
        W = self.window
        kps, vis, mask, rolls, ref_kp, ref_frame, ref_keys = [], [], [], [], [], [], []
        for _ in range(self.batch_size):
            perf = self.pool.sample(rng)
            n = min(W, perf.num_frames)
            s = int(rng.integers(0, perf.num_frames - n + 1))
            pad = ((0, W - n),)
            kps.append(np.pad(perf.keypoints[s : s + n], pad + ((0, 0), (0, 0)), constant_values=0.5))
            vis.append(np.pad(perf.visibility[s : s + n], pad + ((0, 0),)))
            mask.append(np.r_[np.ones(n), np.zeros(W - n)])
            played = play_with_mistakes(perf.notes, rng, self.note_noise, perf.fps)
            rolls.append(
                np.pad(notes_to_roll(played, perf.num_frames, perf.fps)[s : s + n], pad + ((0, 0), (0, 0)))
            )
            j = int(rng.integers(len(perf.reference_index)))
            ref_kp.append(perf.keypoints[perf.reference_index[j]])
            ref_frame.append(perf.reference_frames[j])
            ref_keys.append(perf.keyboard_quads)
        return {
            "attention_mask": torch.from_numpy(np.stack(mask)).long(),
            "target_keypoints": torch.from_numpy(np.stack(kps)).float(),
            "target_visibility": torch.from_numpy(np.stack(vis)).float(),
            "reference_keypoints": torch.from_numpy(np.stack(ref_kp)).float(),
            "reference_mask": torch.from_numpy(rng.random(self.batch_size) >= self.reference_dropout).long(),
            "reference_frames": torch.from_numpy(np.stack(ref_frame)).float() / 255.0,
            "reference_keys": torch.from_numpy(np.stack(ref_keys)).float(),
            "piano_roll": torch.from_numpy(np.stack(rolls)),
            "coarse_frame_indices": torch.zeros(1, dtype=torch.long),  # nothing to score: one frame
        }

    def choose_transposition(self, clip, start: int, n: int, rng: np.random.Generator):
        """A transposition k (semitones, 0 when none fits) for frames [start, start + n) of a clip, and
        each hand's move in the frame: {hand: (dx, dy)} from the key nearest its fingertips to the key
        k semitones away, on the clip's keyboard. k keeps the window's notes and both hands' keys on
        the keyboard."""
        fps, quads = clip.meta["fps"], clip.meta.get("keyboard_quads")
        if quads is None:
            raise ValueError(f"transposition augmentation needs key quads; {clip.meta['piece_id']} has none")
        centres = np.asarray(quads, np.float64).mean(1)  # (88, 2)
        t0, t1 = start / fps, (start + n) / fps
        pitches = [m["pitch"] for m in clip.meta["notes"] if m["offset"] > t0 and m["onset"] < t1]
        near = {}
        for h in HANDS:
            tips = clip.keypoints[start : start + n, FINGERTIPS[h]]  # (n, 5, 2)
            seen = clip.visibility[start : start + n, FINGERTIPS[h]] > 0.5
            at = tips[seen].mean(0) if seen.any() else tips.reshape(-1, 2).mean(0)
            near[h] = int(np.argmin(np.linalg.norm(centres - at, axis=-1)))
        lo = max(
            -self.transpose,
            LOWEST_PITCH - min(pitches, default=LOWEST_PITCH + NUM_KEYS - 1),
            -min(near.values()),
        )
        hi = min(self.transpose, LOWEST_PITCH + NUM_KEYS - 1 - max(pitches, default=LOWEST_PITCH),
                 NUM_KEYS - 1 - max(near.values()))  # fmt: skip
        k = int(rng.integers(lo, hi + 1)) if lo <= hi else 0
        return k, {h: centres[j + k] - centres[j] for h, j in near.items()}

    def notes_window(self, clip, start: int, n: int, rng: np.random.Generator, transpose: int = 0):
        """Frames [start, start + n) of a clip for a "notes" model: features (n, F) of the clip's
        (augmented) audio, the notes to play with mistakes (n, 88, 3), and the true notes (n, 88, 3).
        `transpose` semitones shift the audio's pitch (the clip resampled, its feature rows still one
        per video frame) and the notes.

        The whole clip is augmented and featurised, then the window cut out, exactly as inference sees
        a recording (the feature floor is relative to the whole input's loudest band; rows at the
        window's edges have their audio context); the rolls are cut from the clip's rolls likewise."""
        from ..data.augment import augment_audio

        fps, sr = clip.meta["fps"], clip.meta["sampling_rate"]
        feats = None
        if self.audio:
            wave = clip.waveform()
            rate = 2.0 ** (transpose / 12)
            if transpose:  # played `rate` times faster, so featurised at `rate` times the frame rate
                wave = soxr.resample(wave, sr * rate, sr, quality="HQ").astype(np.float32)
            if self.augment_audio:
                wave = augment_audio(wave, sr, rng)
            feats = self.notes_extractor(wave, sampling_rate=sr, fps=fps * rate)["input_features"][0][
                start : start + n
            ]
            feats = np.pad(feats, ((0, n - len(feats)), (0, 0)), mode="edge").astype(np.float32)
        notes = [{**m, "pitch": m["pitch"] + transpose} for m in clip.meta["notes"]]
        true_roll = _transpose_roll(clip.piano_roll()[start : start + n], transpose)
        if self.note_noise:
            played = play_with_mistakes(notes, rng, self.note_noise, fps)
            roll = notes_to_roll(played, clip.num_frames, fps)[start : start + n]
        else:
            roll = true_roll
        return feats, roll, true_roll


def play_with_mistakes(notes: list[dict], rng: np.random.Generator, p: float, fps: float) -> list[dict]:
    """The notes as a transcriber might hear them: each missed with probability `p`, shifted by a frame
    with probability 2`p`, its velocity off by ~10, and with probability `p` a wrong neighbour key
    struck as well (briefly). `p` = 0 returns the notes unchanged."""
    if not p:
        return list(notes)
    played = []
    for m in notes:
        u = rng.random(3)
        if u[0] < p:
            continue  # missed
        shift = (rng.integers(-1, 2) / fps) if u[1] < 2 * p else 0.0
        velocity = int(np.clip(m["velocity"] + rng.normal(0, 10), 1, 127))
        played.append({**m, "onset": m["onset"] + shift, "offset": m["offset"] + shift, "velocity": velocity})
        if u[2] < p:  # a wrong neighbour key as well
            wrong = int(
                np.clip(m["pitch"] + rng.choice([-2, -1, 1, 2]), LOWEST_PITCH, LOWEST_PITCH + NUM_KEYS - 1)
            )
            played.append({**m, "pitch": wrong, "offset": m["onset"] + 0.1})
    return played


def _transpose_roll(roll: np.ndarray, k: int) -> np.ndarray:
    """(T, 88, C) piano roll moved up by k keys (down when negative); keys pushed off the end drop."""
    out = np.zeros_like(roll)
    if k >= 0:
        out[:, k:] = roll[:, : NUM_KEYS - k]
    else:
        out[:, :k] = roll[:, -k:]
    return out


def _shift_image(x: np.ndarray, px: int) -> np.ndarray:
    """(..., H, W) shifted right by `px` columns (left when negative), the edge column repeated."""
    if px == 0:
        return x
    w = x.shape[-1]
    idx = np.clip(np.arange(w) - px, 0, w - 1)
    return x[..., idx]


def label_with_transcription(model: KHPModel, clips, progress: bool = True) -> None:
    """Give clips without notes (real videos) the notes `model` transcribes from their audio, so a
    note-aware KHP can be fine-tuned on them (its motion decoder plays what it hears, as at inference;
    set `loss_transcription: 0` so the transcriber does not learn its own guesses). Each clip's
    `meta["notes_source"]` says "transcribed". Clips need their keyboard's key quads."""
    from ..piano_roll import roll_to_notes

    if not clips:
        return
    missing = [c.meta["piece_id"] for c in clips if c.meta.get("keyboard_quads") is None]
    if missing:
        raise ValueError(
            f"a note-aware KHP needs to know where the keys are, and {missing[0]} has no keyboard_quads: "
            "preprocess the video with --keyboard-corners"
        )
    c = model.config
    for clip in tqdm(clips, desc="transcribing clips without notes", disable=not progress):
        probs = model.transcribe(torch.from_numpy(np.array(clip.features)))[0].numpy()  # (T, 88, 3)
        clip.meta["notes"] = roll_to_notes(probs, clip.meta["fps"], c.onset_threshold, c.frame_threshold)
        clip.meta["notes_source"] = "transcribed"
    model.train()


def fit_hand_anchor(model: KHPModel, clips, progress: bool = True, **settings) -> dict:
    """Fit hand anchoring (`apvg_hf.hand_anchor`) for one performer on training clips with real
    keypoints and key quads, and set it on `model.config.hand_anchor`; returns the settings.

    `offsets`: where this performer's fingertips (each hand's centroid, visible frames) sit on average
    relative to the anchor of the notes each hand plays (weighted by the anchor's weight).
    `body_follow`: per axis, the least-squares slope of the body's centre (the torso joints) on the
    fingertips' centroid over all frames: how far he leans with his hands. `settings` override the
    other defaults (sigma_s, dead_zone_keys, ...). Clips without notes are transcribed first (their
    `meta["notes"]` is set, as `label_with_transcription` does); the model's train/eval mode is kept."""
    if not model.uses_notes:
        raise ValueError("hand anchoring needs a 'notes' KHP")
    s = resolve_hand_anchor(settings)
    if any(c.meta.get("notes") is None for c in clips):
        training = model.training
        label_with_transcription(model, [c for c in clips if c.meta.get("notes") is None], progress)
        model.train(training)
    gaps, weights, body, tips_all = [[], []], [[], []], [], []
    for c in clips:
        kp, vis = np.asarray(c.keypoints, np.float64), np.asarray(c.visibility)
        centres = np.asarray(c.meta["keyboard_quads"], np.float64).mean(1)  # (88, 2)
        anchors, w = note_anchors(c.meta["notes"], c.num_frames, c.meta["fps"], centres, s)
        for i, h in enumerate(HANDS):
            seen = (vis[:, FINGERTIPS[h]] > 0.5).all(1) & (w[i] > 0)
            gaps[i].append(kp[seen][:, FINGERTIPS[h]].mean(1) - anchors[i][seen])
            weights[i].append(w[i][seen])
        body.append(kp[:, TORSO_JOINTS].mean(1))
        tips_all.append(kp[:, FINGERTIPS["left"] + FINGERTIPS["right"]].mean(1))
    offsets = []
    for i in range(2):
        g, w = np.concatenate(gaps[i]), np.concatenate(weights[i])
        if w.sum() == 0:
            raise ValueError("no frame with both notes and a visible hand to fit hand anchoring on")
        offsets.append([round(float(v), 5) for v in (g * w[:, None]).sum(0) / w.sum()])
    b, t = np.concatenate(body), np.concatenate(tips_all)
    b, t = b - b.mean(0), t - t.mean(0)
    follow = [round(float((b[:, a] * t[:, a]).sum() / max((t[:, a] ** 2).sum(), 1e-12)), 4) for a in range(2)]
    fitted = resolve_hand_anchor(s | {"offsets": offsets, "body_follow": follow})
    model.config.hand_anchor = fitted
    return fitted


def flat_metrics(result: dict, prefix: str = "val/") -> dict[str, float]:
    """`evaluate_predictor`'s nested result -> the flat scalars logged at each validation."""
    out = {}
    for group in ("body", "hands"):
        for k in ("mpjpe_px256", "pck@0.05", "pck@0.1", "velocity_px256"):
            out[f"{prefix}{group}_{k}"] = result[group][k]
    out[f"{prefix}keypress_f1"] = result["keypress"]["f1"]
    out[f"{prefix}note_hit_rate"] = result["keypress"]["note_hit_rate"]
    if "coarse_l1" in result:
        out[f"{prefix}coarse_l1"] = result["coarse_l1"]
    return out


def train(cfg: TrainKHPConfig, resume: str | None = None) -> Path | None:
    """Train (or, with `resume` = 'latest' or a checkpoint folder, go on training) a KHP model.

    Returns `<output_dir>/model`, or None when the run stopped early (a signal or `stop_after`) after
    writing a checkpoint to go on from.
    """
    out_dir = Path(cfg.output_dir)
    # (the coarse head gets no gradient without coarse frames, nor in transposed or pooled batches; the
    # transcriber none in pooled ones)
    unused = cfg.coarse_frames == 0 or cfg.transpose_augment > 0 or cfg.motion_share > 0
    accelerator = make_accelerator(cfg, out_dir, find_unused_parameters=unused)
    is_main = accelerator.is_main_process
    set_seed(cfg.seed)

    # 1. Data: cached arrays (the main process prepares them first, the others read the cache).
    extractor = APVGFeatureExtractor(**asdict(cfg.feature_extractor))
    if cfg.init_from:
        defaults = asdict(KHPConfigArgs())
        overrides = {k: v for k, v in asdict(cfg.model).items() if v != defaults[k]}
        model_config = KHPConfig.from_pretrained(cfg.init_from, **overrides)
        if model_config.feature_size != extractor.feature_size:
            raise ValueError(
                f"{cfg.init_from} reads {model_config.feature_size} features per frame but the feature "
                f"extractor makes {extractor.feature_size}: set feature_extractor.feature_size to match"
            )
    else:  # the model reads what the feature extractor makes
        model_config = KHPConfig(**(asdict(cfg.model) | {"feature_size": extractor.feature_size}))
    datasets_ = [cfg.dataset] if isinstance(cfg.dataset, str) else list(cfg.dataset)
    with accelerator.main_process_first():  # train on all of them; validate on the first
        train = [
            clip
            for d in datasets_
            for clip in load_clips(
                d, "train", extractor, model_config.coarse_size, cfg.limit_clips, progress=is_main
            )
        ]
        val = load_clips(datasets_[0], "validation", extractor, model_config.coarse_size, progress=is_main)
    val = val[: cfg.eval_clips] if cfg.eval_clips else val
    notes = model_config.architecture == "notes"
    if (cfg.motion_pool or not cfg.train_transcriber) and not notes:
        raise ValueError(
            "motion_pool and train_transcriber: false are for note-aware KHPs (architecture 'notes')"
        )
    if bool(cfg.motion_pool) != (cfg.motion_share > 0):
        raise ValueError(
            "motion_pool and motion_share go together: set both (a pool and a share > 0) or neither"
        )
    pool = MotionPool(cfg.motion_pool, cfg.pool_keyboard_share) if cfg.motion_pool else None
    if pool is not None and pool.coarse_size != model_config.coarse_size:
        raise ValueError(
            f"{cfg.motion_pool} holds {pool.coarse_size}-pixel reference frames and the model's coarse "
            f"frames are {model_config.coarse_size}: rebuild it with --coarse-size {model_config.coarse_size}"
        )
    if pool is not None and any(c.meta["fps"] != pool.fps for c in train):
        raise ValueError(f"{cfg.motion_pool} moves at {pool.fps} fps and the dataset's clips do not")
    if pool is not None and is_main:
        print(f"motion pool {cfg.motion_pool}: {len(pool)} performances, {pool.seconds / 3600:.1f} h")
    sampler = WindowSampler(
        train,
        cfg.window_frames,
        cfg.batch_size,
        cfg.coarse_frames,
        cfg.seed,
        model_config.reference_dropout,
        notes_extractor=extractor if notes else None,
        augment_audio=cfg.augment_audio,
        note_noise=cfg.note_noise,
        shift=cfg.shift_augment,
        shift_reference=cfg.shift_reference,
        transpose=cfg.transpose_augment,
        transpose_prob=cfg.transpose_prob,
        pool=pool,
        motion_share=cfg.motion_share,
        audio=cfg.train_transcriber,
    )

    # 2. Model, optimizer, schedule. The keypoint head starts at the training set's mean pose.
    if cfg.init_from:
        model = KHPModel.from_pretrained(cfg.init_from, config=model_config)
    else:
        model = KHPModel(model_config)
        model.set_mean_pose(torch.from_numpy(np.concatenate([c.keypoints for c in train]).mean(0)))
        if notes:
            model.set_mean_keys(torch.from_numpy(np.mean([c.meta["keyboard_quads"] for c in train], 0)))
    if notes:  # real videos: no keyboard, no notes -> an error, or the model's own transcription
        label_with_transcription(model, [c for c in train + val if c.meta.get("notes") is None], is_main)
        if not cfg.train_transcriber:
            model.transcriber.requires_grad_(False)
    optimizer = adamw(model, cfg.learning_rate, cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    # 3. Resume: model, optimizer, scheduler and RNG states, and the step count.
    start = resume_step(accelerator, out_dir, resume)
    init_run(accelerator, cfg, out_dir, "khp")

    def validate(step: int) -> dict:
        accelerator.wait_for_everyone()
        metrics = {}
        if is_main:
            net = accelerator.unwrap_model(model)
            result = evaluate_predictor(lambda c: khp_predict(net, c.features, *reference_for(c, val)), val)
            metrics = flat_metrics(result)
            if notes:  # the true notes in: the motion decoder alone
                from_notes = evaluate_predictor(
                    lambda c: khp_predict(
                        net, c.features, *reference_for(c, val), piano_roll=c.piano_roll(), fps=c.meta["fps"]
                    ),
                    val,
                )
                metrics |= flat_metrics(from_notes, prefix="val_notes/")
            else:
                alone = evaluate_predictor(lambda c: khp_predict(net, c.features), val)
                metrics |= flat_metrics(alone, prefix="val_audio_only/")
            accelerator.log(metrics, step=step)
            net.train()
        accelerator.wait_for_everyone()
        return metrics

    # 4. Train. Ctrl-C / SIGTERM finishes the current step, checkpoints and exits: --resume goes on.
    with GracefulStop() as stop:
        model.train()
        bar = tqdm(
            range(start, cfg.steps), initial=start, total=cfg.steps, desc="train KHP", disable=not is_main
        )
        t0, running = time.time(), None
        for step in bar:
            for micro in range(cfg.gradient_accumulation_steps):
                batch = {
                    k: v.to(accelerator.device)
                    for k, v in sampler.batch(step, micro, accelerator.process_index).items()
                }
                with accelerator.accumulate(model):
                    out = model(**batch)
                    accelerator.backward(out.loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
            scheduler.step()
            loss = accelerator.reduce(out.loss.detach(), reduction="mean").item()
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss} at step {step}; lower learning_rate or check the data"
                )
            running = loss if running is None else 0.9 * running + 0.1 * loss
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                terms = accelerator.reduce(out.loss_terms, reduction="mean").tolist()
                log = step_log(loss, scheduler, done, start, t0)
                log |= {f"train/{n}": v for n, v in zip(KHPModel.loss_names, terms)}
                accelerator.log(log, step=done)
                bar.set_postfix(loss=f"{running:.4f}")
            if after_step(accelerator, stop, cfg, out_dir, done, bar, validate):
                return None

    # 5. Save the model (main process), its feature extractor and the resolved config.
    return save_final(accelerator, out_dir, cfg, model, extractor)


def main(argv: list[str] | None = None, doc: str | None = None) -> Path | None:
    """The command line of `scripts/train_khp.py`: `--config FILE`, `--resume [DIR]`, `--key=value`."""
    cfg, args = parse_args(TrainKHPConfig, argv, doc or __doc__)
    return train(cfg, resume=args.resume)
