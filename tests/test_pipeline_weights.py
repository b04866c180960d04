"""The committed KHP of the default pipeline loads and runs (weights are in git, no download)."""

from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import AutoFeatureExtractor, AutoModel

import apvg_hf  # noqa: F401
from apvg_hf import APVGFeatureExtractor, KHPModel
from apvg_hf.evaluation import khp_predict

KHP_DIR = Path(__file__).parents[1] / "pipelines" / "apvg-virtual-pianist" / "khp"


def committed():
    model = AutoModel.from_pretrained(KHP_DIR).eval()
    assert isinstance(model, KHPModel)
    fe = AutoFeatureExtractor.from_pretrained(KHP_DIR)
    assert isinstance(fe, APVGFeatureExtractor)
    return model, fe


SCALE = [  # C major up and down, then a C major chord: 4 s
    {"pitch": p, "onset": 0.25 * i, "offset": 0.25 * i + 0.22, "velocity": 80}
    for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62])
] + [{"pitch": p, "onset": 3.5, "offset": 3.9, "velocity": 90} for p in (48, 52, 55)]


def reference_inputs():
    from apvg_hf import AppearanceReference

    ref = AppearanceReference.from_pretrained(KHP_DIR.parent / "reference")
    return ref.keypoints.numpy(), ref.at(32).numpy(), ref.keyboard_quads.numpy()


def test_committed_khp_loads_hears_the_notes_and_plays_them():
    from apvg_hf.evaluation.keypress import note_events
    from apvg_hf.evaluation.transcription import note_metrics
    from apvg_hf.midi import render_notes
    from apvg_hf.piano_roll import notes_to_roll

    model, fe = committed()
    # the recipes: khp.yaml, then the fine-tune khp_contact.yaml, whose model fields override, then the
    # transcriber alone (khp_transcriber.yaml), after which the decoding thresholds were chosen again on
    # validation (onset 0.35, sustain 0.5), as key contact's reach was (key_contact_reach_validation.md);
    # then the motion decoder on the motion pool, the transcriber frozen (khp_motion.yaml)
    first, second = (
        yaml.safe_load((KHP_DIR.parent / f).read_text()) for f in ("khp.yaml", "khp_contact.yaml")
    )
    chosen = {"onset_threshold": 0.35, "frame_threshold": 0.5}
    for key, value in (first["model"] | second["model"] | chosen).items():
        assert getattr(model.config, key) == value, key
    last = yaml.safe_load((KHP_DIR / "train_config.yaml").read_text())
    assert last["motion_pool"] and last["train_transcriber"] is False
    assert (
        model.config.key_release_frames == 0
    )  # measured on validation, not chosen (key_contact_release_validation.md)
    wave = render_notes(SCALE, sampling_rate=16000, duration=4.5)
    feats = fe(wave, sampling_rate=16000)["input_features"][0]
    assert feats.shape == (135, fe.feature_size)
    kp_ref, frame_ref, keys = reference_inputs()
    out = khp_predict(model, feats, kp_ref, frame_ref, keys)
    assert out["keypoints"].shape == (135, 56, 2) and out["coarse"].shape == (135, 3, 32, 32)
    kp = out["keypoints"]
    assert np.isfinite(kp).all() and kp.min() > 0.02 and kp.max() < 0.98  # on screen
    heard = note_metrics(SCALE, out["notes"])
    assert heard["onset"]["f1"] >= 0.8, heard  # the transcriber hears a plain scale
    # heard or given as MIDI, each note has a fingertip over its key within ±2 frames of its onset (measured:
    # 17 of 17 both ways); the same scale an octave up moves the fingers there (17 of 17; a still pose, the
    # mean of the training set, hits 28% of the test pieces' notes)
    from apvg_hf.evaluation.keypress import note_hits

    pitches = list(range(21, 109))
    events = note_events(SCALE, 30, 135)
    assert note_hits(kp, keys, pitches, events)[0] >= 15
    played = khp_predict(model, feats, kp_ref, frame_ref, keys, piano_roll=notes_to_roll(SCALE, 135, 30))
    assert note_hits(played["keypoints"], keys, pitches, events)[0] >= 15
    up = [{**n, "pitch": n["pitch"] + 12} for n in SCALE]
    octave = khp_predict(model, feats, kp_ref, frame_ref, keys, piano_roll=notes_to_roll(up, 135, 30))
    assert note_hits(octave["keypoints"], keys, pitches, note_events(up, 30, 135))[0] >= 15
    # (clean strikes are rarer: key-press F1 is 0.1-0.2 on the test pieces, see khp_results.md)


