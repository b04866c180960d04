#!/usr/bin/env python
"""Speed benchmarks, written as JSON + Markdown (never asserted in tests: machines here are noisy).

    python scripts/benchmark.py [pipeline] --output pipelines/apvg-virtual-pianist/benchmark.json
    python scripts/benchmark.py stu --model pipelines/apvg-virtual-pianist/stu \
        --resolutions 128 256 --output benchmarks/stu_cpu.json

`pipeline` (the default): audio -> mp4 with the whole pipeline (the embedded default unless --model),
streaming to a file as `apvg generate` does: frames/s and real-time factor (seconds of video per wall
second) at 128 and 256 (at a resolution other than its STU's: the same architecture with random weights;
speed does not depend on the weights) in float32 and under bfloat16 autocast, split by stage (audio decoding, features, KHP,
heatmaps, STU, encoding), the bf16-vs-fp32 difference of the frames, and the peak resident memory
of a fresh process for 10, 60 and 300 s of audio (the example audio, repeated).

`stu`: frames per second of STU inference as the pipeline runs it (`STUModel.render`: a few frames a
step with the GRU state carried, the maps rendered into the step's input, the frames back on the host),
batch 1, split into heatmap rendering and the network, in float32 and under bfloat16 autocast, on
whatever device it is given (`--device cuda` on a GPU, with `--batch-frames 16` or more). At a
resolution other than the model's, a model of the same architecture with random weights is timed
(speed does not depend on the weights). Ratios between rows come from one run on one machine.

    python scripts/benchmark.py stu --resolutions 128 256 512 --device cuda --batch-frames 16 \
        --output outputs/stu_gpu.json

`--variants` times architectures side by side (`stu` and `train-stu`): each is the model's config with
some keys changed, e.g. the released one against its light full-resolution path:

    python scripts/benchmark.py stu --variants concat=stem_kernel_size:3,skip_fusion:concat \
        light=stem_kernel_size:1,skip_fusion:add --precisions fp32 --output outputs/stu_variants.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from apvg_hf import STUModel


def _timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def bench_resolution(
    model: STUModel,
    frames: int,
    batch_frames: int,
    repeats: int,
    device: str,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
) -> list[dict]:
    """STU inference as the pipeline runs it (`STUModel.render`: `batch_frames` frames a step, the maps
    rendered into the step's input buffer, the GRU state carried, each step's frames back on the host),
    over `frames` frames of random poses; the maps alone are timed too."""
    res, C = model.config.resolution, model.config.num_keypoints + model.config.num_limbs
    g = torch.Generator().manual_seed(0)
    kp = (0.3 + 0.4 * torch.rand(1, frames, model.config.num_keypoints, 2, generator=g)).to(device)
    coarse = torch.rand(1, frames, 3, 32, 32, generator=g).to(device)
    ref = torch.rand(1, 3, res, res, generator=g).to(device)
    buffer = model.input_buffer(batch_frames, res, res, device)
    steps = range(0, frames - batch_frames + 1, batch_frames)

    def maps():
        for c in steps:
            model.render_heatmaps(kp[0, c : c + batch_frames], out=buffer[:, :C])
        _sync(device)

    t_maps = _timeit(maps, repeats) * frames / (len(steps) * batch_frames)
    rows = []
    for precision in precisions:
        dtype = torch.bfloat16 if precision == "bf16" else None

        def run(dtype=dtype):
            model.render(kp, None, coarse, ref, batch_frames=batch_frames, autocast_dtype=dtype)
            _sync(device)

        t_all = _timeit(run, repeats)
        rows.append(
            {
                "resolution": res,
                "precision": precision,
                "frames": frames,
                "batch_frames": batch_frames,
                "heatmaps_ms_per_frame": 1000 * t_maps / frames,
                "network_ms_per_frame": 1000 * max(t_all - t_maps, 0.0) / frames,
                "fps": frames / t_all,
                "real_time_factor_30fps": frames / t_all / 30,
            }
        )
        print(rows[-1])
    return rows


def _stu(model_dir: Path | None) -> STUModel:
    """The STU in `model_dir`, or the embedded pipeline's."""
    from apvg_hf import default_pipeline_path

    return STUModel.from_pretrained(model_dir or Path(default_pipeline_path()) / "stu")


