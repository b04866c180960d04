"""The motion pool (`apvg_hf.data.motion_pool`, scripts/build_motion_pool.py) and the KHP trainer's
motion stage: pooled performances are the generator's, deterministic, resumable, never held-out pieces;
pooled batches train the motion decoder while a frozen transcriber stays bit-identical."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from apvg_hf.data.motion_pool import MotionPool, MotionSpec, build_pool, perform_motion, pool_specs
from apvg_hf.data.notes import PLAY_HIGH, PLAY_LOW
from apvg_hf.data.scene import key_under_points
from apvg_hf.data.virtual_pianist import held_out_pieces, piece_split, training_pieces
from apvg_hf.skeleton import FINGERTIPS
from apvg_hf.training import khp
from conftest import load_script

KEYBOARD, CHORALE = "chopin/mazurka06-2", "bach/bwv2.6"  # training-split pieces of each kind


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    specs = pool_specs({"keyboard": [KEYBOARD], "chorale": [CHORALE]}, {"keyboard": 2}, max_seconds=3.0)
    build_pool(out, specs, workers=1, progress=False)
    return out


def test_a_pooled_performance_is_the_generators_and_deterministic():
    spec = MotionSpec(KEYBOARD, variant=1, max_seconds=3.0, transpose=12)
    a, b = perform_motion(spec), perform_motion(spec)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = perform_motion(MotionSpec(KEYBOARD, variant=2, max_seconds=3.0))
    assert not np.array_equal(a["keypoints"][:10], c["keypoints"][:10])  # another variant, other motion
    T = len(a["keypoints"])
    assert a["keypoints"].shape == (T, 56, 2) and a["visibility"].shape == (T, 56)
    assert a["keyboard_quads"].shape == (88, 4, 2)
    pitches = a["notes"][:, 0]
    assert len(pitches) and pitches.min() >= PLAY_LOW and pitches.max() <= PLAY_HIGH
    assert a["reference_frames"].dtype == np.uint8 and a["reference_frames"].shape[1:] == (3, 32, 32)
    assert (np.diff(a["reference_index"]) > 0).all() and a["reference_index"].max() < T
    # the fingertips play the notes: at an onset, some fingertip is over the struck key
    tips = FINGERTIPS["left"] + FINGERTIPS["right"]
    hit = 0
    for pitch, onset, *_ in a["notes"]:
        t = min(int(round(onset * 30)) + 1, T - 1)
        under = key_under_points(a["keypoints"][t, tips], a["keyboard_quads"], list(range(21, 109)))
        hit += int(pitch) in under.tolist()
    assert hit / len(a["notes"]) > 0.8


def test_build_resumes_and_the_pool_samples_both_kinds(pool_dir, tmp_path):
    index = json.loads((pool_dir / "index.json").read_text())
    assert [p["kind"] for p in index["performances"]] == ["keyboard", "keyboard", "chorale"]
    before = {f.name: f.stat().st_mtime_ns for f in pool_dir.glob("*.npz")}
    assert len(before) == 3 and not list(pool_dir.glob("*.partial*"))
    specs = pool_specs({"keyboard": [KEYBOARD], "chorale": [CHORALE]}, {"keyboard": 2}, max_seconds=3.0)
    build_pool(pool_dir, specs, progress=False)  # everything is there: nothing is planned again
    assert {f.name: f.stat().st_mtime_ns for f in pool_dir.glob("*.npz")} == before
    pool = MotionPool(pool_dir, keyboard_share=0.9)
    assert len(pool) == 3 and pool.seconds > 6
    rng = np.random.default_rng(0)
    kinds = [pool.sample(rng).kind for _ in range(400)]
    assert 0.8 < kinds.count("keyboard") / 400 < 0.97
    with pytest.raises(FileNotFoundError, match="build_motion_pool"):
        MotionPool(tmp_path)
    with pytest.raises(ValueError, match="no pieces are left"):
        build_pool(tmp_path / "empty", [], progress=False)
    other = pool_specs({"keyboard": [KEYBOARD]}, {"keyboard": 1}, max_seconds=4.0)  # another excerpt length
    with pytest.raises(ValueError, match="other settings"):
        build_pool(pool_dir, other, progress=False)  # resuming into it would mix two builds
    with pytest.raises(ValueError, match="pool_keyboard_share"):
        MotionPool(pool_dir, keyboard_share=1.5)
    assert pool.fps == 30.0 and pool.coarse_size == 32


def test_the_script_never_performs_held_out_pieces(tiny_dataset, tmp_path):
    held = held_out_pieces([tiny_dataset[0]])
    assert held
    pieces = training_pieces(held, exclude=[CHORALE])
    chosen = pieces["keyboard"] + pieces["chorale"]
    assert chosen and not set(chosen) & held and CHORALE not in chosen
    assert all(piece_split(p) == "train" for p in chosen)
    held_piece = sorted(held)[0]  # asked for by name, still never performed
    args = ["--output", str(tmp_path / "p"), "--held-out-from", str(tiny_dataset[0])]
    args += ["--pieces", CHORALE, KEYBOARD, held_piece, "--keyboard-variants", "1", "--max-seconds", "2"]
    summary = load_script("build_motion_pool").main(args)
    assert summary["performances"] == 2 and summary["pieces"] == {"keyboard": 1, "chorale": 1}
    index = json.loads((tmp_path / "p" / "index.json").read_text())
    assert {p["piece_id"] for p in index["performances"]} == {CHORALE, KEYBOARD}
    assert not list((tmp_path / "p").glob(held_piece.replace("/", "__") + "*"))


def test_pooled_batches_carry_noisy_notes_and_the_performances_reference(pool_dir):
    pool = MotionPool(pool_dir)
    sampler = khp.WindowSampler(
        [], window=24, batch_size=4, coarse_frames=8, seed=0, notes_extractor=object(), note_noise=0.0,
        pool=pool, motion_share=1.0, audio=False,
    )  # fmt: skip
    b = sampler.batch(0, 0, 0)
    assert "input_features" not in b and "target_coarse_frames" not in b
    assert b["target_keypoints"].shape == (4, 24, 56, 2) and b["piano_roll"].shape == (4, 24, 88, 3)
    assert b["reference_frames"].shape == (4, 3, 32, 32) and b["reference_keys"].shape == (4, 88, 4, 2)
    # the reference keypoints are one of the performance's frames, its keys that performance's keys
    for i in range(4):
        perf = next(
            p
            for p in pool.performances
            if torch.equal(torch.from_numpy(p.keyboard_quads), b["reference_keys"][i])
        )
        assert any(
            torch.equal(torch.from_numpy(perf.keypoints[t]), b["reference_keypoints"][i])
            for t in perf.reference_index
        )
    assert b["piano_roll"][..., 1].sum() > 0  # notes sound in the windows
    again = sampler.batch(0, 0, 0)
    assert all(torch.equal(b[k], again[k]) for k in b)  # a function of (seed, step, micro, rank)
    assert not torch.equal(sampler.batch(1, 0, 0)["target_keypoints"], b["target_keypoints"])
    with pytest.raises(ValueError, match="note-aware"):
        khp.WindowSampler([], 24, 4, 8, 0, pool=pool, motion_share=1.0)
    with pytest.raises(ValueError, match="motion_share"):
        khp.WindowSampler([], 24, 4, 8, 0, notes_extractor=object(), pool=pool, motion_share=1.5)


def test_play_with_mistakes_drops_shifts_and_adds_notes():
    notes = [
        {"pitch": 60 + i % 12, "onset": i * 0.1, "offset": i * 0.1 + 0.3, "velocity": 80} for i in range(400)
    ]
    rng = np.random.default_rng(0)
    assert khp.play_with_mistakes(notes, rng, 0.0, 30.0) == notes
    played = khp.play_with_mistakes(notes, rng, 0.1, 30.0)
    kept = {(n["pitch"], round(n["onset"], 3)) for n in played}
    missed = sum((n["pitch"], round(n["onset"], 3)) not in kept for n in notes)
    assert 40 < missed < 140  # ~10% missed, ~12% more shifted by a frame (so not found at their onset)
    assert any(abs(n["offset"] - n["onset"] - 0.1) < 1e-9 for n in played)  # brief wrong neighbours


def test_motion_stage_trains_the_decoder_and_freezes_the_transcriber(tiny_dataset, pool_dir, tmp_path):
    from test_train_khp import NOTES, run

    small = pool_specs({"keyboard": [KEYBOARD], "chorale": [CHORALE]}, {}, max_seconds=3.0, coarse_size=16)
    small_pool = build_pool(tmp_path / "pool16", small, progress=False)  # the tiny model's coarse size
    first = run(
        tiny_dataset[0], tmp_path / "a", "--steps=1", "--eval_every=0", "--checkpoint_every=0", *NOTES
    )
    with pytest.raises(ValueError, match="--coarse-size 16"):
        run(tiny_dataset[0], tmp_path / "e", "--steps=1", f"--init_from={first}", f"--motion_pool={pool_dir}",
            "--motion_share=0.5", *NOTES)  # fmt: skip
    common = [f"--init_from={first}", "--eval_every=2", "--checkpoint_every=0", "--train_transcriber=false",
              f"--motion_pool={small_pool}", "--motion_share=0.5", "--learning_rate=1e-2", *NOTES]  # fmt: skip
    tuned = run(tiny_dataset[0], tmp_path / "b", "--steps=3", *common)
    a, b = load_file(first / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("transcriber."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("keyboard."))
    assert run(tiny_dataset[0], tmp_path / "c", "--steps=3", *common, "--stop_after=2") is None
    resumed = run(tiny_dataset[0], tmp_path / "c", "--steps=3", *common, "--resume")
    c = load_file(resumed / "model.safetensors")
    assert all(torch.equal(b[k], c[k]) for k in b)  # exact resume with pooled batches
    with pytest.raises(ValueError, match="note-aware"):
        run(tiny_dataset[0], tmp_path / "d", "--steps=1", f"--motion_pool={small_pool}", "--motion_share=0.5")
    with pytest.raises(ValueError, match="go together"):  # a pool that would never be drawn from
        run(
            tiny_dataset[0],
            tmp_path / "f",
            "--steps=1",
            f"--init_from={first}",
            f"--motion_pool={small_pool}",
            *NOTES,
        )