def test_committed_khp_ignores_the_noise_floor_and_rests_in_silence():
    """White noise at -60 dBFS moves no keypoint by a pixel on average at 128; silence: no notes, still hands."""
    from apvg_hf.midi import render_notes
    from apvg_hf.skeleton import INDEX

    model, fe = committed()
    kp_ref, frame_ref, keys = reference_inputs()
    wave = render_notes(SCALE, sampling_rate=16000, duration=4.5)
    noise = np.random.default_rng(0).standard_normal(len(wave)).astype(np.float32) * 10 ** (-60 / 20)
    clean, noisy = (
        khp_predict(model, fe(w, sampling_rate=16000)["input_features"][0], kp_ref, frame_ref, keys)
        for w in (wave, wave + noise)
    )
    shift = np.linalg.norm(noisy["keypoints"] - clean["keypoints"], axis=-1) * 128
    print(
        f"noise shift: mean {shift.mean():.3f} px, 99th percentile {np.percentile(shift, 99):.2f} px at 128"
    )
    assert shift.mean() < 1.0, shift.mean()
    silence = khp_predict(
        model, fe(np.zeros(3 * 16000), sampling_rate=16000)["input_features"][0], kp_ref, frame_ref, keys
    )
    assert silence["notes"] == []
    wrists = silence["keypoints"][:, [INDEX["left_wrist"], INDEX["right_wrist"]]]
    assert np.abs(np.diff(wrists, axis=0)).max() * 128 < 0.5  # a resting performer


STU_DIR = KHP_DIR.parent / "stu"


def test_committed_stu_renders_the_khp_output():
    """KHP keypoints -> heatmaps -> the committed STU (its recipe: stu_256.yaml, 256 frames from a
    network at 128): frames that look like the reference scene."""
    from apvg_hf import STUModel
    from apvg_hf.evaluation.frames import stu_render

    stu = STUModel.from_pretrained(STU_DIR)
    recipe = yaml.safe_load((KHP_DIR.parent / "stu_256.yaml").read_text())
    R = stu.config.resolution
    assert (R, stu.map_resolution) == (256, 128)
    for key, value in recipe["model"].items():
        got = getattr(stu.config, key)
        assert (list(got) if isinstance(got, tuple | list) else got) == value, key
    khp = KHPModel.from_pretrained(KHP_DIR)
    feats = APVGFeatureExtractor.from_pretrained(KHP_DIR)(np.zeros(16000), sampling_rate=16000)[
        "input_features"
    ][0]
    out = khp_predict(khp, feats, *reference_inputs())
    # a plain reference: the coarse prediction upsampled stands in for a real frame of the scene
    reference = torch.nn.functional.interpolate(torch.from_numpy(out["coarse"][:1]), size=R, mode="bilinear")[
        0
    ]
    frames = stu_render(stu, out["keypoints"], out["visibility"], out["coarse"], reference.numpy(), chunk=16)
    assert frames.shape == (30, 3, R, R) and torch.isfinite(frames).all()
    assert frames.min() >= 0 and frames.max() <= 1
    assert (frames - reference).abs().mean() < 0.25  # the scene is kept, not repainted from scratch


def test_embedded_default_pipeline_loads_every_way():
    """The one folder: by the task's default, APVGPipeline, each component (+ AutoModel), identically."""
    from transformers import pipeline

    from apvg_hf import AppearanceReference, APVGPipeline, STUModel, default_pipeline_path

    folder = KHP_DIR.parent
    assert Path(default_pipeline_path()) == folder
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.parent != folder and f.is_file())
    assert size < 40 * 2**20  # components: tens of MB at most
    pipe = APVGPipeline.from_pretrained(folder)
    task = pipeline("audio-to-performance-video")  # no model: the embedded default
    t = np.arange(16000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 261.6 * t) * (t % 0.5 < 0.25)).astype(np.float32)
    a = pipe(wave, sampling_rate=16000, show_progress=False)
    b = task(wave, sampling_rate=16000)
    assert a.frames.shape == (30, 256, 256, 3) and np.array_equal(a.frames, b["frames"])
    assert 40 < a.frames.mean() < 220 and a.frames.std() > 10  # a picture, not a flat field
    khp = AutoModel.from_pretrained(folder, subfolder="khp")
    assert isinstance(khp, KHPModel)
    for k, v in khp.state_dict().items():
        assert torch.equal(v, pipe.khp.state_dict()[k]), k
    for name, cls in [("stu", STUModel), ("reference", AppearanceReference)]:
        sub = cls.from_pretrained(folder, subfolder=name)
        for k, v in sub.state_dict().items():
            assert torch.equal(v, getattr(pipe, name).state_dict()[k]), (name, k)
    assert APVGFeatureExtractor.from_pretrained(folder, subfolder="feature_extractor").to_dict() == (
        pipe.feature_extractor.to_dict()
    )


FOURMS = Path(__file__).parents[1] / "pipelines" / "fourms-pianist"


