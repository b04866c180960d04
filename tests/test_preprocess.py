"""`apvg preprocess`: a performance video -> the dataset schema, on a fixture video the tests make
(the virtual pianist rendered at 4:3 and encoded to mp4 with its audio). The pose comes through the
estimator interface from the known keypoints, corrupted the way MediaPipe errs (swapped, duplicated,
missing and stray hands); the real estimator runs in the slow test at the end."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from apvg_hf import skeleton as sk
from apvg_hf.cli import main as cli_main
from apvg_hf.data.pose import PrecomputedPose, holistic_to_skeleton
from apvg_hf.data.real import (
    PreprocessConfig,
    audio_motion_lag,
    clean_track,
    preprocess_videos,
    quads_from_corners,
    split_ranges,
)
from apvg_hf.data.scene import keyboard_outline, keyboard_quads
from apvg_hf.data.virtual_pianist import PerformanceSpec, decode_video, generate_clips
from apvg_hf.video_io import VideoWriter
from conftest import load_script

W, H, FPS, SECONDS = 160, 120, 30.0, 6.0
L, R = (sk.HAND_INDICES[h] for h in sk.HANDS)


@pytest.fixture(scope="module")
def fixture_video(tmp_path_factory):
    """(path, keypoints (T, 56, 2) in the source frame, camera) of a 6 s 160 x 120 mp4 with sound."""
    spec = PerformanceSpec("bach/bwv846", max_seconds=SECONDS - 1, width=W, height=H, augment=False)
    rows = list(generate_clips(spec, clip_seconds=60))
    assert len(rows) == 1
    row = rows[0]
    from apvg_hf.data.virtual_pianist import decode_audio

    audio, sr = decode_audio(row)
    path = tmp_path_factory.mktemp("video") / "performance.mp4"
    with VideoWriter(path, FPS, audio=audio, sampling_rate=sr, crf=12) as w:
        w.write(decode_video(row))
    from apvg_hf.data.scene import Camera

    return path, np.asarray(row["keypoints"], np.float32), Camera(**row["camera"])


def corrupted(kp: np.ndarray):
    """The known keypoints with MediaPipe's kinds of error, and the frames each kind hit."""
    kp = kp.copy()
    conf = np.ones(kp.shape[:2], np.float32)
    swap, dup, short_gap, long_gap, stray = [10, 11, 12], [30], range(50, 54), range(80, 120), [65]
    for t in swap:
        kp[t, L], kp[t, R] = kp[t, R].copy(), kp[t, L].copy()
    for t in dup:
        kp[t, R] = kp[t, L] + 0.001  # both hand outputs on the left hand
    for t in short_gap:
        kp[t, R], conf[t, R] = np.nan, 0
    for t in long_gap:
        kp[t, L], conf[t, L] = np.nan, 0
    for t in stray:
        kp[t, L] += 0.4  # a hand found far from the arm
    return (
        kp,
        conf,
        {"swap": swap, "dup": dup, "short": list(short_gap), "long": list(long_gap), "stray": stray},
    )


def in_crop(kp_source: np.ndarray, box, size: int) -> np.ndarray:
    """Source-normalised keypoints -> output pixels of a crop box (x0, y0, side)."""
    x0, y0, side = box
    return (kp_source * [W, H] - [x0, y0]) / side * size


@pytest.fixture(scope="module")
def preprocessed(fixture_video, tmp_path_factory):
    path, kp, camera = fixture_video
    bad, conf, hit = corrupted(kp)
    out = tmp_path_factory.mktemp("real") / "ds"
    corners = keyboard_outline()  # the true corners of the keyboard, projected into the source frame
    uv, _ = camera.project(corners)
    cfg = PreprocessConfig(
        performer="fixture", licence="CC0", size=64, test_seconds=1.5, validation_seconds=1.0,
        gap_seconds=0.2, clip_seconds=2.0, smooth_sigma_frames=0.0, crop_every=5,
        keyboard_corners=(uv * [W, H]).ravel().tolist(), crop_mode="fixed",
    )  # fmt: skip
    report = preprocess_videos([path], out, cfg, estimator=PrecomputedPose(bad, conf, W, H), progress=False)
    return out, report, kp, hit, cfg, camera


