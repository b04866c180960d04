"""Training a note-aware KHP's transcriber alone, on piano audio rendered from the music corpus: the
config, the windows and the loop behind `scripts/train_transcriber.py`.

    cfg = load_config(TrainTranscriberConfig, "pipelines/apvg-virtual-pianist/khp_transcriber.yaml")
    model_dir = train(cfg)  # or main(["--config", "...", "--steps=10"])

Why a separate stage: the transcriber needs audio and notes, not video. The virtual-pianist datasets
render a few dozen pieces as video; the corpus has ~380 pieces whose notes render to audio at ~100x
real time. Each training window is a fresh performance: a random piece and place in it, tempo,
timing and velocity varied (`augment_notes`), transposed by up to `transpose` semitones on the 88
keys (the datasets play mostly the middle of the keyboard; real music does not), rendered with one of
the training SoundFonts, then coloured like a recording (gain, EQ, reverb, noise: `augment_audio`).
The rest of the KHP is frozen: the motion decoder plays the decoded notes, so it needs no retraining.

Never heard: the pieces outside the training split (`piece_split`, the same in every dataset), the
validation and test pieces of every dataset in `held_out_from` (so the KHP's scores on them stay
held out), `exclude_pieces`, and any SoundFont not in `soundfonts` (Csound's bank stays a
held-out timbre). Validation transcribes `held_out_from[0]`'s validation clips (their own audio).
After training, the decoding thresholds are chosen on those clips (onset F1) when
`tune_thresholds` is on. Windows are a pure function of (seed, process, index) and checkpoints hold
the optimizer and RNG states, so a resumed run continues like an uninterrupted one.
Writes `<output_dir>/model` (the whole KHP, only its transcriber changed, + feature extractor).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..data.augment import augment_audio
from ..data.clips import load_clips
from ..data.music import augment_notes, load_piece_notes
from ..data.virtual_pianist import held_out_pieces, training_pieces
from ..evaluation.transcription import aggregate, clip_reference_notes, note_metrics
from ..feature_extraction_apvg import APVGFeatureExtractor
from ..midi import available_soundfonts, render_notes
from ..modeling_khp import KHPModel, transcription_loss
from ..piano_roll import LOWEST_PITCH, NUM_KEYS, notes_to_roll, roll_to_notes
from .config import MixedPrecision
from .loop import (
    GracefulStop,
    adamw,
    after_step,
    closing_loader,
    ignore_stop_signals,
    init_run,
    make_accelerator,
    parse_args,
    resume_step,
    save_final,
    step_log,
)

HIGHEST_PITCH = LOWEST_PITCH + NUM_KEYS - 1


@dataclass
class TrainTranscriberConfig:
    """Everything a transcriber run depends on; a YAML recipe sets some fields, `--key=value` others."""

    init_from: str = ""  # a note-aware KHP folder (its feature extractor is used as saved)
    output_dir: str = "outputs/khp-transcriber"
    # datasets (scripts/build_dataset.py) whose validation and test pieces are never heard in
    # training; the first one's validation clips score the run
    held_out_from: list[str] | str = "data/virtual_pianist_medium"
    exclude_pieces: list[str] = field(default_factory=list)  # further corpus pieces never heard
    pieces: list[str] = field(default_factory=list)  # only these corpus pieces (quick runs; default all)
    soundfonts: list[str] = field(default_factory=lambda: ["timgm6mb", "fluidr3"])  # those present are used
    keyboard_share: float = 0.5  # share of windows from keyboard pieces (the rest: chorales)
    transpose: int = 12  # up to this many semitones either way, kept on the 88 keys
    context_s: float = 1.0  # audio rendered before each window (heard, not scored)
    augment_audio: bool = True
    steps: int = 3000
    batch_size: int = 8
    window_frames: int = 160
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    mixed_precision: MixedPrecision = "no"
    cpu: bool | None = None
    gradient_accumulation_steps: int = 1
    num_workers: int = 1  # DataLoader processes rendering windows (0: in the training process)
    seed: int = 0
    log_every: int = 10
    eval_every: int = 500
    eval_clips: int = 0  # validation clips scored (0: all)
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    tune_thresholds: bool = True  # choose onset/frame thresholds on the validation clips at the end
    stop_after: int | None = None


class RenderedWindows(torch.utils.data.Dataset):
    """Item i: a training window rendered from the corpus, (features (W, F), piano roll (W, 88, 3)),
    a pure function of (seed, rank, i)."""

    def __init__(
        self,
        pieces: dict[str, list[str]],
        extractor: APVGFeatureExtractor,
        soundfonts: list[str],
        window_frames: int,
        *,
        keyboard_share: float = 0.5,
        transpose: int = 12,
        context_s: float = 1.0,
        augment: bool = True,
        seed: int = 0,
        rank: int = 0,
    ):
        kinds = [k for k in ("keyboard", "chorale") if pieces.get(k)]
        if not kinds:
            raise ValueError("no corpus pieces left to train on")
        if not soundfonts:
            raise ValueError("no training SoundFont is on this machine")
        self.pieces, self.kinds, self.extractor, self.soundfonts = pieces, kinds, extractor, soundfonts
        share = keyboard_share if len(kinds) == 2 else 1.0
        self.kind_p = [share, 1 - share][: len(kinds)]
        self.W, self.transpose, self.augment = window_frames, transpose, augment
        self.seed, self.rank = seed, rank
        self.fps, self.sr = extractor.fps, extractor.sampling_rate
        self.context = int(round(context_s * self.fps))
        self._notes: dict[str, list] = {}

    def __len__(self) -> int:  # indices are drawn by the sampler; any non-negative one is valid
        return 2**62

    def notes(self, piece_id: str) -> list:
        if piece_id not in self._notes:
            self._notes[piece_id] = load_piece_notes(piece_id)
        return self._notes[piece_id]

    def performance(self, rng: np.random.Generator) -> list[dict]:
        """A window's notes: a random piece and place, varied and transposed, times from the
        start of the rendered audio (context included)."""
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_p))]
        piece = self.pieces[kind][int(rng.integers(len(self.pieces[kind])))]
        tempo = float(np.exp(rng.uniform(np.log(0.75), np.log(1.3))))
        notes = augment_notes(
            self.notes(piece),
            tempo=tempo,
            timing_jitter_s=float(rng.uniform(0.005, 0.015)),
            velocity_jitter=float(rng.uniform(4.0, 12.0)),
            rng=rng,
        )
        span = (self.context + self.W) / self.fps
        end = max(n.offset for n in notes)
        t0 = float(rng.uniform(-0.5 * span, max(end - 0.5 * span, 0.0)))
        window = [n for n in notes if t0 <= n.onset < t0 + span]
        lo = min((n.pitch for n in window), default=60)
        hi = max((n.pitch for n in window), default=60)
        k = int(
            rng.integers(max(-self.transpose, LOWEST_PITCH - lo), min(self.transpose, HIGHEST_PITCH - hi) + 1)
        )
        return [
            {"pitch": n.pitch + k, "onset": n.onset - t0, "offset": n.offset - t0, "velocity": n.velocity}
            for n in window
        ]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, int(i)])
        notes = self.performance(rng)
        frames = self.context + self.W
        soundfont = self.soundfonts[int(rng.integers(len(self.soundfonts)))]
        wave = render_notes(notes, sampling_rate=self.sr, soundfont=soundfont, duration=frames / self.fps)
        if self.augment:
            wave = augment_audio(wave, self.sr, rng)
        feats = self.extractor(wave, sampling_rate=self.sr, fps=self.fps)["input_features"][0]  # (frames, F)
        roll = notes_to_roll(notes, frames, self.fps)  # (frames, 88, 3)
        cut = slice(self.context, frames)
        return torch.from_numpy(feats[cut].astype(np.float32)), torch.from_numpy(roll[cut])


def transcribe_clips(model: KHPModel, clips) -> list[np.ndarray]:
    """Note probabilities (T, 88, 3) of each clip's audio features."""
    return [model.transcribe(torch.from_numpy(np.array(c.features)))[0].numpy() for c in clips]