def parse_variant(spec: str) -> tuple[str, dict]:
    """`name` or `name=key:value,key:value` -> (name, STU config overrides); values are read as JSON
    where they can (`top_convs:1`, `block_channels:[16,32,64]`), else as strings (`skip_fusion:add`)."""
    name, _, rest = spec.partition("=")
    if not name.strip():
        raise SystemExit(f"--variants: a variant needs a name, got {spec!r}")
    overrides = {}
    for item in filter(None, re.split(r",(?![^\[]*\])", rest)):  # commas outside [...] lists
        key, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"--variants: expected key:value in {spec!r}, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    return name.strip(), overrides


def _variant_configs(model_dir: Path | None, variants: list[str] | None):
    """The STU in `model_dir` (or the embedded one) and (variant name, config overrides) per variant;
    unknown keys (a typo would time the unchanged model under the variant's name) and resolution (set
    by --resolutions) are errors."""
    base = _stu(model_dir)
    parsed = [parse_variant(v) for v in variants or [(model_dir or Path("stu")).name]]
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise SystemExit(f"--variants: names must differ, got {names}")
    for name, overrides in parsed:
        if "resolution" in overrides:
            raise SystemExit(f"--variants {name}: set resolutions with --resolutions")
        if unknown := sorted(set(overrides) - set(base.config)):
            raise SystemExit(f"--variants {name}: unknown STU config keys {unknown}")
    return base, parsed


def _models(base: STUModel, parsed: list[tuple[str, dict]], resolution: int, fresh: bool = False):
    """(variant name, STU) per variant at `resolution`: the model as loaded where nothing changes (unless
    `fresh`), else the same architecture with the overrides and random weights (speed does not depend
    on the weights)."""
    # without the private keys: `_use_default_values` (keys missing from an older config.json) would
    # reset those keys to their defaults over the overrides
    config = {k: v for k, v in base.config.items() if not k.startswith("_")}
    for name, overrides in parsed:
        if not overrides and not fresh and resolution == base.config.resolution:
            yield name, base
            continue
        try:
            yield name, STUModel.from_config({**config, **overrides, "resolution": resolution})
        except (TypeError, ValueError) as e:
            raise SystemExit(f"--variants {name}: {e}") from None


def bench_stu(
    model_dir: Path | None,
    resolutions: list[int],
    frames: int,
    batch_frames: int,
    repeats: int,
    device: str,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    variants: list[str] | None = None,
) -> list[dict]:
    base, parsed = _variant_configs(model_dir, variants)
    rows = []
    for res in resolutions:
        for name, model in _models(base, parsed, res):
            new = bench_resolution(model.to(device).eval(), frames, batch_frames, repeats, device, precisions)
            rows += [{"variant": name, **r} for r in new]
    return rows


def bench_train_stu(
    model_dir: Path | None,
    resolutions: list[int],
    batch_size: int,
    window_frames: int,
    burn_in_frames: int,
    repeats: int,
    device: str,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    variants: list[str] | None = None,
) -> list[dict]:
    """Training steps/s of the STU generator as `apvg_hf.training.stu` takes them: burn-in frames without
    gradients, the scored window with them, the reconstruction losses (L1, SSIM, temporal), backward and
    an AdamW step, on random inputs of the training shapes (no data loading, no discriminator); a fresh
    model with random weights per resolution and `variants` entry (see `parse_variant`)."""
    from apvg_hf.training.stu_objective import reconstruction_losses

    base, parsed = _variant_configs(model_dir, variants)
    rows = []
    for res, (name, model) in ((r, v) for r in resolutions for v in _models(base, parsed, r, fresh=True)):
        model = model.to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(0)
        B, T, C = (
            batch_size,
            burn_in_frames + window_frames,
            model.config.num_keypoints + model.config.num_limbs,
        )
        kp = 0.3 + 0.4 * torch.rand(B * T, model.config.num_keypoints, 2, generator=g)
        m = model.map_resolution
        hm = model.render_heatmaps(kp).view(B, T, C, m, m).to(device)
        coarse = torch.rand(B, T, 3, 32, 32, generator=g).to(device)
        ref = torch.rand(B, 3, res, res, generator=g).to(device)
        real = torch.rand(B, window_frames, 3, res, res, generator=g).to(device)
        for precision in precisions:
            dtype = torch.bfloat16 if precision == "bf16" else None

            def step(dtype=dtype, model=model, opt=opt, hm=hm, coarse=coarse, ref=ref, real=real):
                with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                    state = None
                    if burn_in_frames:
                        with torch.no_grad():
                            state = model(hm[:, :burn_in_frames], coarse[:, :burn_in_frames], ref).state
                    fake = model(hm[:, burn_in_frames:], coarse[:, burn_in_frames:], ref, state=state).frames
                    loss = sum(reconstruction_losses(fake, real).values())
                loss.backward()
                opt.step()
                opt.zero_grad()
                _sync(device)

            t = _timeit(step, repeats)
            rows.append(
                {
                    "variant": name,
                    "resolution": res,
                    "precision": precision,
                    "batch_size": B,
                    "window_frames": window_frames,
                    "burn_in_frames": burn_in_frames,
                    "steps_per_s": 1.0 / t,
                    "ms_per_step": 1000 * t,
                }
            )
            print(rows[-1])
    return rows