def test_round_trip_keypoints_and_cleaning(preprocessed):
    out, report, kp, hit, cfg, _ = preprocessed
    box = report["videos"][0]["crop"]["first_box_x0_y0_side"]
    # The crop holds everyone: every known keypoint lies inside it.
    px = in_crop(kp, box, cfg.size)
    assert (px > -0.5).all() and (px < cfg.size + 0.5).all(), box
    # Join the splits back into one timeline.
    dd = datasets.load_from_disk(str(out))
    got = np.full_like(px, np.nan)
    vis = np.full(px.shape[:2], np.nan, np.float32)
    for split in dd:
        for row in dd[split]:
            f0 = int(round(row["start_time"] * FPS))
            got[f0 : f0 + row["num_frames"]] = np.asarray(row["keypoints"]) * cfg.size
            vis[f0 : f0 + row["num_frames"]] = np.asarray(row["visibility"])
    kept = np.isfinite(got).all((1, 2))
    err = np.linalg.norm(got - px, axis=-1)  # (T, K) output pixels
    broken = set(sum(hit.values(), []))
    clean = [t for t in np.flatnonzero(kept) if t not in broken]
    # Untouched frames come back exactly (no smoothing in this run); swapped hands are swapped back.
    assert err[clean].max() < 0.05
    assert err[hit["swap"]].max() < 0.05
    # A duplicated or stray hand is dropped and filled from its neighbours; short gaps too (visible).
    for t in hit["dup"] + hit["stray"] + hit["short"]:
        assert err[t].mean() < 1.5, (t, err[t].mean())
    assert (vis[hit["short"]][:, R] == 1).all()
    # A long gap is filled (the hand follows the arm) but invisible.
    long_kept = [t for t in hit["long"] if kept[t]]  # some of it fell in a gap between splits
    assert len(long_kept) > 20 and (vis[long_kept][:, L] == 0).all()
    assert (vis[clean][:, R] == 1).all()
    d = report["videos"][0]["detections"]
    assert (
        d["hands_swapped"] >= len(hit["swap"])
        and d["hands_duplicated"] == 1
        and d["hands_far_from_wrist"] == 1
    )


def test_split_by_time_and_optional_fields(preprocessed):
    out, report, kp, _, cfg, _ = preprocessed
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "validation", "test"}
    T = len(kp)
    spans = split_ranges(T, FPS, cfg)
    assert spans["test"] == (T - 45, T)  # the last 1.5 s
    assert spans["validation"][1] == T - 45 - 6 and spans["train"][1] == spans["validation"][0] - 6
    for split, (a, b) in spans.items():
        starts = sorted(round(r["start_time"] * FPS) for r in dd[split])
        ends = sorted(round(r["start_time"] * FPS) + r["num_frames"] for r in dd[split])
        assert starts[0] == a and ends[-1] == b  # each split is one stretch of time, in clips
        assert all(e <= s for e, s in zip(ends[:-1], starts[1:]))
    row = dd["train"][0]
    for k in ("notes", "camera", "augmentation", "seed", "soundfont", "dropped_notes"):
        assert row[k] is None, k  # what the real world cannot give
    assert row["appearance"] == "fixture" and row["licence"] == "CC0" and row["width"] == 64
    assert (out / "preview.png").is_file()
    saved = json.loads((out / "preprocess.json").read_text())
    assert saved["clips"] == {s: len(dd[s]) for s in dd}


