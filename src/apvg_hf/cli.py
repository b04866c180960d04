"""`apvg`: the command line.

    apvg generate etude.wav -o etude.mp4 [--model M] [--fps N] [--overlay | --layout side-by-side]
    apvg generate etude.mid -o etude.mp4 [--highlight-keys]     (a MIDI file: .mid/.midi, or --midi)
    apvg preprocess VIDEO... -o DATASET [--performer NAME] [--crop X0 Y0 SIDE] [--keyboard-corners ...]
    apvg info [--model M]
    apvg push FOLDER OWNER/NAME [--dataset] [--private]

`--model` takes a pipeline folder or a Hub repo id; the default is the embedded pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _load(model: str | None, device: str | None, quiet: bool):
    from .pipeline_apvg import APVGPipeline
    from .pipeline_performance_video import default_pipeline_path

    if quiet:
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
    pipe = APVGPipeline.from_pretrained(model or default_pipeline_path())
    pipe.set_progress_bar_config(disable=quiet, desc="generating", unit="chunk")
    return pipe.to(device) if device else pipe


def cmd_generate(args) -> int:
    import torch

    from .midi import read_midi
    from .pipeline_performance_video import is_midi
    from .video_io import audio_duration, check_output_path, load_audio

    # Bad input fails in a blink, before the models load: the file, then the output path.
    audio = Path(args.audio)
    music = {"audio": str(audio)}
    if args.midi or is_midi(audio):
        music = {"notes": read_midi(audio)}  # raises the clear error (missing, not MIDI, no notes)
    else:
        seconds = audio_duration(audio) if audio.is_file() and audio.stat().st_size else None
        if seconds is None:
            load_audio(audio)  # raises the clear error (missing, a directory, empty, undecodable), or decodes
        elif seconds == 0:
            raise ValueError(f"cannot load audio {audio}: the file holds no samples")
    out = check_output_path(args.output or audio.with_suffix(".mp4"))
    t0 = time.perf_counter()
    pipe = _load(args.model, args.device, args.quiet)
    if args.no_hand_anchor:
        pipe.khp.config.hand_anchor = None
    t1 = time.perf_counter()
    result = pipe(
        **music,
        fps=args.fps,
        chunk_seconds=args.chunk_seconds,
        output_type=None,  # frames go straight to the file: memory stays flat
        output_path=out,
        video_layout="overlay" if args.overlay else args.layout,
        video_size=args.size,
        highlight_keys=args.highlight_keys,
        max_seconds=args.max_seconds,
        autocast_dtype=torch.bfloat16 if args.bf16 else None,
        show_progress=not args.quiet,
    )
    t2 = time.perf_counter()
    seconds = len(result.keypoints) / result.fps
    if not args.quiet:
        print(
            f"wrote {out}: {len(result.keypoints)} frames at {result.fps:g} fps ({seconds:.1f} s) in "
            f"{t2 - t1:.1f} s ({seconds / (t2 - t1):.2f}x real time; loading {t1 - t0:.1f} s)"
        )
    return 0


def cmd_info(args) -> int:
    pipe = _load(args.model, None, True)
    fe = pipe.feature_extractor
    print(f"pipeline: {pipe.name_or_path}")
    print(f"  features: {fe.feature_size} log-mel bands at {fe.sampling_rate} Hz, {fe.fps:g} fps")
    for name in ("khp", "stu", "reference"):
        m = getattr(pipe, name)
        print(f"  {name}: {type(m).__name__}, {sum(p.numel() for p in m.parameters()):,} parameters")
    print(f"  output: {pipe.stu.config.resolution}x{pipe.stu.config.resolution} frames")
    anchor = getattr(pipe.khp.config, "hand_anchor", None)
    if anchor:
        print(
            f"  hand anchoring: on (σ {anchor['sigma_s']:g} s, dead zone {anchor['dead_zone_keys']:g} white keys)"
        )
    return 0


def cmd_push(args) -> int:
    from .hub import push_dataset, push_pipeline_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        raise ValueError(f"no such folder: {folder}")
    if args.dataset:
        url = push_dataset(folder, args.repo_id, private=args.private)
    else:
        from .pipeline_apvg import APVGPipeline

        url = push_pipeline_folder(folder, args.repo_id, APVGPipeline.from_pretrained, private=args.private)
    print(f"pushed {folder} -> {url}")
    return 0


def cmd_preprocess(args) -> int:
    from .data.real import PreprocessConfig, preprocess_videos

    opts = {
        k: v for k, v in vars(args).items() if k in PreprocessConfig.__dataclass_fields__ and v is not None
    }
    cfg = PreprocessConfig(**opts)
    for v in args.videos:
        if not Path(v).is_file():
            raise FileNotFoundError(f"no video at {v}")
    report = preprocess_videos(args.videos, args.output, cfg, progress=not args.quiet)
    if not args.quiet:
        for v in report["videos"]:
            d, a = v["detections"], v["audio_motion"]
            print(
                f"{v['video']}: {d['frames']} frames, crop {v['crop']['mode']} {v['crop']['first_box_x0_y0_side']}, "
                f"hands found {d['left_hand_found_fraction']:.0%} (left) {d['right_hand_found_fraction']:.0%} (right), "
                f"{d['hands_swapped']} swapped, {d['hands_duplicated']} duplicated; motion follows the sound "
                f"best at {a['best_lag_frames']:+d} frames (r = {a['correlation_at_best']:.2f})"
            )
        print(f"wrote {args.output}: clips {report['clips']} (preview.png, preprocess.json inside)")
    return 0


def add_preprocess_arguments(ap: argparse.ArgumentParser) -> None:
    """`apvg preprocess` / `scripts/preprocess.py` options: the fields of `PreprocessConfig`."""
    from .data.real import PreprocessConfig

    d = PreprocessConfig()
    ap.add_argument("videos", nargs="+", help="performance videos with sound (any format PyAV reads)")
    ap.add_argument("-o", "--output", required=True, type=Path, help="the dataset folder to write")
    ap.add_argument("--performer", help=f"who plays: the appearance column (default {d.performer!r})")
    ap.add_argument("--licence", help="the footage's licence, recorded in every row")
    ap.add_argument("--title", help="the title column (default: the file name)")
    ap.add_argument("--composer")
    ap.add_argument("--size", type=int, help=f"side of the output frames (default {d.size})")
    ap.add_argument("--crop", type=int, nargs=3, metavar=("X0", "Y0", "SIDE"),
                    help="a fixed square crop in source pixels (default: found around the performer)")  # fmt: skip
    ap.add_argument("--crop-mode", choices=["auto", "fixed", "tracked"], help="automatic crop kind")
    ap.add_argument("--crop-margin", type=float, help=f"default {d.crop_margin}")
    ap.add_argument("--keyboard-corners", type=float, nargs=8, metavar="XY",
                    help="source pixels x y of: the front edge at A0 (lowest key), the front edge at C8, "
                         "the back edge at C8, the back edge at A0 (front: the performer's side)")  # fmt: skip
    ap.add_argument("--keyboard-transpose", type=int, metavar="SEMITONES",
                    help="the instrument sounds this many semitones above the key pressed (an octave "
                         "shift: 12); scripts/calibrate_keyboard.py measures it")  # fmt: skip
    ap.add_argument("--audio-offset-seconds", type=float, help="shift the audio (positive: later)")
    ap.add_argument("--clip-seconds", type=float, help=f"default {d.clip_seconds}")
    ap.add_argument("--test-seconds", type=float, help=f"the end of each video (default {d.test_seconds})")
    ap.add_argument(
        "--validation-seconds", type=float, help=f"before the test part (default {d.validation_seconds})"
    )
    ap.add_argument(
        "--gap-seconds", type=float, help=f"dropped at split boundaries (default {d.gap_seconds})"
    )
    ap.add_argument(
        "--max-gap-seconds", type=float, help=f"longest hand gap kept visible (default {d.max_gap_seconds})"
    )
    ap.add_argument("--smooth-sigma-frames", type=float, help=f"default {d.smooth_sigma_frames}")
    ap.add_argument("-q", "--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="apvg", description="Audio-driven performance video generation.")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="audio or MIDI -> mp4 of the performer playing it")
    g.add_argument("audio", help="an audio file (wav, flac, ogg, mp3) or a MIDI file (.mid, .midi)")
    g.add_argument("--midi", action="store_true", help="the input is a MIDI file, whatever its suffix")
    g.add_argument("-o", "--output", type=Path, help="the mp4 to write (default: next to the audio)")
    g.add_argument("--model", help="a pipeline folder or Hub repo id (default: the embedded pipeline)")
    g.add_argument("--fps", type=float, help="output frame rate (default: the model's)")
    g.add_argument("--overlay", action="store_true", help="draw the predicted skeleton on the frames")
    g.add_argument("--layout", choices=["frames", "overlay", "side-by-side"], default="frames",
                   help="side-by-side: stage 1 (coarse frame + skeleton) | stage 2")  # fmt: skip
    g.add_argument("--highlight-keys", action="store_true", help="light the keys that sound (MIDI input)")
    g.add_argument(
        "--size", type=int, help="resize the video to SIZE x SIZE per panel (default: the model's)"
    )
    g.add_argument("--chunk-seconds", type=float, default=5.0, help="audio per step (memory, not results)")
    g.add_argument("--max-seconds", type=float, default=3600.0, help="refuse longer audio")
    g.add_argument(
        "--bf16", action="store_true", help="the STU under bfloat16 autocast (~2x faster on AMX CPUs)"
    )
    g.add_argument(
        "--no-hand-anchor",
        action="store_true",
        help="personalised pipelines: leave the hands where the KHP network puts them (apvg_hf.hand_anchor)",
    )
    g.add_argument("--device", help="torch device, e.g. cuda (default: cpu)")
    g.add_argument("-q", "--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser(
        "preprocess", help="performance videos -> a dataset (pose, crop, audio, split by time)"
    )
    add_preprocess_arguments(r)
    r.set_defaults(func=cmd_preprocess)

    i = sub.add_parser("info", help="what a pipeline holds")
    i.add_argument("--model", help="a pipeline folder or Hub repo id (default: the embedded pipeline)")
    i.set_defaults(func=cmd_info)

    p = sub.add_parser("push", help="upload a pipeline folder (or, with --dataset, a dataset) to the Hub")
    p.add_argument("folder")
    p.add_argument("repo_id", help="owner/name")
    p.add_argument("--dataset", action="store_true", help="FOLDER is a dataset from scripts/build_dataset.py")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=cmd_push)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "size", None) is not None and (args.size <= 0 or args.size % 2):
        print("apvg: error: --size must be an even number > 0", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"apvg: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("apvg: interrupted (no partial video was left behind)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
