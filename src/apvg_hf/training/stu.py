"""Training an STU (keypoint heatmaps + coarse frames + reference -> frames): the config, the batches
and the loop behind `scripts/train_stu.py`.

Each training sample is a window of consecutive frames of one clip. The first `burn_in_frames` run
without gradients to warm up the ConvGRU state, the next `window_frames` are scored and
back-propagated through time (truncated BPTT). The inputs are ground-truth keypoints with noise
(a per-window shift and per-frame jitter) and degraded coarse frames, so the STU tolerates the
stage-1 predictions it will get. The appearance reference is a frame of another clip of the same
performance. Losses: L1 + (1 - SSIM) + temporal (frame differences) + a temporal PatchGAN (LSGAN).

Batches are a pure function of (seed, step, micro-step, process), rendered in DataLoader workers, and
checkpoints hold both models, both optimizers, the schedule and RNG states, so a resumed run
continues bit for bit. Writes `<output_dir>/model` (save_pretrained), `<output_dir>/checkpoints/step-N`,
TensorBoard logs with validation images.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..data.clips import load_clips, load_frames
from ..evaluation.frames import FrameMetrics, hand_boxes, stu_render
from ..evaluation.khp import performance_key, reference_source
from ..feature_extraction_apvg import APVGFeatureExtractor
from ..heatmaps import keypoints_to_heatmaps
from ..modeling_stu import STUModel, map_resolution
from .checkpoints import latest_checkpoint
from .config import MixedPrecision, kwargs_dataclass, load_config, save_config
from .loop import (
    GracefulStop,
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
from .stu_objective import PatchDiscriminator, discriminator_input, lsgan, pose_maps, reconstruction_losses

STUModelArgs = kwargs_dataclass(STUModel, module=__name__)
LOSS_NAMES = ("l1", "ssim", "temporal", "adversarial", "hands")


@dataclass
class DiscriminatorArgs:
    """The size of the PatchGAN discriminator (`stu_objective.PatchDiscriminator`)."""

    channels: int = 32  # channels of its first layer (doubled per layer, up to 8x)
    layers: int = 3  # stride-2 layers: a score per (2^layers)-pixel patch


@dataclass
class LossWeights:
    """The weight of each generator loss term (0: off)."""

    l1: float = 1.0
    ssim: float = 0.5  # 1 - SSIM
    temporal: float = 1.0  # L1 of frame differences
    adversarial: float = 0.02  # LSGAN against the discriminator
    hands: float = 0.0  # L1 inside a box around each visible hand (where hands PSNR is scored)


@dataclass
class TrainSTUConfig:
    """Everything an STU run depends on; a YAML recipe sets some fields, `--key=value` others."""

    dataset: list[str] | str = "data/virtual_pianist_small"  # folder(s) from scripts/build_dataset.py
    init_from: str | None = None  # start from a saved STU (fine-tuning) instead of a fresh one
    output_dir: str = "outputs/stu"
    model: STUModelArgs = field(default_factory=STUModelArgs)  # STUModel kwargs (unused with init_from)
    discriminator: DiscriminatorArgs = field(default_factory=DiscriminatorArgs)
    discriminator_frames: int = 2  # 2: temporal PatchGAN on (previous, current); 1: per frame (pix2pix)
    loss: LossWeights = field(default_factory=LossWeights)
    adversarial_start: int = 0  # step from which the adversarial loss counts
    steps: int = 2000
    batch_size: int = 4  # windows per process per micro-step
    gradient_accumulation_steps: int = 1
    window_frames: int = 6  # frames per window that are scored (truncated BPTT length)
    burn_in_frames: int = 2  # frames before them that only warm up the GRU state (no gradients)
    coarse_size: int = 32  # side of the coarse frames (as KHP predicts them)
    keypoint_noise: float = 0.002  # per-frame Gaussian jitter of every keypoint (fraction of the frame)
    keypoint_shift: float = 0.004  # per-window Gaussian offset of the whole skeleton
    coarse_noise: float = 0.03  # Gaussian noise on coarse frames (0-1 scale)
    coarse_dropout: float = 0.2  # windows whose coarse frames are replaced by the blurred reference
    learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    mixed_precision: MixedPrecision = (
        "no"  # no | bf16 | fp16 (accelerate launch --mixed_precision wins if given)
    )
    cpu: bool | None = None  # None: on CPU unless CUDA/XPU/MPS is there (several CPU processes need this)
    num_workers: int = 1  # DataLoader workers rendering heatmaps ahead of the model (0: in-process)
    seed: int = 0
    log_every: int = 10
    eval_every: int = 250
    eval_clips: int = 4  # validation clips rendered at each evaluation (0: all)
    eval_frames: int = 60  # frames per validation clip (from its start)
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    limit_clips: int | None = None  # use only the first N training clips (quick runs)
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps; --resume goes on


class WindowBatches(torch.utils.data.Dataset):
    """Item `step * accumulation + micro` is that micro-step's batch for this process: a pure
    function of (seed, step, micro, rank), rendered (heatmaps) in a DataLoader worker."""

    def __init__(self, clips, frames, cfg: TrainSTUConfig, model_config, rank: int):
        n = cfg.burn_in_frames + cfg.window_frames
        keep = [i for i, c in enumerate(clips) if c.num_frames >= n]
        if not keep:
            raise ValueError(f"no training clip has the {n} frames a window needs")
        self.clips, self.frames = [clips[i] for i in keep], [frames[i] for i in keep]
        self.cfg, self.mc, self.rank, self.n = cfg, model_config, rank, n
        lengths = np.array([c.num_frames for c in self.clips], dtype=np.float64)
        self.p = lengths / lengths.sum()
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(self.clips):
            groups.setdefault(performance_key(c), []).append(i)
        self.performance = [groups[performance_key(c)] for c in self.clips]

    def __len__(self) -> int:
        return self.cfg.steps * self.cfg.gradient_accumulation_steps

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg, n = self.cfg, self.n
        step, micro = divmod(index, cfg.gradient_accumulation_steps)
        rng = np.random.default_rng([cfg.seed, step, micro, self.rank])
        kps, vis, coarse, target, ref = [], [], [], [], []
        for i in rng.choice(len(self.clips), cfg.batch_size, p=self.p):
            c = self.clips[i]
            s = int(rng.integers(0, c.num_frames - n + 1))
            kp = c.keypoints[s : s + n] + rng.normal(0, cfg.keypoint_shift, (1, 1, 2))
            kps.append(kp + rng.normal(0, cfg.keypoint_noise, kp.shape))
            vis.append(c.visibility[s : s + n])
            target.append(self.frames[i][s : s + n])
            j = int(rng.choice(self.performance[i]))  # reference: any frame of the performance
            r = np.array(self.frames[j][int(rng.integers(0, len(self.frames[j])))])
            ref.append(r)
            if rng.random() < cfg.coarse_dropout:  # no usable coarse frames: the reference, blurred
                small = F.interpolate(torch.from_numpy(r[None]).float(), cfg.coarse_size, mode="area")[
                    0
                ].numpy()
                co = np.repeat(small[None] / 255.0, n, 0)
            else:
                co = c.coarse[s : s + n] / 255.0
            coarse.append(np.clip(co + rng.normal(0, cfg.coarse_noise, co.shape), 0, 1))
        kp = torch.from_numpy(np.stack(kps)).float()  # (B, n, K, 2)
        v = torch.from_numpy(np.stack(vis)).float()  # (B, n, K)
        mc = self.mc
        heatmaps = keypoints_to_heatmaps(
            kp, map_resolution(mc), visibility=v, sigma=mc.heatmap_sigma, limb_sigma=mc.limb_sigma
        )  # (B, n, K + L, R / p, R / p), p = pixel_shuffle
        out = {}
        if cfg.loss.hands:  # where the hands are (the keypoints drawn), in the boxes hands PSNR scores
            R, mask = mc.resolution, np.zeros((len(kps), n, 1, mc.resolution, mc.resolution), np.uint8)
            for b, (k, seen) in enumerate(zip(kps, vis)):
                for t, boxes in enumerate(hand_boxes(k, seen, R)):
                    for y0, x0, side in boxes:
                        mask[b, t, :, y0 : y0 + side, x0 : x0 + side] = 1
            out["hand_mask"] = torch.from_numpy(mask)  # (B, n, 1, R, R)
        return out | {
            "heatmaps": heatmaps,
            "coarse": torch.from_numpy(np.stack(coarse)).float(),  # (B, n, 3, s, s)
            "reference": torch.from_numpy(np.stack(ref)).float() / 255.0,  # (B, 3, R, R)
            "target": torch.from_numpy(np.stack(target)),  # (B, n, 3, R, R) uint8
        }


def image_grid(real: torch.Tensor, fake: torch.Tensor, columns: int = 6) -> torch.Tensor:
    """(T, 3, H, W) each -> (3, 2H, columns W): ground truth above, generated below."""
    idx = torch.linspace(0, len(real) - 1, columns).round().long()
    rows = [torch.cat(list(x[idx]), dim=-1) for x in (real, fake)]
    return torch.cat(rows, dim=-2).clamp(0, 1)


def train(cfg: TrainSTUConfig, resume: str | None = None) -> Path | None:
    """Train (or, with `resume` = 'latest' or a checkpoint folder, go on training) an STU.

    Returns `<output_dir>/model`, or None when the run stopped early (a signal or `stop_after`) after
    writing a checkpoint to go on from.
    """
    out_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg, out_dir)
    is_main = accelerator.is_main_process
    set_seed(cfg.seed)

    # 1. Model config and data: cached clip arrays and frames at the model's resolution.
    model = STUModel.from_pretrained(cfg.init_from) if cfg.init_from else STUModel(**asdict(cfg.model))
    mc = model.config
    extractor = APVGFeatureExtractor()  # only to key the clip cache; the STU does not hear the audio
    datasets_ = [cfg.dataset] if isinstance(cfg.dataset, str) else list(cfg.dataset)
    with accelerator.main_process_first():
        train, train_frames = [], []
        for d in datasets_:
            train += load_clips(d, "train", extractor, cfg.coarse_size, cfg.limit_clips, progress=is_main)
            train_frames += load_frames(d, "train", mc.resolution, cfg.limit_clips, progress=is_main)
        val = load_clips(datasets_[0], "validation", extractor, cfg.coarse_size, progress=is_main)
        val_frames = load_frames(datasets_[0], "validation", mc.resolution, progress=is_main)
    batches = WindowBatches(train, train_frames, cfg, mc, accelerator.process_index)
    val_ids = list(range(len(val)))[: cfg.eval_clips or None]

    # 2. Models, optimizers (Adam, beta1 = 0.5 as in pix2pix), schedule.
    disc = PatchDiscriminator(frames=cfg.discriminator_frames, **asdict(cfg.discriminator))
    opt_g = torch.optim.AdamW(
        model.parameters(), lr=cfg.learning_rate, betas=(0.5, 0.999), weight_decay=cfg.weight_decay
    )
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.discriminator_learning_rate, betas=(0.5, 0.999))
    scheduler = get_cosine_schedule_with_warmup(opt_g, cfg.warmup_steps, cfg.steps)
    adversarial = cfg.loss.adversarial > 0
    model, disc, opt_g, opt_d = accelerator.prepare(model, disc, opt_g, opt_d)
    accelerator.register_for_checkpointing(scheduler)

    # 3. Resume: both models, optimizers, the schedule and RNG states, and the step count.
    start = resume_step(accelerator, out_dir, resume)
    init_run(accelerator, cfg, out_dir, "stu")
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start * cfg.gradient_accumulation_steps, len(batches)),
        num_workers=cfg.num_workers,
        prefetch_factor=2 if cfg.num_workers else None,
        persistent_workers=False,
        worker_init_fn=ignore_stop_signals,  # a signal to the process group: the main process stops
    )

    def validate(step: int) -> dict:
        accelerator.wait_for_everyone()
        metrics = {}
        if is_main:
            net = accelerator.unwrap_model(model)
            fm = FrameMetrics()
            for k, i in enumerate(val_ids):
                c, T = val[i], min(cfg.eval_frames, val[i].num_frames)
                src, t = reference_source(c, val)
                fake = stu_render(net, c.keypoints[:T], c.visibility[:T], c.coarse[:T], val_frames[src][t])
                real = torch.from_numpy(np.array(val_frames[i][:T]))
                fm.update(fake, real, c.keypoints[:T], c.visibility[:T])
                if k == 0:
                    writer = accelerator.get_tracker("tensorboard", unwrap=True)
                    writer.add_image(
                        "val/ground_truth_vs_generated", image_grid(real.float() / 255, fake), step
                    )
            metrics = {f"val/{k}": v for k, v in fm.compute().items() if k != "frames"}
            accelerator.log(metrics, step=step)
            net.train()
        accelerator.wait_for_everyone()
        return metrics

    # 4. Train. Ctrl-C / SIGTERM finishes the current step, checkpoints, stops the DataLoader workers
    # and returns: --resume goes on.
    weights = asdict(cfg.loss)
    K, B0 = mc.num_keypoints, cfg.burn_in_frames
    with GracefulStop() as stop, closing_loader(loader) as data:
        model.train()
        disc.train()
        bar = tqdm(
            range(start, cfg.steps), initial=start, total=cfg.steps, desc="train STU", disable=not is_main
        )
        t0, running = time.time(), None
        for step in bar:
            use_adv = adversarial and step >= cfg.adversarial_start
            for _ in range(cfg.gradient_accumulation_steps):
                batch = {k: v.to(accelerator.device) for k, v in next(data).items()}
                hm, coarse, ref = batch["heatmaps"], batch["coarse"], batch["reference"]
                real = batch["target"][:, B0:].float() / 255.0  # (B, T, 3, R, R)
                with accelerator.accumulate(model, disc):
                    # Generator: burn-in without gradients, then the scored window (TBPTT).
                    state = None
                    if B0:
                        with torch.no_grad():
                            state = model(hm[:, :B0], coarse[:, :B0], ref).state
                    fake = model(hm[:, B0:], coarse[:, B0:], ref, state=state).frames  # (B, T, 3, R, R)
                    mask = batch["hand_mask"][:, B0:] if "hand_mask" in batch else None
                    terms = reconstruction_losses(fake, real, mask)
                    poses = pose_maps(hm[:, B0:], K)  # (B, T, 2, R / p, R / p)
                    if poses.shape[-2:] != real.shape[-2:]:  # pixel-shuffle STUs: up to the frames' R
                        poses = F.interpolate(
                            poses.flatten(0, 1), size=real.shape[-2:], mode="bilinear", align_corners=False
                        ).unflatten(0, poses.shape[:2])
                    if use_adv:  # the discriminator, frozen, judges the fakes (no DDP sync for it here)
                        d = accelerator.unwrap_model(disc).requires_grad_(False)
                        d_in = discriminator_input(fake, poses.to(fake.dtype), cfg.discriminator_frames)
                        terms["adversarial"] = lsgan(d(d_in), real=True)
                        d.requires_grad_(True)
                    else:
                        terms["adversarial"] = fake.new_zeros(()).float()
                    loss_g = sum(weights[k] * terms[k] for k in LOSS_NAMES)
                    accelerator.backward(loss_g)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    opt_g.step()
                    opt_g.zero_grad()
                    # Discriminator: real and (detached) fake windows in one call.
                    if use_adv:
                        both = torch.cat([real.to(fake.dtype), fake.detach()])
                        scores = disc(
                            discriminator_input(
                                both, torch.cat([poses, poses]).to(fake.dtype), cfg.discriminator_frames
                            )
                        )
                        n_real = len(scores) // 2
                        loss_d = 0.5 * (lsgan(scores[:n_real], True) + lsgan(scores[n_real:], False))
                        accelerator.backward(loss_d)
                        opt_d.step()
                        opt_d.zero_grad()
            scheduler.step()
            loss = accelerator.reduce(loss_g.detach(), reduction="mean").item()
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss} at step {step}; lower learning_rate or check the data"
                )
            running = loss if running is None else 0.9 * running + 0.1 * loss
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                vals = accelerator.reduce(
                    torch.stack([terms[k].detach().float() for k in LOSS_NAMES]), "mean"
                )
                log = step_log(loss, scheduler, done, start, t0)
                log |= {f"train/{k}": v for k, v in zip(LOSS_NAMES, vals.tolist())}
                if use_adv:
                    log["train/discriminator"] = accelerator.reduce(loss_d.detach(), "mean").item()
                accelerator.log(log, step=done)
                bar.set_postfix(loss=f"{running:.4f}")
            if after_step(accelerator, stop, cfg, out_dir, done, bar, validate):
                return None

    # 5. Save the STU (main process) and the resolved config; the discriminator stays in the checkpoints.
    return save_final(accelerator, out_dir, cfg, model)


def export_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """`<run_dir>/model` from a checkpoint of a run that stopped early (a signal or `stop_after`; the newest
    checkpoint unless one is named): the STU as `save_pretrained` writes it and the run's config with
    `stop_after` set to the checkpoint's step, so the recipe that gave these weights is on record."""
    run_dir = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if ckpt is None or not (ckpt / "trainer_state.json").exists():
        raise FileNotFoundError(f"no complete checkpoint in {run_dir / 'checkpoints'} ({ckpt})")
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    cfg = load_config(TrainSTUConfig, run_dir / "train_config.yaml")
    model = STUModel.from_pretrained(cfg.init_from) if cfg.init_from else STUModel(**asdict(cfg.model))
    model.load_state_dict(load_file(ckpt / "model.safetensors"))  # strict: the same architecture
    cfg.stop_after = step
    out = run_dir / "model"
    model.save_pretrained(out)
    save_config(cfg, out / "train_config.yaml")
    return out


def main(argv: list[str] | None = None, doc: str | None = None) -> Path | None:
    """The command line of `scripts/train_stu.py`: `--config FILE`, `--resume [DIR]`, `--key=value`."""
    cfg, args = parse_args(TrainSTUConfig, argv, doc or __doc__)
    return train(cfg, resume=args.resume)