def test_keyboard_from_four_corners(preprocessed):
    """Quads from the keyboard's four corners match the scene's projected keys: exact for the white
    keys' plane up to the camera's perspective on key height (black keys stand 12 mm higher)."""
    out, report, kp, _, cfg, camera = preprocessed
    box = report["videos"][0]["crop"]["first_box_x0_y0_side"]
    true = in_crop(keyboard_quads(camera), box, cfg.size)
    got = np.asarray(datasets.load_from_disk(str(out))["test"][0]["keyboard_quads"]) * cfg.size
    from apvg_hf.piano_roll import is_black_key

    white = np.array([not is_black_key(p) for p in range(21, 109)])
    assert np.abs(got - true)[white].max() < 0.05
    assert np.abs(got - true)[~white].max() < 1.5
    with pytest.raises(ValueError, match="degenerate"):
        quads_from_corners([[0, 0], [1, 0], [2, 0], [3, 0]])


def test_clips_load_for_training(preprocessed):
    """The training code's loader takes a preprocessed dataset: no notes, quads from the corners."""
    from apvg_hf.data.clips import load_clips
    from apvg_hf.feature_extraction_apvg import APVGFeatureExtractor

    out, *_ = preprocessed
    clips = load_clips(out, "train", APVGFeatureExtractor(), coarse_size=16, progress=False)
    assert clips and clips[0].meta["notes"] is None and clips[0].meta["camera"] is None
    assert np.asarray(clips[0].meta["keyboard_quads"]).shape == (88, 4, 2)
    assert clips[0].features.shape[0] == clips[0].num_frames == clips[0].coarse.shape[0]


def test_automatic_crop_holds_the_performer(fixture_video, tmp_path):
    path, kp, _ = fixture_video
    cfg = PreprocessConfig(size=32, test_seconds=1, validation_seconds=1, clip_seconds=3)
    conf = np.ones(kp.shape[:2], np.float32)
    report = preprocess_videos(
        [path], tmp_path / "ds", cfg, estimator=PrecomputedPose(kp, conf, W, H), progress=False
    )
    x0, y0, side = report["videos"][0]["crop"]["first_box_x0_y0_side"]
    assert report["videos"][0]["crop"]["mode"] == "fixed"  # the virtual camera does not move
    assert x0 >= 0 and y0 >= 0 and x0 + side <= W and y0 + side <= H
    px = kp * [W, H]
    inside = (px[..., 0] >= x0) & (px[..., 0] <= x0 + side) & (px[..., 1] >= y0) & (px[..., 1] <= y0 + side)
    assert inside.mean() > 0.97


def test_clean_track_fills_a_hand_never_seen():
    T = 20
    kp = np.full((T, sk.NUM_KEYPOINTS, 2), 0.5, np.float32)
    for name, xy in {"left_shoulder": (0.65, 0.4), "right_shoulder": (0.35, 0.4), "left_wrist": (0.7, 0.7),
                     "right_wrist": (0.3, 0.7)}.items():  # fmt: skip
        kp[:, sk.INDEX[name]] = xy
    kp[:, L] = np.array([0.7, 0.72]) + np.random.default_rng(0).normal(0, 0.01, (T, 21, 2))
    conf = np.ones((T, sk.NUM_KEYPOINTS), np.float32)
    kp[:, R], conf[:, R] = np.nan, 0
    out, vis, counts = clean_track(PrecomputedPose(kp, conf, 1, 1)(range(T)), fps=30)
    assert np.isfinite(out).all() and (vis[:, R] == 0).all() and counts["right_kept"] == 0
    kp[:, sk.BODY_INDICES] = np.nan
    conf[:] = 0
    with pytest.raises(ValueError, match="no body"):
        clean_track(PrecomputedPose(kp, conf, 1, 1)(range(T)), fps=30)


def test_audio_motion_lag_finds_a_shift():
    rng = np.random.default_rng(0)
    env = np.maximum(rng.normal(size=300), 0)
    speed = np.roll(env, 4) + 0.1 * rng.random(300)
    lag, best, at_zero = audio_motion_lag(env, speed)
    assert lag == 4 and best > 0.9 > at_zero


