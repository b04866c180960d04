#!/usr/bin/env python
"""Evaluate a personalised pipeline on the held-out end of a real performer's video, beside baselines.

    python scripts/evaluate_real.py --dataset data/fourms_pianist \
        --khp pipelines/fourms-pianist/khp --stu pipelines/fourms-pianist/stu \
        --output pipelines/fourms-pianist/results.json --video outputs/fourms_side_by_side.mp4

Everything is scored on the `test` split (the last 20 s of the video, never trained on) at the STU's
resolution. The appearance reference is one frame of the *training* part (`--reference-clip`,
`--reference-frame`), with its keypoints and the keyboard's key quads.

Keypoints (against the pose estimator's, visible joints only; pixels at the STU's resolution):
the training mean pose, the held-out mean pose (an oracle still pose: the floor to beat), the
reference's pose held still, the LSTM of Shlizerman et al. trained here on the same training part,
the released (zero-shot) KHP and the personalised KHP (with hand anchoring, when its config has it,
also without: the network alone), all from the audio. Also the correlation of
the wrists' speed with the real wrists' speed.

Frames (PSNR, SSIM, hands PSNR, VIF, flicker): the reference frame copied (a still); the released and the
personalised STU from the real keypoints with the blurred reference as coarse input (no target frame
leaks in); the personalised STU from the real keypoints with the personalised KHP's coarse frames
(from the audio); and the whole pipeline from the audio (the two stages as `APVGPipeline` runs them),
released and personalised.

Writes the JSON, a Markdown table beside it, and with `--video` an mp4 for a person to watch: real |
the personalised pipeline from the audio | the released pipeline from the audio, with the sound.
`--shareable-video` writes one without the footage (the real pose drawn on black | the personalised
pipeline), which may be committed: the footage and frames from it may not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from apvg_hf import APVGFeatureExtractor, APVGPipeline, KHPModel, STUModel
from apvg_hf.data.clips import load_clips, load_frames
from apvg_hf.evaluation import khp_predict
from apvg_hf.evaluation.baselines import LSTMBaseline, MeanPoseBaseline
from apvg_hf.evaluation.frames import FrameMetrics, stu_render_many
from apvg_hf.evaluation.real import KeypointScores, training_reference
from apvg_hf.pipeline_performance_video import default_pipeline_path

KP_COLUMNS = [
    ("all", "all joints px↓"),
    ("body", "body px↓"),
    ("hands", "hands px↓"),
    ("wrist_speed_r", "wrist speed r↑"),
]
FRAME_COLUMNS = [
    ("psnr", "PSNR dB↑", "{:.2f}"),
    ("ssim", "SSIM↑", "{:.4f}"),
    ("hands_psnr", "hands PSNR dB↑", "{:.2f}"),
    ("vif", "VIF↑", "{:.3f}"),
    ("flicker", "flicker↓", "{:.3f}"),
]


def markdown(result: dict) -> str:
    m, size = result["meta"], result["meta"]["resolution"]
    lines = [
        f"## Keypoints from the audio, held-out last {m['test_seconds']:.1f} s ({m['test_frames']} frames)",
        "",
        "| method | " + " | ".join(c[1].replace("px", f"px@{size}") for c in KP_COLUMNS) + " |",
        "|" + "---|" * (len(KP_COLUMNS) + 1),
    ]
    for name, r in result["keypoints"].items():
        cells = [f"{r[f'{k}_px{size}']:.2f}" for k, _ in KP_COLUMNS[:3]] + [f"{r['wrist_speed_r']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Errors against the pose estimator's keypoints of the real frames (visible joints only). The "
        "held-out mean pose is an oracle (it knows the test frames' average pose): the still-pose floor.",
        "",
        f"## Frames, held-out last {m['test_seconds']:.1f} s, {size}x{size}",
        "",
        "| method | " + " | ".join(c[1] for c in FRAME_COLUMNS) + " |",
        "|" + "---|" * (len(FRAME_COLUMNS) + 1),
    ]
    for name, r in result["frames"].items():
        lines.append(
            f"| {name} | " + " | ".join(f.format(r[k]) if k in r else "–" for k, _, f in FRAME_COLUMNS) + " |"
        )
    lines += [
        "",
        f"Reference: frame {m['reference']['frame']} of training clip {m['reference']['clip']} "
        f"({m['reference']['time_s']:.1f} s into the video). Hands PSNR: inside a box of 3/16 of the frame "
        "around each visible real hand. VIF: visual information fidelity (Sheikh & Bovik; no learned "
        "weights; LPIPS needs backbone weights that are downloads, so it is not run). Flicker: mean absolute error of frame differences (0-255).",
        f"Commands: `{m['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="from `apvg preprocess`")
    ap.add_argument("--khp", type=Path, required=True, help="the personalised KHP")
    ap.add_argument("--stu", type=Path, required=True, help="the personalised STU")
    ap.add_argument("--released", type=Path, default=None, help="the released pipeline (default: embedded)")
    ap.add_argument("--reference-clip", type=int, default=3, help="training clip of the reference frame")
    ap.add_argument("--reference-frame", type=int, default=0)
    ap.add_argument("--lstm-steps", type=int, default=1500)
    ap.add_argument("--output", type=Path, required=True, help="results .json (a .md is written beside it)")
    ap.add_argument("--video", type=Path, help="real | personalised | released, with sound (not for git)")
    ap.add_argument("--shareable-video", type=Path, help="real pose on black | personalised (no footage)")
    args = ap.parse_args(argv)
    t0 = time.time()

    released = Path(args.released or default_pipeline_path())
    khp = KHPModel.from_pretrained(args.khp).eval()
    stu = STUModel.from_pretrained(args.stu).eval()
    khp0 = KHPModel.from_pretrained(released / "khp").eval()
    stu0 = STUModel.from_pretrained(released / "stu").eval()
    fe = APVGFeatureExtractor.from_pretrained(args.khp)
    size, cs = stu.config.resolution, khp.config.coarse_size

    # 1. Data: the training part (baselines, the reference) and the held-out test part.
    train = load_clips(args.dataset, "train", fe, coarse_size=cs)
    test = load_clips(args.dataset, "test", fe, coarse_size=cs)
    test_frames = load_frames(args.dataset, "test", size)  # (T, 3, S, S) uint8 per clip
    rc, rf = args.reference_clip, args.reference_frame
    chosen = training_reference(args.dataset, train, rc, rf, cs)
    ref, ref_kp, ref_keys, ref_small = (
        chosen["reference"],
        chosen["keypoints"],
        chosen["keys"],
        chosen["coarse"],
    )  # coarse (3, s, s)

    # 2. Keypoints from the audio.
    mean = MeanPoseBaseline().fit(train)
    held_out = np.concatenate([c.keypoints for c in test]).mean(0)
    print("training the LSTM baseline on the training part ...", file=sys.stderr)
    lstm = LSTMBaseline().fit(train, steps=args.lstm_steps, progress=True)
    khp_out = {}
    predictors = {  # (index, clip) -> (T, K, 2)
        "training mean pose (still)": lambda i, c: mean.predict(c.features),
        "held-out mean pose (still, oracle floor)": lambda i, c: np.repeat(held_out[None], c.num_frames, 0),
        "reference pose (still)": lambda i, c: np.repeat(ref_kp[None], c.num_frames, 0),
        "LSTM (Shlizerman et al.), trained on the training part": lambda i, c: lstm.predict(c.features),
    }
    kh = [("released KHP (zero-shot)", khp0), ("personalised KHP", khp)]
    if khp.config.hand_anchor is not None:  # the network alone, beside it with hand anchoring
        bare = KHPModel.from_pretrained(args.khp).eval()
        bare.config.hand_anchor = None
        kh = kh[:1] + [("personalised KHP, network only", bare), ("personalised KHP + hand anchoring", khp)]
    for name, model in kh:
        khp_out[name] = [khp_predict(model, c.features, ref_kp, ref_small, ref_keys) for c in test]
        predictors[name] = lambda i, c, name=name: khp_out[name][i]["keypoints"]
    kp_rows = {}
    for name, predict in predictors.items():
        scores = KeypointScores(size)
        for i, c in enumerate(test):
            scores.update(np.asarray(predict(i, c)), c)
        kp_rows[name] = scores.compute()
        print(f"{name}: {kp_rows[name]}", file=sys.stderr)

    # 3. Frames.
    frame_rows, videos = {}, {}

    def score(name: str, frames_per_clip) -> None:
        m = FrameMetrics(vif=size >= 41)  # (VIF needs 41 px or more)
        for c, pred, real in zip(test, frames_per_clip, test_frames):
            m.update(torch.as_tensor(pred), torch.from_numpy(np.array(real)), c.keypoints, c.visibility)
        frame_rows[name] = m.compute()
        print(f"{name}: {frame_rows[name]}", file=sys.stderr)

    ref_s = ref.at(size)
    score("reference frame copied (a still)", [ref_s[None].expand(c.num_frames, -1, -1, -1) for c in test])
    blurred = [np.repeat(ref_small[None], c.num_frames, 0) for c in test]
    from_kp = [stu_render_many({"released": stu0, "personalised": stu}, c.keypoints, c.visibility, b, ref_s)
               for c, b in zip(test, blurred)]  # fmt: skip
    score("released STU, real keypoints, blurred reference as coarse", [r["released"] for r in from_kp])
    score(
        "personalised STU, real keypoints, blurred reference as coarse", [r["personalised"] for r in from_kp]
    )
    pk = khp_out[kh[-1][0]]
    score(
        "personalised STU, real keypoints, personalised KHP's coarse frames (audio)",
        [
            stu_render_many({"p": stu}, c.keypoints, c.visibility, o["coarse"], ref_s)["p"]
            for c, o in zip(test, pk)
        ],
    )
    runs = {"released pipeline from the audio (zero-shot)": (khp0, stu0)}
    if khp.config.hand_anchor is not None:
        runs["personalised pipeline from the audio, KHP network only"] = (bare, stu)
    runs["personalised pipeline from the audio"] = (khp, stu)
    for name, (k, s) in runs.items():
        pipe = APVGPipeline(fe, k, s, ref)
        frames = [
            pipe(
                c.waveform(), sampling_rate=c.meta["sampling_rate"], output_type="pt", show_progress=False
            ).frames
            for c in test
        ]
        score(name, frames)
        videos[name] = frames

    n_test = sum(c.num_frames for c in test)
    result = {
        "meta": {
            "dataset": str(args.dataset),
            "khp": str(args.khp),
            "stu": str(args.stu),
            "released": str(released),
            "resolution": size,
            "test_frames": n_test,
            "test_seconds": n_test / test[0].meta["fps"],
            "train_seconds": sum(c.num_frames for c in train) / train[0].meta["fps"],
            "reference": {"clip": rc, "frame": rf, "time_s": chosen["time_s"]},
            "lstm_steps": args.lstm_steps,
            "command": "python scripts/evaluate_real.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": round(time.time() - t0, 1),
        },
        "keypoints": kp_rows,
        "frames": frame_rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))

    # 4. Videos for a person to watch.
    if args.video or args.shareable_video:
        from apvg_hf.skeleton import draw_skeleton
        from apvg_hf.video_io import write_video

        def u8(x):  # (T, 3, S, S) float/uint8 -> (T, S, S, 3) uint8
            x = torch.as_tensor(np.array(x))
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()

        audio = np.concatenate([c.waveform() for c in test])
        sr = test[0].meta["sampling_rate"]
        fps = test[0].meta["fps"]
        own = np.concatenate([u8(f) for f in videos["personalised pipeline from the audio"]])
        if args.video:
            real = np.concatenate([u8(f) for f in test_frames])
            zero = np.concatenate([u8(f) for f in videos["released pipeline from the audio (zero-shot)"]])
            write_video(args.video, np.concatenate([real, own, zero], 2), fps, audio=audio, sampling_rate=sr)
            print(f"wrote {args.video} (real | personalised | released, from the audio)", file=sys.stderr)
        if args.shareable_video:
            kps = np.concatenate([c.keypoints for c in test])
            vis = np.concatenate([c.visibility for c in test])
            black = np.zeros((size, size, 3), np.uint8)
            pose = np.stack([draw_skeleton(black, k, v) for k, v in zip(kps, vis)])
            write_video(args.shareable_video, np.concatenate([pose, own], 2), fps, audio=audio,
                        sampling_rate=sr, crf=28)  # fmt: skip
            print(f"wrote {args.shareable_video} (real pose | personalised, from the audio)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