def score(probs: list[np.ndarray], clips, onset_threshold: float, frame_threshold: float) -> dict:
    """mir_eval note metrics of the decoded probabilities against the clips' notes, summed over clips."""
    results = []
    for p, c in zip(probs, clips):
        est = roll_to_notes(p, c.meta["fps"], onset_threshold, frame_threshold)
        results.append(note_metrics(clip_reference_notes(c), est))
    return aggregate(results)


def choose_thresholds(
    probs: list[np.ndarray],
    clips,
    onset: tuple[float, ...] = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6),
    frame: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5),
) -> tuple[float, float, dict]:
    """The (onset, frame) thresholds with the best onset F1 (then onset+offset F1) on the clips."""
    best = None
    for o in onset:
        for f in frame:
            m = score(probs, clips, o, f)
            key = (m["onset"]["f1"], m["onset_offset"]["f1"])
            if best is None or key > best[0]:
                best = (key, o, f, m)
    return best[1], best[2], best[3]


def train(cfg: TrainTranscriberConfig, resume: str | None = None) -> Path | None:
    """Train (or, with `resume`, go on training) the transcriber of `cfg.init_from`. Returns
    `<output_dir>/model`, or None when the run stopped early after writing a checkpoint."""
    if not cfg.init_from:
        raise ValueError("init_from: name the note-aware KHP whose transcriber to train")
    out_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg, out_dir)
    is_main = accelerator.is_main_process
    set_seed(cfg.seed)

    # 1. Model: only the transcriber learns.
    model = KHPModel.from_pretrained(cfg.init_from)
    if not model.uses_notes:
        raise ValueError(f"{cfg.init_from} has no transcriber (architecture {model.config.architecture!r})")
    extractor = APVGFeatureExtractor.from_pretrained(cfg.init_from)
    model.requires_grad_(False)
    transcriber = model.transcriber.requires_grad_(True).train()

    # 2. Data: windows rendered from the corpus, minus every held-out piece; validation clips.
    datasets_ = [cfg.held_out_from] if isinstance(cfg.held_out_from, str) else list(cfg.held_out_from)
    held_out = held_out_pieces(datasets_)
    pieces = training_pieces(held_out, cfg.exclude_pieces, cfg.pieces)
    soundfonts = [s for s in cfg.soundfonts if s in available_soundfonts()]
    windows = RenderedWindows(
        pieces,
        extractor,
        soundfonts,
        cfg.window_frames,
        keyboard_share=cfg.keyboard_share,
        transpose=cfg.transpose,
        context_s=cfg.context_s,
        augment=cfg.augment_audio,
        seed=cfg.seed,
        rank=accelerator.process_index,
    )
    with accelerator.main_process_first():
        val = load_clips(datasets_[0], "validation", extractor, model.config.coarse_size, progress=is_main)
    val = val[: cfg.eval_clips] if cfg.eval_clips else val
    accelerator.print(
        f"training on {len(pieces['keyboard'])} keyboard pieces and {len(pieces['chorale'])} chorales "
        f"({len(held_out)} held out), SoundFonts {soundfonts}"
    )

    optimizer = adamw(transcriber, cfg.learning_rate, cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    transcriber, optimizer = accelerator.prepare(transcriber, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    # 3. Resume, then the loader from the resumed step on.
    start = resume_step(accelerator, out_dir, resume)
    init_run(accelerator, cfg, out_dir, "transcriber")
    micro = cfg.batch_size * cfg.gradient_accumulation_steps
    loader = torch.utils.data.DataLoader(
        windows,
        batch_size=cfg.batch_size,
        sampler=range(start * micro, cfg.steps * micro),  # window indices: exact resume
        num_workers=cfg.num_workers,
        worker_init_fn=ignore_stop_signals if cfg.num_workers else None,
        prefetch_factor=4 if cfg.num_workers else None,
    )
    net = accelerator.unwrap_model(transcriber)

    def validate(step: int) -> dict:
        accelerator.wait_for_everyone()
        metrics = {}
        if is_main:
            c = model.config
            m = score(transcribe_clips(model, val), val, c.onset_threshold, c.frame_threshold)
            metrics = {f"val/onset_{k}": m["onset"][k] for k in ("precision", "recall", "f1")}
            metrics["val/onset_offset_f1"] = m["onset_offset"]["f1"]
            accelerator.log(metrics, step=step)
        net.train()
        accelerator.wait_for_everyone()
        return metrics

    # 4. Train. Ctrl-C / SIGTERM finishes the step, checkpoints and exits: --resume goes on.
    with GracefulStop() as stop, closing_loader(loader) as batches:
        bar = tqdm(
            range(start, cfg.steps),
            initial=start,
            total=cfg.steps,
            desc="train transcriber",
            disable=not is_main,
        )
        t0, running = time.time(), None
        for step in bar:
            for _ in range(cfg.gradient_accumulation_steps):
                feats, roll = (t.to(accelerator.device) for t in next(batches))  # (B, W, F), (B, W, 88, 3)
                with accelerator.accumulate(transcriber):
                    loss = transcription_loss(transcriber(feats), roll)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(transcriber.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
            scheduler.step()
            value = accelerator.reduce(loss.detach(), reduction="mean").item()
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}; lower learning_rate")
            running = value if running is None else 0.9 * running + 0.1 * value
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                accelerator.log(step_log(value, scheduler, done, start, t0), step=done)
                bar.set_postfix(loss=f"{running:.4f}")
            if after_step(accelerator, stop, cfg, out_dir, done, bar, validate):
                return None

    # 5. Thresholds chosen on the validation clips, then the whole KHP saved.
    if is_main and cfg.tune_thresholds:
        o, f, m = choose_thresholds(transcribe_clips(model, val), val)
        model.config.onset_threshold, model.config.frame_threshold = o, f
        accelerator.print(
            f"thresholds chosen on validation: onset {o}, frame {f} (onset F1 {m['onset']['f1']:.3f})"
        )
    return save_final(accelerator, out_dir, cfg, model.eval(), extractor)


def main(argv: list[str] | None = None, doc: str | None = None) -> Path | None:
    """The command line of `scripts/train_transcriber.py`: `--config FILE`, `--resume [DIR]`, `--key=value`."""
    cfg, args = parse_args(TrainTranscriberConfig, argv, doc or __doc__)
    return train(cfg, resume=args.resume)