def test_holistic_mapping_neck_and_missing_hands():
    pose = np.zeros((33, 3), np.float32)
    pose[11], pose[12] = [0.4, 0.5, 0.9], [0.6, 0.5, 0.8]
    kp, conf = holistic_to_skeleton(pose, np.full((21, 2), 0.3), None)
    assert np.allclose(kp[sk.INDEX["neck"]], [0.5, 0.5]) and conf[sk.INDEX["neck"]] == pytest.approx(0.8)
    assert (conf[L] == 1).all() and (conf[R] == 0).all() and np.isnan(kp[R]).all()


def test_cli_errors_are_clear(tmp_path, capsys):
    assert cli_main(["preprocess", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "ds")]) == 1
    assert "no video at" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    assert cli_main(["preprocess", str(bad), "-o", str(tmp_path / "ds")]) == 1
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(ValueError, match="crop is x0, y0, side"):
        PreprocessConfig(crop=[1, 2])


@pytest.mark.slow
def test_mediapipe_preprocess_on_the_fixture(fixture_video, tmp_path):
    """The real estimator (MediaPipe 0.10.21 in `.venv-mediapipe`, made on first use) through the whole
    preprocessing, on the rendered performer: the automatic crop holds the known skeleton and the
    cleaned arm joints land within a few pixels of the known ones."""
    path, kp, _ = fixture_video
    cfg = PreprocessConfig(size=64, test_seconds=1, validation_seconds=1, clip_seconds=3)
    report = preprocess_videos([path], tmp_path / "ds", cfg, progress=False)  # the default: MediaPipe
    box = report["videos"][0]["crop"]["first_box_x0_y0_side"]
    assert report["videos"][0]["estimator"] == "mediapipe-holistic-0.10.21"
    dd = datasets.load_from_disk(str(tmp_path / "ds"))
    got = np.full((len(kp), sk.NUM_KEYPOINTS, 2), np.nan)
    for split in dd:
        for row in dd[split]:
            f0 = int(round(row["start_time"] * FPS))
            got[f0 : f0 + row["num_frames"]] = np.asarray(row["keypoints"]) * cfg.size
    arms = [sk.INDEX[f"{s}_{j}"] for s in sk.HANDS for j in ("shoulder", "elbow", "wrist")]
    kept = np.isfinite(got).all((1, 2))
    err = np.linalg.norm(got[kept][:, arms] - in_crop(kp, box, cfg.size)[kept][:, arms], axis=-1)
    print(
        "median arm-joint error (px at 64):", np.median(err), "detections:", report["videos"][0]["detections"]
    )
    assert np.median(err) < 4.0


def test_personalise_tiny_models_on_a_preprocessed_video(preprocessed, tiny_dataset, tmp_path):
    """Fine-tuning recipes run on a real-video dataset: a note-aware KHP (no notes in the data: it plays
    what it transcribes; key quads from the corners) and an STU, both from saved models."""
    import torch
    from safetensors.torch import load_file

    from apvg_hf import KHPModel
    from apvg_hf.training import khp, stu
    from test_train_khp import NOTES
    from test_train_khp import TINY as KHP_TINY
    from test_train_stu import TINY as STU_TINY

    out = preprocessed[0]
    base = khp.main(
        [f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'khp0'}", *KHP_TINY, *NOTES,
         "--steps=1", "--eval_every=0", "--checkpoint_every=0"]
    )  # fmt: skip
    tuned = khp.main(
        [f"--dataset={out}", f"--output_dir={tmp_path / 'khp1'}", f"--init_from={base}", *KHP_TINY[6:],
         "--window_frames=40", "--steps=2", "--eval_every=2", "--checkpoint_every=0",
         "--model.loss_transcription=0.0", "--feature_extractor.feature_size=64",
         "--feature_extractor.n_fft=512", "--feature_extractor.floor_db=70"]
    )  # fmt: skip
    assert KHPModel.from_pretrained(tuned).config.loss_transcription == 0.0
    a, b = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # it learned from the real clip
    s0 = stu.main([f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'stu0'}", *STU_TINY, "--steps=1",
                   "--eval_every=0", "--checkpoint_every=0"])  # fmt: skip
    s1 = stu.main([f"--dataset={out}", f"--output_dir={tmp_path / 'stu1'}", f"--init_from={s0}", *STU_TINY,
                   "--steps=2", "--eval_every=2", "--checkpoint_every=0", "--coarse_dropout=0.5"])  # fmt: skip
    assert any(s1.glob("*.safetensors"))