def markdown_train(rows: list[dict], meta: dict) -> str:
    r0 = rows[0]
    lines = [
        f"STU training steps on {meta['device']} ({meta['threads']} threads): batch {r0['batch_size']} windows "
        f"of {r0['burn_in_frames']} burn-in + {r0['window_frames']} scored frames, generator forward, "
        f"reconstruction losses, backward and AdamW (no data loading, no discriminator); median of "
        f"{meta['repeats']}.",
        "",
        "| variant | resolution | precision | steps/s | ms/step |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['resolution']} | {r['precision']} | {r['steps_per_s']:.2f} | "
            f"{r['ms_per_step']:.0f} |"
        )
    return "\n".join(lines) + "\n"


EXAMPLE = Path(__file__).resolve().parents[1] / "spaces_demo" / "examples"


def example_audio(seconds: float, path: Path) -> Path:
    """`seconds` of the bundled example audio (repeated as needed) -> a wav file."""
    import numpy as np
    import soundfile as sf

    from apvg_hf.data.audio import load_audio

    src = sorted(EXAMPLE.glob("*.ogg"))
    if src:
        wave, sr = load_audio(src[0])
    else:  # a plain tone pattern if the examples are missing
        sr = 16000
        t = np.arange(4 * sr) / sr
        wave = (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.25 < 0.12)).astype(np.float32)
    n = int(seconds * sr)
    sf.write(path, np.resize(wave, n), sr, subtype="FLOAT")
    return path


def _pipeline(model: str | None, resolution: int):
    """(the pipeline, whether its STU is the trained one): at another resolution than its STU's, the same
    architecture (config) with random weights."""
    from apvg_hf import APVGPipeline, default_pipeline_path

    pipe = APVGPipeline.from_pretrained(model or default_pipeline_path())
    trained = resolution == pipe.stu.config.resolution
    if not trained:
        config = {k: v for k, v in pipe.stu.config.items() if not k.startswith("_")}
        pipe.register_modules(stu=STUModel.from_config({**config, "resolution": resolution}).eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe, trained


@torch.no_grad()
def bench_pipeline(
    model: str | None,
    resolutions: list[int],
    seconds: float,
    repeats: int,
    workdir: Path,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
    label: str = "this",
) -> list[dict]:
    import numpy as np

    audio = example_audio(seconds, workdir / f"audio_{seconds:g}s.wav")
    warm = example_audio(1.0, workdir / "warm-up.wav")
    rows, frames = [], {}
    for res in resolutions:
        pipe, trained = _pipeline(model, res)
        for precision in precisions:
            dtype = torch.bfloat16 if precision == "bf16" else None
            pipe(str(warm), output_type=None, show_progress=False, autocast_dtype=dtype)  # warm-up
            best = None
            for _ in range(
                repeats
            ):  # the fastest of `repeats` runs: the machine's noise only slows runs down
                t0 = time.perf_counter()
                out = pipe(
                    str(audio), output_path=workdir / "bench.mp4", output_type="np", autocast_dtype=dtype
                )
                wall = time.perf_counter() - t0
                if best is None or wall < best[0]:
                    best = (wall, dict(pipe.last_timings))
            wall, timings = best
            n = len(out.keypoints)
            frames[(res, precision)] = out.frames
            rows.append(
                {
                    "pipeline": label,
                    "resolution": res,
                    "precision": precision,
                    "seconds_of_audio": seconds,
                    "frames": n,
                    "wall_s": wall,
                    "fps": n / wall,
                    "real_time_factor": (n / out.fps) / wall,
                    "ms_per_frame": {k: 1000 * v / n for k, v in timings.items()},
                    "weights": "trained" if trained else "random (same architecture)",
                    "repeats": repeats,
                }
            )
            print(rows[-1])
        if {"fp32", "bf16"} <= set(precisions):
            a, b = frames[(res, "fp32")].astype(np.float64), frames[(res, "bf16")].astype(np.float64)
            mse = ((a - b) ** 2).mean()
            rows[-1]["bf16_vs_fp32_psnr_db"] = float(10 * np.log10(255**2 / max(mse, 1e-12)))
            rows[-1]["bf16_vs_fp32_max_abs"] = float(np.abs(a - b).max())
    return rows


def measure_memory(model: str | None, seconds: float, precision: str, workdir: Path) -> dict:
    """Peak RSS (VmHWM) of a fresh process running `apvg generate` on `seconds` of audio."""
    import subprocess

    audio = example_audio(seconds, workdir / f"mem_{seconds:g}s.wav")
    argv = ["generate", str(audio), "-o", str(workdir / "mem.mp4"), "-q", "--max-seconds", "1e9"]
    argv += (["--model", model] if model else []) + (["--bf16"] if precision == "bf16" else [])
    code = (
        "import json, re, sys, time\n"
        "def hwm():  # this address space's peak RSS (ru_maxrss would carry the parent's over exec)\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024\n"
        "from apvg_hf.cli import main\n"
        "imported = hwm()\n"
        "t = time.perf_counter()\n"
        f"rc = main({argv!r})\n"
        "print(json.dumps({'rc': rc, 'peak_rss_mb': hwm(), 'rss_after_imports_mb': imported,"
        " 'wall_s': time.perf_counter() - t}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    result = (
        json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"rc": proc.returncode}
    )
    if proc.returncode or result["rc"]:
        raise RuntimeError(f"memory run failed:\n{proc.stderr[-2000:]}")
    row = {"seconds_of_audio": seconds, "precision": precision, **result}
    row["real_time_factor"] = seconds / row["wall_s"]  # loading the models included
    print(row)
    return row


