"""The KHP trainer (`apvg_hf.training.khp`, behind scripts/train_khp.py): a short CPU run, exact resume,
two real processes, clear errors, a stop by a signal to the process group; and scripts/evaluate_khp.py
on the result."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

import apvg_hf  # noqa: F401  (registers the Auto classes)
from apvg_hf import KHPModel
from apvg_hf.training import khp
from conftest import launch_two_processes, load_script
from train_helpers import assert_same_weights, group_gone, run_script, stop_with_group_sigterm

TINY = [
    "--model.hidden_size=32",
    "--model.num_layers=1",
    "--model.num_heads=2",
    "--model.intermediate_size=48",
    "--model.coarse_size=16",
    "--model.coarse_channels=16",
    "--batch_size=2",
    "--window_frames=40",
    "--coarse_frames=8",
    "--eval_clips=2",
    "--log_every=1",
    "--warmup_steps=1",
]


def run(dataset, out, *extra):
    return khp.main([f"--dataset={dataset}", f"--output_dir={out}", *TINY, *extra])


def test_two_step_run_saves_a_loadable_model(tiny_dataset, tmp_path):
    model_dir = run(tiny_dataset[0], tmp_path, "--steps=2", "--eval_every=2", "--checkpoint_every=2")
    assert isinstance(AutoModel.from_pretrained(model_dir), KHPModel)
    assert (model_dir / "preprocessor_config.json").exists() and (model_dir / "train_config.yaml").exists()
    assert (tmp_path / "checkpoints" / "step-000002" / "trainer_state.json").exists()
    assert list((tmp_path / "khp").glob("events.out.tfevents.*")), "no TensorBoard log"


def test_resume_is_exact(tiny_dataset, tmp_path):
    """4 steps straight == 2 steps, stop, resume for 2 more: bit-identical weights (dropout on)."""
    common = ["--steps=4", "--eval_every=0", "--checkpoint_every=0", "--model.dropout=0.2"]
    straight = run(tiny_dataset[0], tmp_path / "a", *common)
    assert run(tiny_dataset[0], tmp_path / "b", *common, "--stop_after=2") is None
    resumed = khp.main(
        [f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'b'}", *TINY, *common, "--resume"]
    )
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ref = load_file(tmp_path / "b" / "checkpoints" / "step-000002" / "model.safetensors")
    assert any(not torch.equal(a[k], ref[k]) for k in a)  # and the resumed steps did train


@pytest.mark.slow  # two real DDP processes (accelerate launch)
def test_two_real_processes(tiny_dataset, tmp_path):
    proc = launch_two_processes(
        "train_khp",
        f"--dataset={tiny_dataset[0]}",
        f"--output_dir={tmp_path}",
        *TINY,
        "--steps=2",
        "--eval_every=2",
        "--checkpoint_every=2",
    )
    ckpt = tmp_path / "checkpoints" / "step-000002"
    assert (ckpt / "random_states_0.pkl").exists() and (ckpt / "random_states_1.pkl").exists()
    assert proc.stdout.count("saved ") == 1  # only the main process saves
    assert isinstance(AutoModel.from_pretrained(tmp_path / "model"), KHPModel)


def test_clear_errors(tiny_dataset, tmp_path):
    with pytest.raises(SystemExit):
        khp.main([f"--output_dir={tmp_path}", "--no_such_key=1"])
    with pytest.raises(FileNotFoundError, match="build_dataset"):
        khp.main([f"--dataset={tmp_path / 'missing'}", f"--output_dir={tmp_path}", *TINY, "--steps=1"])
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        run(tiny_dataset[0], tmp_path / "fresh", "--steps=1", "--resume")


def test_evaluate_script_with_baselines(tiny_dataset, tmp_path):
    model_dir = run(tiny_dataset[0], tmp_path / "run", "--steps=1", "--eval_every=0", "--checkpoint_every=0")
    out = tmp_path / "eval" / "results.json"
    load_script("evaluate_khp").main(
        [
            "--model",
            str(model_dir),
            "--dataset",
            str(tiny_dataset[0]),
            "--output",
            str(out),
            "--lstm-steps",
            "3",
        ]
    )
    result = json.loads(out.read_text())
    rows = result["results"]
    assert set(rows) == {
        "KHP (audio + reference)",
        "KHP (audio only)",
        "reference pose",
        "mean pose",
        "nearest neighbour",
        "LSTM (Shlizerman et al.)",
        "ground truth (decoder ceiling)",
    }
    for name, r in rows.items():
        assert 0 <= r["hands"]["pck@0.05"] <= 1 and 0 <= r["keypress"]["f1"] <= 1, name
    assert rows["ground truth (decoder ceiling)"]["hands"]["mpjpe"] == 0
    assert result["meta"]["split"] == "test" and "bach/bwv846" in result["meta"]["pieces"]
    assert "| KHP (audio only) |" in out.with_suffix(".md").read_text()
    assert (tmp_path / "eval" / "results_trajectories.png").stat().st_size > 10_000
    assert (tmp_path / "eval" / "results_strip.png").stat().st_size > 1_000


@pytest.mark.slow  # a trainer in a subprocess, then two runs to compare: 20-60 s on 2 CPU cores
def test_group_sigterm_checkpoints_and_resume_is_exact(tiny_dataset, tmp_path):
    """SIGTERM to the whole process group (as `timeout` and schedulers send it) after step 1: the step
    in progress finishes, a checkpoint is written, the process exits 0; `--resume` to the end gives
    the weights of an uninterrupted run, bit for bit (dropout on)."""
    steps = 12  # a first checkpoint is seen within ~20 ms: the signal lands mid-run
    common = [f"--dataset={tiny_dataset[0]}", *TINY, f"--steps={steps}", "--eval_every=0"]
    common += ["--model.dropout=0.2", "--keep_checkpoints=1"]
    code, out, stopped, pgid = stop_with_group_sigterm(
        "train_khp", [*common, "--checkpoint_every=1"], tmp_path / "stopped"
    )
    assert code == 0, out[-3000:]
    assert f"stopped after step {stopped} (interrupted)" in out and "Traceback" not in out, out[-3000:]
    assert 1 <= stopped < steps, f"the run ended at step {stopped} of {steps} before the signal"
    assert group_gone(pgid)
    # Both runs in fresh processes, like the stopped one: nothing of this test process can differ.
    run_script(
        "train_khp", [*common, f"--output_dir={tmp_path / 'stopped'}", "--checkpoint_every=0", "--resume"]
    )
    run_script("train_khp", [*common, f"--output_dir={tmp_path / 'straight'}", "--checkpoint_every=0"])
    assert_same_weights(
        tmp_path / "straight/model/model.safetensors", tmp_path / "stopped/model/model.safetensors"
    )


def test_fine_tune_from_a_saved_model_on_several_datasets(tiny_dataset, tmp_path):
    first = run(tiny_dataset[0], tmp_path / "a", "--steps=1", "--eval_every=0", "--checkpoint_every=0")
    d = tiny_dataset[0]
    tuned = khp.main(
        [f"--dataset=[{d}, {d}]", f"--output_dir={tmp_path / 'b'}", f"--init_from={first}", *TINY[6:]]
        + [
            "--steps=1",
            "--eval_every=0",
            "--checkpoint_every=0",
            "--learning_rate=0",
            "--model.loss_bone=0.25",
        ]
    )
    a, b = load_file(first / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the weights it started from, unchanged
    from apvg_hf import KHPConfig

    start, end = KHPConfig.from_pretrained(first), KHPConfig.from_pretrained(tuned)
    assert (start.loss_bone, end.loss_bone) == (0.5, 0.25)  # a model field set: it overrides the loaded one
    assert end.hidden_size == start.hidden_size == 32  # fields left at their defaults keep the loaded values


NOTES = [
    "--model.architecture=notes",
    "--model.transcriber_layers=1",
    "--model.transcriber_channels=4",
    "--model.key_context=3",
    "--feature_extractor.feature_size=64",
    "--feature_extractor.n_fft=512",
    "--feature_extractor.floor_db=70",
]


def test_note_aware_khp_trains_resumes_exactly_and_evaluates(tiny_dataset, tmp_path):
    """The "notes" architecture through the same trainer: augmented audio and noisy notes per window are
    a function of (seed, step), so resuming is bit-identical; validation scores audio and true notes."""
    common = ["--steps=3", "--eval_every=3", "--checkpoint_every=0", *NOTES]
    straight = run(tiny_dataset[0], tmp_path / "a", *common)
    model = KHPModel.from_pretrained(straight)
    assert model.uses_notes and model.config.feature_size == 64
    assert model.keyboard.null_quads.abs().sum() > 0  # the training set's mean keyboard layout
    assert run(tiny_dataset[0], tmp_path / "b", *common, "--stop_after=2") is None
    resumed = khp.main(
        [f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'b'}", *TINY, *common, "--resume"]
    )
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    logged = (tmp_path / "a" / "train_config.yaml").read_text()
    assert "architecture: notes" in logged


def test_shift_augmentation_moves_the_whole_scene_together():
    """With shift_augment, keypoints, reference, keyboard and coarse frames move by the same amount."""
    import numpy as np

    from apvg_hf.data.clips import Clip
    from apvg_hf.training.khp import WindowSampler

    rng = np.random.default_rng(0)
    T, S = 12, 16
    coarse = np.zeros((T, 3, S, S), np.uint8)
    coarse[..., 8] = 255  # a bright column at x = 8 px
    kp = np.full((T, 56, 2), 0.5, np.float32)  # every point at x = 8 px of 16
    meta = {"piece_id": "p", "appearance": "a", "camera": None, "clip_index": 0, "notes": None,
            "keyboard_quads": np.full((88, 4, 2), 0.5, np.float32).tolist()}  # fmt: skip
    clip = Clip(rng.random((T, 4)).astype(np.float32), kp, np.ones((T, 56), np.float32), coarse, meta)
    sampler = WindowSampler([clip], window=8, batch_size=6, coarse_frames=4, seed=0, shift=0.25)
    b = sampler.batch(0, 0, 0)
    dx = b["target_keypoints"][:, 0, 0, 0] - 0.5  # (B,)
    assert dx.abs().max() > 0 and (dx.abs() <= 0.25 + 1e-6).all()
    col = b["target_coarse_frames"][:, 0, 0, 0].argmax(-1)  # where the bright column went
    assert torch.equal(col, (8 + dx * S).round().long())
    assert torch.allclose(b["reference_keypoints"][:, 0, 0] - 0.5, dx)
    still = WindowSampler(
        [clip], window=8, batch_size=6, coarse_frames=4, seed=0, shift=0.25, shift_reference=False
    )
    b2 = still.batch(0, 0, 0)
    assert torch.equal(b2["target_keypoints"], b["target_keypoints"])  # the same draws
    assert (b2["reference_keypoints"] == 0.5).all() and (b2["reference_frames"][..., 8] == 1).all()
    plain = WindowSampler([clip], window=8, batch_size=6, coarse_frames=4, seed=0).batch(0, 0, 0)
    assert (plain["target_keypoints"] == 0.5).all()


def test_transposition_augmentation_moves_notes_audio_and_hands_together():
    """With transpose_augment, each window's notes go up k keys, its audio's pitch up k semitones (the
    feature rows still one per frame), and the hands move to the key k semitones away; the body and
    the keyboard stay, and those batches decode no coarse frames."""
    import numpy as np

    from apvg_hf import APVGFeatureExtractor
    from apvg_hf.data.clips import Clip
    from apvg_hf.hand_anchor import move_hands
    from apvg_hf.skeleton import FINGERTIPS, HAND_INDICES, INDEX
    from apvg_hf.training.khp import WindowSampler

    fps, sr, T = 30, 16000, 40
    fe = APVGFeatureExtractor(feature_size=229, n_fft=2048, sampling_rate=sr, fps=fps)
    quads = np.zeros((88, 4, 2), np.float32)
    quads[..., 0] = (np.arange(88) / 100 + 0.05)[:, None]  # key i centred at x = 0.05 + i / 100
    quads[..., 1] = 0.7
    kp = np.full((T, 56, 2), 0.5, np.float32)
    for h in ("left", "right"):
        kp[:, HAND_INDICES[h]] = [0.05 + (60 - 21) / 100, 0.7]  # both hands on middle C's key
    t = np.arange(int(T / fps * sr)) / sr
    tone = lambda f: (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)  # noqa: E731
    meta = {"piece_id": "p", "appearance": "a", "camera": None, "clip_index": 0, "fps": fps,
            "sampling_rate": sr, "keyboard_quads": quads.tolist(),
            "notes": [{"pitch": 60, "onset": 0.0, "offset": T / fps, "velocity": 80}]}  # fmt: skip
    coarse = np.zeros((T, 3, 8, 8), np.uint8)
    audio = (tone(261.63) * 32767).astype(np.int16)
    clip = Clip(fe(audio.astype(np.float32) / 32768, sampling_rate=sr)["input_features"][0], kp,
                np.ones((T, 56), np.float32), coarse, meta, audio=audio)  # fmt: skip
    kw = dict(window=16, batch_size=6, coarse_frames=4, seed=0, notes_extractor=fe, augment_audio=False)
    b = WindowSampler([clip], transpose=7, transpose_prob=1.0, **kw).batch(0, 0, 0)
    assert "target_coarse_frames" not in b and "coarse_frame_indices" in b  # decoded, not scored
    ks = b["target_piano_roll"][:, 5, :, 1].argmax(-1) - (60 - 21)  # (B,) the transpositions drawn
    assert ks.abs().max() > 0 and (ks.abs() <= 7).all()
    for i, k in enumerate(ks.tolist()):
        assert b["piano_roll"][i, 5, 60 - 21 + k, 1] == 1
        tips = b["target_keypoints"][i, :, FINGERTIPS["left"] + FINGERTIPS["right"], 0]
        assert torch.allclose(tips, torch.tensor(0.05 + (60 - 21 + k) / 100), atol=1e-5)
        assert torch.allclose(
            b["target_keypoints"][i, :, INDEX["left_elbow"], 0], torch.tensor(0.5 + k / 200)
        )
        assert (b["target_keypoints"][i, :, INDEX["nose"]] == 0.5).all()
        want = fe(tone(261.63 * 2 ** (k / 12)), sampling_rate=sr)["input_features"][0]  # (T, 229)
        got = b["input_features"][i].numpy()
        assert got.shape == (16, 229) and abs(int(got[5].argmax()) - int(want[5].argmax())) <= 1
    assert torch.equal(b["reference_keys"][0], torch.from_numpy(quads))  # the keyboard stays
    plain = WindowSampler([clip], **kw).batch(0, 0, 0)
    assert "target_coarse_frames" in plain and (plain["piano_roll"][:, :, 60 - 21, 1] == 1).all()
    moved = move_hands(kp[:2], {"left": (0.1, 0.0), "right": (0.0, 0.0)})
    assert np.allclose(moved[:, INDEX["left_wrist"], 0], 0.6) and np.allclose(
        moved[:, INDEX["right_wrist"], 0], 0.5
    )
    with pytest.raises(ValueError, match="note-aware"):
        WindowSampler([clip], window=16, batch_size=2, coarse_frames=4, seed=0, transpose=3)