def test_note_aware_khp_needs_keyboard_corners(fixture_video, tiny_dataset, tmp_path):
    from apvg_hf.data.clips import load_clips
    from apvg_hf.feature_extraction_apvg import APVGFeatureExtractor
    from apvg_hf.modeling_khp import KHPModel
    from apvg_hf.training.khp import label_with_transcription
    from conftest import tiny_khp_config

    path, kp, _ = fixture_video
    cfg = PreprocessConfig(size=32, test_seconds=1, validation_seconds=1, clip_seconds=3)
    conf = np.ones(kp.shape[:2], np.float32)
    preprocess_videos([path], tmp_path / "ds", cfg, estimator=PrecomputedPose(kp, conf, W, H), progress=False)
    fe = APVGFeatureExtractor(feature_size=64, n_fft=512)
    clips = load_clips(tmp_path / "ds", "train", fe, coarse_size=16, progress=False)
    model = KHPModel(tiny_khp_config(architecture="notes", feature_size=64, transcriber_layers=1,
                                     transcriber_channels=4, key_context=3))  # fmt: skip
    with pytest.raises(ValueError, match="--keyboard-corners"):
        label_with_transcription(model, clips, progress=False)


def test_one_command_personalises_and_resumes(preprocessed, tiny_dataset, tmp_path, capsys):
    """scripts/personalise.py's library: an interrupted STU run resumes, both fine-tunes land in the
    recipe folder, the assembled pipeline generates; a second call with --no-train reuses the weights."""
    import yaml

    from apvg_hf import APVGPipeline
    from apvg_hf.training import khp, personalise, stu
    from test_train_khp import NOTES
    from test_train_khp import TINY as KHP_TINY
    from test_train_stu import TINY as STU_TINY

    dataset, *_ = preprocessed
    k0 = khp.main([f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'k0'}", *KHP_TINY, *NOTES,
                   "--steps=1", "--eval_every=0", "--checkpoint_every=0"])  # fmt: skip
    s0 = stu.main([f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 's0'}", *STU_TINY, "--steps=1",
                   "--eval_every=0", "--checkpoint_every=0"])  # fmt: skip
    folder = tmp_path / "recipe"
    folder.mkdir()
    common = {"dataset": str(dataset), "steps": 2, "eval_every": 0, "checkpoint_every": 1, "log_every": 1,
              "warmup_steps": 1, "batch_size": 2}  # fmt: skip
    (folder / "stu.yaml").write_text(yaml.safe_dump(common | {
        "init_from": str(s0), "output_dir": str(tmp_path / "s1"), "window_frames": 3, "burn_in_frames": 1,
        "coarse_size": 16, "num_workers": 0, "discriminator": {"channels": 8}}))  # fmt: skip
    (folder / "khp.yaml").write_text(yaml.safe_dump(common | {
        "init_from": str(k0), "output_dir": str(tmp_path / "k1"), "window_frames": 40, "coarse_frames": 8,
        "model": {"loss_transcription": 0.0, "onset_threshold": 0.01},  # (a random transcriber hears notes)
        "feature_extractor": {"feature_size": 64, "n_fft": 512, "floor_db": 70}}))  # fmt: skip
    (folder / "personalise.yaml").write_text(yaml.safe_dump({
        "video": str(tmp_path / "unused.mp4"), "dataset": str(dataset), "stu": "stu.yaml", "khp": "khp.yaml",
        "hand_anchor": {"sigma_s": 0.3}, "reference": {"clip": 0, "frame": 0},
        "pipeline": str(tmp_path / "pipe")}))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="no video"):
        personalise.personalise(folder)
    (tmp_path / "unused.mp4").write_bytes(b"")  # the dataset exists: the video is not read again
    # An interrupted STU run: a checkpoint at step 1, no model yet.
    assert stu.main(["--config", str(folder / "stu.yaml"), "--stop_after=1"]) is None
    capsys.readouterr()
    pipe_dir = personalise.personalise(folder)
    assert "resumed from" in capsys.readouterr().out
    for kind in ("stu", "khp"):
        assert any((folder / kind).glob("*.safetensors")), kind
    anchor = json.loads((folder / "khp" / "config.json").read_text())["hand_anchor"]
    assert anchor["sigma_s"] == 0.3 and len(anchor["offsets"]) == 2  # fitted on the training part
    pipe = APVGPipeline.from_pretrained(pipe_dir)
    assert pipe.khp.config.hand_anchor == anchor
    wave = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    out = pipe(wave, sampling_rate=16000, output_type="np", show_progress=False)
    assert out.frames.shape[1:] == (64, 64, 3)
    assert personalise.personalise(folder, train_stage=False) == pipe_dir
    capsys.readouterr()
    assert cli_main(["info", "--model", str(pipe_dir)]) == 0
    assert "hand anchoring: on (σ 0.3 s" in capsys.readouterr().out
    import soundfile as sf

    sf.write(tmp_path / "in.wav", wave, 16000)
    out_mp4 = tmp_path / "plain.mp4"
    assert cli_main(["generate", str(tmp_path / "in.wav"), "--model", str(pipe_dir), "-o", str(out_mp4),
                     "--no-hand-anchor", "-q"]) == 0  # fmt: skip
    assert out_mp4.stat().st_size > 0
    # choosing the anchoring's settings on the validation split
    tuned = tmp_path / "tuning.json"
    load_script("tune_hand_anchor").main(
        ["--dataset", str(dataset), "--khp", str(folder / "khp"), "--sigmas", "0.3", "--dead-zones", "0", "2",
         "--reference-clip", "0", "--size", "64", "--output", str(tuned)]
    )  # fmt: skip
    rows = json.loads(tuned.read_text())["rows"]
    assert [(r["sigma_s"], r["dead_zone_keys"]) for r in rows] == [(None, None), (0.3, 0), (0.3, 2)]
    assert (
        all(np.isfinite(r["all_px64"]) for r in rows)
        and "| network only |" in tuned.with_suffix(".md").read_text()
    )
    # the audio's ceiling for wrist speed
    table = tmp_path / "wrist.md"
    load_script("wrist_speed_audio").main(
        ["--dataset", str(dataset), "--khp", str(folder / "khp"), "--splits", "train", "--output", str(table)]
    )
    row = [line for line in table.read_text().splitlines() if line.startswith("| train |")]
    assert len(row) == 1 and row[0].count("|") == 6


