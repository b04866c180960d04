"""The STU trainer (`apvg_hf.training.stu`, behind scripts/train_stu.py): a 2-step CPU run, exact resume
(with the discriminator on), two real processes, clear errors, a stop by a signal to the process group
(DataLoader workers included); scripts/evaluate_stu.py on the result; the frames cache and the frame
metrics."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from apvg_hf import APVGFeatureExtractor, STUModel
from apvg_hf.data.clips import load_clips, load_frames
from apvg_hf.evaluation.frames import FrameMetrics, hand_boxes, stu_render
from apvg_hf.training import stu
from apvg_hf.training.stu_objective import PatchDiscriminator, discriminator_input, reconstruction_losses
from conftest import launch_two_processes, load_script
from train_helpers import assert_same_weights, group_gone, stop_with_group_sigterm

TINY = [
    "--model.resolution=64",
    "--model.block_channels=[8,16,16]",
    "--model.graph_hidden=8",
    "--discriminator.channels=8",
    "--batch_size=2",
    "--window_frames=3",
    "--burn_in_frames=1",
    "--coarse_size=16",
    "--eval_clips=1",
    "--eval_frames=8",
    "--log_every=1",
    "--warmup_steps=1",
    "--adversarial_start=0",
    "--num_workers=0",
]


def run(dataset, out, *extra):
    return stu.main([f"--dataset={dataset}", f"--output_dir={out}", *TINY, *extra])


def test_two_step_run_saves_a_loadable_model(tiny_dataset, tmp_path):
    model_dir = run(
        tiny_dataset[0],
        tmp_path,
        "--steps=2",
        "--eval_every=2",
        "--checkpoint_every=2",
        "--num_workers=1",  # heatmaps rendered in a DataLoader worker
        "--loss.hands=1.0",  # hand masks made in the worker too
        "--log_every=1",
    )
    model = STUModel.from_pretrained(model_dir)
    assert model.config.resolution == 64 and list(model.config.block_channels) == [8, 16, 16]
    assert (model_dir / "train_config.yaml").exists()
    ckpt = tmp_path / "checkpoints" / "step-000002"
    assert (ckpt / "trainer_state.json").exists() and (
        ckpt / "model_1.safetensors"
    ).exists()  # + discriminator
    events = list((tmp_path / "stu").glob("events.out.tfevents.*"))
    assert events and b"val/ground_truth_vs_generated" in events[0].read_bytes()  # the validation image
    load_script("plot_training").main(["--run", str(tmp_path), "--output", str(tmp_path / "curves")])
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (
        "| 2 |" in (tmp_path / "curves.md").read_text() and "val/psnr" in (tmp_path / "curves.md").read_text()
    )


def test_resume_is_exact(tiny_dataset, tmp_path):
    """4 steps straight == 2 steps, stop, resume for 2 more: bit-identical generator weights."""
    common = ["--steps=4", "--eval_every=0", "--checkpoint_every=0"]
    straight = run(tiny_dataset[0], tmp_path / "a", *common)
    assert run(tiny_dataset[0], tmp_path / "b", *common, "--stop_after=2") is None
    resumed = stu.main(
        [f"--dataset={tiny_dataset[0]}", f"--output_dir={tmp_path / 'b'}", *TINY, *common, "--resume"]
    )
    a = load_file(straight / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    mid = load_file(tmp_path / "b" / "checkpoints" / "step-000002" / "model.safetensors")
    assert any(not torch.equal(a[k], mid[k]) for k in a)  # and the resumed steps did train
    # the weights of a stopped run's checkpoint, exported as a model folder (scripts/export_stu.py)
    ckpt = tmp_path / "b" / "checkpoints" / "step-000002"
    out = load_script("export_stu").main(["--run", str(tmp_path / "b"), "--checkpoint", str(ckpt)])
    exported = STUModel.from_pretrained(out).state_dict()
    assert all(torch.equal(exported[k], mid[k]) for k in mid) and exported.keys() == mid.keys()
    assert "stop_after: 2" in (out / "train_config.yaml").read_text()
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        load_script("export_stu").main(["--run", str(tmp_path / "nothing")])


@pytest.mark.slow  # a trainer in a subprocess, then two runs to compare: 20-60 s on 2 CPU cores
def test_group_sigterm_checkpoints_and_resume_is_exact(tiny_dataset, tmp_path):
    """SIGTERM to the whole process group after step 1, DataLoader worker included (it ignores the
    signal): the main process finishes the step, checkpoints, stops the worker and exits 0 (not
    "DataLoader worker ... killed by signal"); `--resume` to the end gives the generator and
    discriminator of an uninterrupted run, bit for bit."""
    steps = 8
    common = [f"--dataset={tiny_dataset[0]}", *TINY, f"--steps={steps}", "--eval_every=0"]
    common += ["--num_workers=1", "--keep_checkpoints=1"]  # after TINY's --num_workers=0: wins
    code, out, stopped, pgid = stop_with_group_sigterm(
        "train_stu", [*common, "--checkpoint_every=1"], tmp_path / "stopped"
    )
    assert code == 0, out[-3000:]
    assert f"stopped after step {stopped} (interrupted)" in out and "Traceback" not in out, out[-3000:]
    assert 1 <= stopped < steps, f"the run ended at step {stopped} of {steps} before the signal"
    assert group_gone(pgid), "a DataLoader worker outlived the trainer"
    last = [f"--checkpoint_every={steps}"]  # a checkpoint at the end only: both models' weights
    stu.main([*common, f"--output_dir={tmp_path / 'stopped'}", *last, "--resume"])
    stu.main([*common, f"--output_dir={tmp_path / 'straight'}", *last])
    for name in ("model.safetensors", "model_1.safetensors"):  # generator, discriminator
        a, b = (tmp_path / d / "checkpoints" / f"step-{steps:06d}" / name for d in ("straight", "stopped"))
        assert_same_weights(a, b)


@pytest.mark.slow  # two real DDP processes (accelerate launch)
def test_two_real_processes(tiny_dataset, tmp_path):
    proc = launch_two_processes(
        "train_stu",
        f"--dataset={tiny_dataset[0]}",
        f"--output_dir={tmp_path}",
        *TINY,
        "--steps=2",
        "--eval_every=2",
        "--checkpoint_every=2",
    )
    ckpt = tmp_path / "checkpoints" / "step-000002"
    assert (ckpt / "random_states_0.pkl").exists() and (ckpt / "random_states_1.pkl").exists()
    assert proc.stdout.count("saved ") == 1
    STUModel.from_pretrained(tmp_path / "model")


def test_clear_errors(tiny_dataset, tmp_path):
    with pytest.raises(SystemExit):
        stu.main([f"--output_dir={tmp_path}", "--no_such_key=1"])
    with pytest.raises(FileNotFoundError, match="build_dataset"):
        run(tmp_path / "missing", tmp_path, "--steps=1")
    with pytest.raises(ValueError, match="frames a window needs"):
        run(tiny_dataset[0], tmp_path / "long", "--steps=1", "--window_frames=100000")
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        run(tiny_dataset[0], tmp_path / "fresh", "--steps=1", "--resume")


def test_evaluate_script_with_ablations(tiny_dataset, tmp_path):
    common = ["--steps=1", "--eval_every=0", "--checkpoint_every=0"]
    full = run(tiny_dataset[0], tmp_path / "full", *common)
    plain = run(tiny_dataset[0], tmp_path / "plain", *common, "--model.use_graph=false")
    out = tmp_path / "eval" / "results.json"
    load_script("evaluate_stu").main(
        ["--model", str(full), "--compare", f"no graph={plain}", "--dataset", str(tiny_dataset[0])]
        + ["--output", str(out), "--max-frames", "10"]
    )
    rows = json.loads(out.read_text())["results"]
    assert set(rows) == {
        "STU (graph + ConvGRU)",
        "no graph",
        "reference frame (copied)",
        "coarse frame (upsampled)",
    }
    for name, r in rows.items():
        assert 0 < r["psnr"] < 100 and 0 < r["ssim"] <= 1 and r["flicker"] >= 0, name
    assert "| no graph |" in out.with_suffix(".md").read_text()
    assert (tmp_path / "eval" / "results_grid.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="NAME=DIR"):
        load_script("evaluate_stu").main(
            ["--model", str(full), "--compare", "nameless", "--dataset", str(tiny_dataset[0])]
            + ["--output", str(out)]
        )


def test_pixel_shuffle_stu_trains_from_an_upscaled_stu_and_is_scored_beside_it(tiny_dataset, tmp_path):
    """A 32 STU trained a step, upscaled (scripts/upscale_stu.py) and trained 2 steps at 64 with
    pixel_shuffle=2 and the discriminator on (pose maps at 32, frames at 64); evaluate_stu scores it
    beside the 32 STU upscaled to 64."""
    common = ["--steps=1", "--eval_every=1", "--checkpoint_every=0", "--adversarial_start=0"]
    small = run(tiny_dataset[0], tmp_path / "small", *common, "--model.resolution=32")
    load_script("upscale_stu").main(["--model", str(small), "--output", str(tmp_path / "init")])
    big = run(tiny_dataset[0], tmp_path / "big", *common, "--steps=2", f"--init_from={tmp_path / 'init'}")
    model = STUModel.from_pretrained(big)
    assert model.config.resolution == 64 and model.config.pixel_shuffle == 2
    changed = load_file(big / "diffusion_pytorch_model.safetensors")
    start = load_file(tmp_path / "init" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(changed[k], start[k]) for k in start)  # it trained
    out = tmp_path / "eval" / "results.json"
    load_script("evaluate_stu").main(
        ["--model", str(big), "--name", "64 (pixel shuffle)", "--compare", f"32 upscaled={small}"]
        + ["--dataset", str(tiny_dataset[0]), "--output", str(out), "--max-frames", "6", "--no-plots"]
    )
    res = json.loads(out.read_text())
    assert res["meta"]["resolution"] == 64 and res["meta"]["upscaled"] == {"32 upscaled": 32}
    for r in res["results"].values():
        assert 0 < r["psnr"] < 100 and r["frames"] > 0
    assert "32 upscaled: rendered at 32x32 and upscaled (bicubic)" in out.with_suffix(".md").read_text()
    STUModel(block_channels=(8, 16, 16), graph_hidden=8, resolution=48).save_pretrained(tmp_path / "odd")
    with pytest.raises(SystemExit, match="must be 64 or divide it"):
        load_script("evaluate_stu").main(
            ["--model", str(big), "--compare", f"odd={tmp_path / 'odd'}", "--dataset", str(tiny_dataset[0])]
            + ["--output", str(out)]
        )
    with pytest.raises(SystemExit, match="without pixel_shuffle"):
        load_script("upscale_stu").main(["--model", str(big), "--output", str(tmp_path / "again")])


def test_load_frames_matches_clips(tiny_dataset):
    clips = load_clips(tiny_dataset[0], "validation", APVGFeatureExtractor(), 16, progress=False)
    frames = load_frames(tiny_dataset[0], "validation", 32, progress=False)
    assert [len(f) for f in frames] == [c.num_frames for c in clips]
    assert frames[0].dtype == np.uint8 and frames[0].shape[1:] == (3, 32, 32)
    # the 16x16 coarse frames are the 32x32 frames averaged 2x2 (both area-downsampled from 64x64)
    pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(np.array(frames[0])).float(), 2)
    assert (pooled - torch.tensor(clips[0].coarse).float()).abs().max() <= 1.0
    again = load_frames(tiny_dataset[0], "validation", 32, progress=False)  # from the cache
    assert np.array_equal(again[0], frames[0])


def test_frame_metrics_values():
    y = torch.rand(5, 3, 16, 16) * 0.8
    m = FrameMetrics()
    m.update(y + 0.1, y)  # a constant offset: MSE 0.01 -> 20 dB, and no flicker at all
    r = m.compute()
    assert abs(r["psnr"] - 20.0) < 1e-3 and r["flicker"] < 1e-4 and r["frames"] == 5
    m = FrameMetrics()
    m.update(y[torch.tensor([0, 2, 1, 4, 3])], y)  # same frames, shuffled in time: flicker
    assert m.compute()["flicker"] > 1.0


def test_frame_metrics_vif_orders_degradations():
    """VIF is 1 for the same frames and falls as noise grows; off by default (it is the slow one)."""
    g = torch.Generator().manual_seed(0)
    y = torch.nn.functional.interpolate(torch.rand(3, 3, 16, 16, generator=g), size=64, mode="bilinear")
    scores = []
    for sigma in (0.0, 0.05, 0.2):
        m = FrameMetrics(vif=True)
        m.update((y + sigma * torch.randn(y.shape, generator=g)).clamp(0, 1), y)
        scores.append(m.compute()["vif"])
    assert abs(scores[0] - 1) < 1e-4 and scores[0] > scores[1] > scores[2]
    m = FrameMetrics()
    m.update(y, y)
    assert "vif" not in m.compute()


def test_hand_boxes_stay_inside_the_frame():
    kp = np.full((2, 56, 2), 0.99, np.float32)
    vis = np.ones((2, 56), np.float32)
    vis[1] = 0
    boxes = hand_boxes(kp, vis, 64)
    assert len(boxes[0]) == 2 and boxes[1] == []
    for y0, x0, s in boxes[0]:
        assert y0 >= 0 and y0 + s <= 64 and x0 >= 0 and x0 + s <= 64


def test_stu_render_chunks_equal_one_call():
    torch.manual_seed(0)
    model = STUModel(block_channels=(8, 16, 16), graph_hidden=8, resolution=32)
    kp = np.random.default_rng(0).random((9, 56, 2)).astype(np.float32)
    coarse = np.random.default_rng(1).integers(0, 255, (9, 3, 8, 8), dtype=np.uint8)
    ref = np.random.default_rng(2).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    whole = stu_render(model, kp, None, coarse, ref, chunk=100)
    parts = stu_render(model, kp, None, coarse, ref, chunk=2)
    assert whole.shape == (9, 3, 32, 32) and (whole - parts).abs().max() <= 1e-5


def test_objective_pieces():
    d = PatchDiscriminator(frames=2, channels=4, layers=2)
    frames, poses = torch.rand(2, 4, 3, 32, 32), torch.rand(2, 4, 2, 32, 32)
    x = discriminator_input(frames, poses, 2)  # each frame with the one before it: 3 per window
    assert x.shape == (6, 8, 32, 32) and d(x).shape == (6, 1, 8, 8)
    assert torch.equal(x[0, :3], frames[0, 0]) and torch.equal(x[0, 3:6], frames[0, 1])
    terms = reconstruction_losses(frames, frames)
    assert all(float(v) < 1e-6 for v in terms.values())
    mask = torch.zeros(2, 4, 1, 32, 32)
    mask[..., :8, :8] = 1  # a "hand" in the top-left corner
    worse = frames.clone()
    worse[..., :8, :8] += 0.2  # wrong only there
    terms = reconstruction_losses(worse, frames, mask)
    assert abs(float(terms["hands"]) - 0.2) < 1e-5 and abs(float(terms["l1"]) - 0.2 / 16) < 1e-5
    assert float(reconstruction_losses(worse, frames)["hands"]) == 0  # no mask: no term


def test_benchmark_script_writes_results(tmp_path):
    STUModel(block_channels=(8, 16, 16), graph_hidden=8, resolution=32).save_pretrained(tmp_path / "stu")
    out = tmp_path / "bench.json"
    load_script("benchmark").main(
        ["stu", "--model", str(tmp_path / "stu"), "--resolutions", "32", "64", "--frames", "6"]
        + ["--batch-frames", "3", "--repeats", "1", "--device", "cpu", "--output", str(out)]
    )
    rows = json.loads(out.read_text())["rows"]
    assert all(r["frames"] == 6 and r["batch_frames"] == 3 for r in rows)
    assert [(r["resolution"], r["precision"]) for r in rows] == [
        (32, "fp32"),
        (32, "bf16"),
        (64, "fp32"),
        (64, "bf16"),
    ]
    assert all(r["fps"] > 0 for r in rows) and "| stu | 64 | bf16 |" in out.with_suffix(".md").read_text()


def test_benchmark_times_architecture_variants(tmp_path):
    STUModel(block_channels=(8, 16, 16), graph_hidden=8, resolution=32).save_pretrained(tmp_path / "stu")
    out, bench = tmp_path / "bench.json", load_script("benchmark")
    common = [
        "--model",
        str(tmp_path / "stu"),
        "--resolutions",
        "32",
        "--precisions",
        "fp32",
        "--repeats",
        "1",
    ]
    bench.main(
        ["stu", *common, "--frames", "4", "--output", str(out), "--variants", "as-is"]
        + ["light=stem_kernel_size:1,skip_fusion:add,top_convs:1"]
    )
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["as-is", "light"]
    # the overrides reach the model, also from a config.json saved before the options existed
    cfg_path = tmp_path / "stu" / "config.json"
    old = {k: v for k, v in json.loads(cfg_path.read_text()).items() if k not in ("skip_fusion", "top_convs")}
    cfg_path.write_text(json.dumps(old))
    base, parsed = bench._variant_configs(tmp_path / "stu", ["as-is", "light=skip_fusion:add,top_convs:1"])
    (_, same), (_, light) = bench._models(base, parsed, 32)
    assert same is base and same.lateral is None
    assert light.lateral is not None and len(light.up[-1]) == 3
    assert "| light | 32 | fp32 |" in out.with_suffix(".md").read_text()
    assert bench.parse_variant("x=top_convs:1,skip_fusion:add") == (
        "x",
        {"top_convs": 1, "skip_fusion": "add"},
    )
    assert bench.parse_variant("w=block_channels:[8,16],top_convs:1") == (
        "w", {"block_channels": [8, 16], "top_convs": 1}
    )  # fmt: skip
    bench.main(
        ["train-stu", *common, "--batch-size", "1", "--window-frames", "2", "--burn-in-frames", "1"]
        + ["--output", str(out), "--variants", "a", "b=top_convs:1"]
    )
    assert [r["variant"] for r in json.loads(out.read_text())["rows"]] == ["a", "b"]
    bad = {
        "bad=skip_fusion:sum": "skip_fusion",  # a value the model refuses
        "bad=skip_fuson:add": "unknown STU config keys",  # a typo would time the unchanged model
        "bad=resolution:64": "--resolutions",
        "bad=top_convs": "key:value",
        "=top_convs:1": "needs a name",
    }
    for spec, match in bad.items():
        with pytest.raises(SystemExit, match=match):
            bench.main(["train-stu", *common, "--output", str(out), "--variants", spec])
    with pytest.raises(SystemExit, match="names must differ"):
        bench.main(["stu", *common, "--output", str(out), "--variants", "a", "a=top_convs:1"])


def test_training_step_benchmark_writes_results(tmp_path):
    STUModel(block_channels=(8, 16, 16), graph_hidden=8, resolution=32).save_pretrained(tmp_path / "stu")
    out = tmp_path / "train.json"
    load_script("benchmark").main(
        ["train-stu", "--model", str(tmp_path / "stu"), "--resolutions", "32", "--batch-size", "2"]
        + ["--window-frames", "3", "--burn-in-frames", "1", "--repeats", "1", "--precisions", "fp32"]
        + ["--device", "cpu", "--output", str(out)]
    )
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["resolution"], row["batch_size"], row["window_frames"]) == (32, 2, 3) and row[
        "steps_per_s"
    ] > 0
    assert "| stu | 32 | fp32 |" in out.with_suffix(".md").read_text()