def pipeline_markdown(rows: list[dict], memory: list[dict], meta: dict) -> str:
    stages = list(rows[0]["ms_per_frame"])
    named = len({r.get("pipeline") for r in rows}) > 1  # --compare: a pipeline column
    lines = [
        f"Audio -> mp4 with the whole pipeline on {meta['device']} ({meta['threads']} threads), "
        f"{rows[0]['seconds_of_audio']:g} s of the example audio, streaming to a file. Real-time factor = "
        "seconds of video per wall second (>= 1: faster than real time). One run; ratios between rows are "
        "what to compare; each row is the fastest of "
        f"{rows[0]['repeats']} runs.",
        "",
        ("| pipeline " if named else "")
        + "| resolution | weights | precision | frames/s | real-time factor | "
        + " | ".join(f"{s} ms/frame" for s in stages)
        + " |",
        ("|---" if named else "") + "|---|---|---|---|---|" + "---|" * len(stages),
    ]
    for r in rows:
        lines.append(
            (f"| {r['pipeline']} " if named else "")
            + f"| {r['resolution']} | {r.get('weights', '')} | {r['precision']} | {r['fps']:.1f} | "
            f"{r['real_time_factor']:.2f} | "
            + " | ".join(f"{r['ms_per_frame'].get(s, 0):.1f}" for s in stages)
            + " |"
        )
    for r in rows:
        if "bf16_vs_fp32_psnr_db" in r:
            lines.append(
                f"\n{r['pipeline'] + ', ' if named else ''}at {r['resolution']}: bf16 frames vs fp32 frames: PSNR {r['bf16_vs_fp32_psnr_db']:.1f} dB, "
                f"largest difference {r['bf16_vs_fp32_max_abs']:.0f}/255."
            )
    if memory:
        lines += [
            "",
            "Peak resident memory (VmHWM) of a fresh process running `apvg generate` (models loaded, audio "
            f"-> mp4, {memory[0]['precision']}; the real-time factor includes loading the models):",
            "",
            "| audio | peak RSS MB | × the shortest | RSS after imports MB | real-time factor |",
            "|---|---|---|---|---|",
        ]
        shortest = min(memory, key=lambda m: m["seconds_of_audio"])["peak_rss_mb"]
        for m in memory:
            lines.append(
                f"| {m['seconds_of_audio']:g} s | {m['peak_rss_mb']:.0f} | {m['peak_rss_mb'] / shortest:.2f} | "
                f"{m['rss_after_imports_mb']:.0f} | "
                f"{m['real_time_factor']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "CPU"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"STU inference on {meta['device']} ({meta['threads']} threads), as the pipeline runs it: "
        f"{rows[0]['frames']} frames, {rows[0]['batch_frames']} a step, batch 1, the maps rendered into the "
        f"step's input, frames back on the host each step; median of {meta['repeats']}.",
        "",
        "| variant | resolution | precision | heatmaps ms/frame | network ms/frame | frames/s | × real time at 30 fps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['resolution']} | {r['precision']} | {r['heatmaps_ms_per_frame']:.1f} | "
            f"{r['network_ms_per_frame']:.1f} | {r['fps']:.1f} | {r['real_time_factor_30fps']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", choices=["pipeline", "stu", "train-stu"], default="pipeline")
    ap.add_argument(
        "--model", help="pipeline folder (pipeline) or STU folder (stu); default: the embedded one"
    )
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    ap.add_argument(
        "--compare", nargs="+", default=[], metavar="NAME=DIR",
        help="pipeline: more pipeline folders timed in the same run at the same resolutions (e.g. the "
        "previous release); the memory runs are --model's only",
    )  # fmt: skip
    ap.add_argument(
        "--variants", nargs="+", metavar="NAME[=KEY:VALUE,...]",
        help="stu, train-stu: architectures to time side by side, each the model's config with these "
        "overrides (random weights), e.g. base light=stem_kernel_size:1,skip_fusion:add",
    )  # fmt: skip
    ap.add_argument("--seconds", type=float, default=10.0, help="pipeline: audio length of the speed runs")
    ap.add_argument("--memory-seconds", type=float, nargs="*", default=[10, 60, 300],
                    help="pipeline: audio lengths of the memory runs (none: skip)")  # fmt: skip
    ap.add_argument("--memory-precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--frames", type=int, default=32, help="stu: frames per timed run")
    ap.add_argument("--batch-size", type=int, default=4, help="train-stu: windows per step (stu.yaml: 4)")
    ap.add_argument("--window-frames", type=int, default=6, help="train-stu: scored frames per window")
    ap.add_argument("--burn-in-frames", type=int, default=2, help="train-stu: burn-in frames per window")
    ap.add_argument(
        "--batch-frames",
        type=int,
        default=4,
        help="stu: frames per STU step (the pipeline's stu_batch; more on a GPU)",
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (stu: 5, median; pipeline: 2, fastest)"
    )
    ap.add_argument(
        "--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
        help="bf16 runs under autocast: fast on CPUs with AMX / AVX512-bf16 and on GPUs, slow elsewhere",
    )  # fmt: skip
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--output", type=Path, default=Path("outputs/benchmark.json"), help="results .json (a .md beside it)"
    )
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (2 if args.what == "pipeline" else 5)
    if args.variants and args.what == "pipeline":
        ap.error("--variants times STU architectures: use it with stu or train-stu")
    if args.compare and args.what != "pipeline":
        ap.error("--compare times other pipelines: use it with pipeline")
    for spec in args.compare:
        name, eq, folder = spec.partition("=")
        if not (eq and name and folder):
            ap.error(f"--compare takes NAME=DIR, got {spec!r}")
        if not (Path(folder) / "model_index.json").exists():
            ap.error(f"--compare {name}: {folder} is not a pipeline folder (no model_index.json)")
    torch.set_flush_denormal(True)
    try:
        return _run(args)
    finally:
        torch.set_flush_denormal(False)  # torch's default: a caller in the same process (a test) gets it back