def test_keyboard_transpose_relabels_and_is_found():
    """Quads are indexed by the pitch heard; `fit_keyboard_transpose` finds an instrument that sounds
    5 semitones above its keys from where the fingers are when notes sound."""
    from apvg_hf.data.real import fit_keyboard_transpose

    corners = [[0.9, 0.7], [0.1, 0.5], [0.08, 0.55], [0.88, 0.78]]
    q0, q12 = quads_from_corners(corners), quads_from_corners(corners, transpose=12)
    assert np.allclose(q12[12:], q0[:-12], atol=1e-6)
    rng = np.random.default_rng(0)
    T, notes = 200, []
    kp = np.full((T, sk.NUM_KEYPOINTS, 2), 0.5, np.float32)
    vis = np.ones((T, sk.NUM_KEYPOINTS), np.float32)
    tip = sk.FINGERTIPS["right"][1]
    for t in range(0, T, 5):
        pitch = int(rng.integers(40, 90))
        notes.append({"pitch": pitch, "onset": t / 30})
        kp[t, tip] = q0[pitch - 21 - 5].mean(0)  # the finger is on the key 5 below what sounds
    fit = fit_keyboard_transpose([notes], [kp], [vis], q0, fps=30)
    assert min(fit, key=fit.get) == 5 and fit[5] < 1e-6