def test_committed_personalised_weights_load_run_and_credit_the_footage():
    """The fourMs pianist's fine-tunes: the recipes' overrides are in the configs, the models run with a
    reference built like the recipe's (no footage is committed: a plain frame here), the coarse head
    paints the dark studio rather than the virtual pianist's bright room, and the card credits and
    licenses the footage."""
    from apvg_hf import AppearanceReference, APVGPipeline, STUModel
    from apvg_hf.data.real import quads_from_corners

    recipe = yaml.safe_load((FOURMS / "personalise.yaml").read_text())
    khp = AutoModel.from_pretrained(FOURMS / "khp").eval()
    assert isinstance(khp, KHPModel) and khp.uses_notes
    for key, value in yaml.safe_load((FOURMS / "khp.yaml").read_text())["model"].items():
        assert getattr(khp.config, key) == value, key
    stu = STUModel.from_pretrained(FOURMS / "stu").eval()
    assert stu.config.resolution == 128
    fe = APVGFeatureExtractor.from_pretrained(FOURMS / "khp")
    # the keyboard as preprocessing maps it into the crop (the crop `apvg preprocess` chose for the clip)
    pre = recipe["preprocess"]
    x0, y0, side = 222, 62, 273
    corners = (np.asarray(pre["keyboard_corners"], np.float64).reshape(4, 2) - [x0, y0]) / side
    quads = quads_from_corners(corners, pre["keyboard_transpose"])
    ref = AppearanceReference.from_frame(
        np.full((128, 128, 3), 40, np.uint8), reference_inputs()[0], keyboard_quads=quads
    )
    from apvg_hf.midi import render_notes

    wave = render_notes(SCALE, sampling_rate=16000, duration=4.5)
    out = APVGPipeline(fe, khp, stu, ref)(wave, sampling_rate=16000, output_type="pt", show_progress=False)
    assert out.frames.shape == (135, 3, 128, 128) and torch.isfinite(out.frames).all()
    released, _ = committed()
    feats = fe(wave, sampling_rate=16000)["input_features"][0]
    kp_ref, frame_ref, keys = reference_inputs()
    dark = khp_predict(khp, feats, kp_ref, frame_ref, keys)["coarse"].mean()
    bright = khp_predict(released, feats, kp_ref, frame_ref, keys)["coarse"].mean()
    assert dark < bright - 0.1, (dark, bright)
    card = (FOURMS / "README.md").read_text()
    assert "GPL-3.0" in card and "fourMs" in card and "University of Oslo" in card
    assert not (FOURMS / "reference").exists()  # a frame of the footage: never committed


def test_committed_personalised_khp_anchors_hands_to_the_notes_keys():
    """The fourMs KHP's hand anchoring, as the recipe fits it: the settings chosen on validation, offsets
    of a few % of the frame; played an octave apart on this keyboard (MIDI in), the left hand's
    fingertips go where the notes' keys are, within the dead zone, where without anchoring they do not
    move as far."""
    from apvg_hf.data.real import quads_from_corners
    from apvg_hf.hand_anchor import white_key_width
    from apvg_hf.piano_roll import notes_to_roll
    from apvg_hf.skeleton import FINGERTIPS

    recipe = yaml.safe_load((FOURMS / "personalise.yaml").read_text())
    khp = KHPModel.from_pretrained(FOURMS / "khp").eval()
    anchor = khp.config.hand_anchor
    assert anchor is not None and all(anchor[k] == v for k, v in recipe["hand_anchor"].items())
    assert np.abs(anchor["offsets"]).max() < 0.1 and 0 < anchor["body_follow"][0] < 1
    pre = recipe["preprocess"]
    corners = (np.asarray(pre["keyboard_corners"], np.float64).reshape(4, 2) - [222, 62]) / 273
    quads = quads_from_corners(corners, pre["keyboard_transpose"]).astype(np.float32)  # (88, 4, 2)
    centres = quads.mean(1)
    T, fps = 150, 30
    moved = {}
    for low in (40, 52):  # bass notes an octave apart (sounding pitch): the left hand's anchor
        notes = [{"pitch": p, "onset": t, "offset": t + 0.2, "velocity": 80}
                 for t in np.arange(0, 5, 0.25) for p in (low, low + 36)]  # fmt: skip
        roll = notes_to_roll(notes, T, fps)
        kp_ref, frame_ref, _ = reference_inputs()
        out = khp_predict(khp, None, kp_ref, frame_ref, quads, piano_roll=roll)["keypoints"]  # (T, K, 2)
        tips = out[30:120, FINGERTIPS["left"]].mean(1)  # (90, 2), away from the ends
        target = centres[low - 21] + np.asarray(anchor["offsets"][0])
        dead = anchor["dead_zone_keys"] * white_key_width(centres)
        assert np.linalg.norm(tips - target, axis=-1).max() <= dead + 1e-3, low
        khp.config.hand_anchor = None
        bare = khp_predict(khp, None, kp_ref, frame_ref, quads, piano_roll=roll)["keypoints"]
        khp.config.hand_anchor = anchor
        moved[low] = tips.mean(0), bare[30:120, FINGERTIPS["left"]].mean((0, 1))
    octave = np.linalg.norm(centres[52 - 21] - centres[40 - 21])
    with_anchor = np.linalg.norm(moved[52][0] - moved[40][0])
    alone = np.linalg.norm(moved[52][1] - moved[40][1])
    assert with_anchor > alone and with_anchor > 0.5 * octave, (with_anchor, alone, octave)