def _run(args) -> dict:
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    meta = {
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": args.model,
        "compare": args.compare,
    }
    model_dir = Path(args.model) if args.model else None
    precisions = tuple(args.precisions)
    if args.what in ("stu", "train-stu"):
        if args.what == "stu":
            rows = bench_stu(
                model_dir,
                args.resolutions,
                args.frames,
                args.batch_frames,
                args.repeats,
                args.device,
                precisions,
                args.variants,
            )
        else:
            rows = bench_train_stu(
                model_dir, args.resolutions, args.batch_size, args.window_frames, args.burn_in_frames,
                args.repeats, args.device, precisions, args.variants,
            )  # fmt: skip
        meta["repeats"] = args.repeats
        md = (markdown if args.what == "stu" else markdown_train)(rows, meta)
        out = {"meta": meta, "rows": rows}
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            rows = bench_pipeline(
                args.model, args.resolutions, args.seconds, args.repeats, Path(tmp), precisions,
                label=Path(args.model).name if args.model else "embedded default",
            )  # fmt: skip
            for name, _, folder in (c.partition("=") for c in args.compare):
                rows += bench_pipeline(
                    folder, args.resolutions, args.seconds, args.repeats, Path(tmp), precisions, label=name
                )
            memory = [
                measure_memory(args.model, s, args.memory_precision, Path(tmp)) for s in args.memory_seconds
            ]
        out, md = {"meta": meta, "rows": rows, "memory": memory}, pipeline_markdown(rows, memory, meta)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2))
    args.output.with_suffix(".md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
