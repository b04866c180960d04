"""The note-aware KHP (architecture "notes"): transcriber + keyboard-aware motion decoder, on tiny
random models built in-process; and the piano roll it reads."""

import numpy as np
import pytest
import torch

from apvg_hf import KHPModel
from apvg_hf.piano_roll import LOWEST_PITCH, NUM_KEYS, notes_to_roll, roll_to_notes
from apvg_hf.skeleton import FINGERTIPS
from conftest import tiny_khp_config

TIPS = [i for h in ("left", "right") for i in FINGERTIPS[h]]
NOTES = [
    {"pitch": 60, "onset": 0.1, "offset": 0.5, "velocity": 90},
    {"pitch": 64, "onset": 0.7, "offset": 1.0, "velocity": 40},
    {"pitch": 21, "onset": 0.7, "offset": 0.8, "velocity": 127},
]


def notes_model(**kw) -> KHPModel:
    torch.manual_seed(0)
    cfg = tiny_khp_config(
        architecture="notes", feature_size=32, transcriber_layers=1, transcriber_channels=4, key_context=3
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return KHPModel(cfg).eval()


def keyboard(batch: int = 1) -> torch.Tensor:
    """(B, 88, 4, 2) key quads side by side across the lower third of the frame."""
    x0 = torch.linspace(0.05, 0.95, NUM_KEYS + 1)
    q = torch.stack(
        [
            torch.stack([x0[:-1], torch.full((NUM_KEYS,), 0.9)], -1),
            torch.stack([x0[1:], torch.full((NUM_KEYS,), 0.9)], -1),
            torch.stack([x0[1:], torch.full((NUM_KEYS,), 0.7)], -1),
            torch.stack([x0[:-1], torch.full((NUM_KEYS,), 0.7)], -1),
        ],
        1,
    )
    return q[None].expand(batch, -1, -1, -1).clone()


def test_piano_roll_round_trip_and_edges():
    roll = notes_to_roll(NOTES + [{"pitch": 10, "onset": 0.0, "offset": 1.0}], num_frames=40, fps=30)
    assert roll.shape == (40, NUM_KEYS, 3) and roll.dtype == np.float32
    back = roll_to_notes(roll, fps=30)
    assert [(n["pitch"], n["onset"], n["offset"]) for n in back] == [
        (60, 0.1, 0.5),
        (21, 0.7, 0.8),
        (64, 0.7, 1.0),
    ]
    assert [n["velocity"] for n in back] == [90, 127, 40]
    # a note that began before the clip sounds from frame 0 without an onset; one after the end is dropped
    roll = notes_to_roll(
        [{"pitch": 60, "onset": -0.5, "offset": 0.2}, {"pitch": 62, "onset": 2.0, "offset": 3.0}], 10, 30
    )
    assert (
        roll[:6, 60 - LOWEST_PITCH, 1].all()
        and not roll[..., 0].any()
        and not roll[:, 62 - LOWEST_PITCH].any()
    )
    with pytest.raises(ValueError, match="piano roll"):
        roll_to_notes(np.zeros((5, 80, 3)), fps=30)


def test_roll_to_notes_from_probabilities():
    """A run of onset frames gives one note at its peak; the note lasts while sustain stays high."""
    p = np.zeros((20, NUM_KEYS, 3), np.float32)
    k = 40 - LOWEST_PITCH
    p[4:7, k, 0] = [0.6, 0.9, 0.7]
    p[4:12, k, 1] = 0.8
    p[5, k, 2] = 0.5
    (note,) = roll_to_notes(p, fps=10)
    assert (note["pitch"], note["onset"], note["offset"], note["velocity"]) == (40, 0.5, 1.2, 64)


def test_shapes_loss_and_gradients():
    model = notes_model().train()
    B, T = 2, 30
    roll = torch.from_numpy(notes_to_roll(NOTES, T, 30))[None].expand(B, -1, -1, -1)
    out = model(
        torch.randn(B, T, 32),
        piano_roll=roll,
        reference_keys=keyboard(B),
        reference_keypoints=torch.rand(B, 56, 2),
        reference_frames=torch.rand(B, 3, 16, 16),
        target_keypoints=torch.rand(B, T, 56, 2),
        target_piano_roll=roll,
        target_coarse_frames=torch.rand(B, T, 3, 16, 16),
    )
    assert out.keypoints.shape == (B, T, 56, 2) and out.note_logits.shape == (B, T, NUM_KEYS, 3)
    assert out.loss_terms.shape == (len(KHPModel.loss_names),) and out.loss_terms[-1] > 0
    out.loss.backward()
    assert model.transcriber.head.weight.grad.abs().sum() > 0  # the transcription loss trains the transcriber
    assert model.keyboard.tip_query.weight.grad.abs().sum() > 0  # and the motion loss the pointer


def test_fingertips_point_at_keys():
    """With no offset allowed, every fingertip is a convex combination of key centres: on the keyboard."""
    model = notes_model(tip_offset_scale=0.0)
    keys = keyboard()
    out = model.predict(piano_roll=notes_to_roll(NOTES, 30, 30), reference_keys=keys[0])
    tips = out.keypoints[0, :, TIPS]  # (T, 10, 2)
    centres = keys[0].mean(1)
    assert (
        tips[..., 0].min() >= centres[:, 0].min() - 1e-6 and tips[..., 0].max() <= centres[:, 0].max() + 1e-6
    )
    assert torch.allclose(tips[..., 1], torch.full_like(tips[..., 1], 0.8), atol=1e-5)
    # moving the keyboard moves the fingertips with it
    shifted = model.predict(
        piano_roll=notes_to_roll(NOTES, 30, 30), reference_keys=keys[0] + torch.tensor([0.0, -0.2])
    )
    assert torch.allclose(shifted.keypoints[0, :, TIPS, 1], tips[..., 1] - 0.2, atol=1e-5)


def test_key_contact_rule():
    """Of the fingertips pointing at a struck key, the surest touches it, for `frames` frames from the
    onset while the key sounds; keys not struck are not touched."""
    model = notes_model()
    T, n = 12, 3
    roll = torch.zeros(1, T, NUM_KEYS, 3)
    roll[0, 2, 40, 0] = 1
    roll[0, 2:4, 40, 1] = 1  # a short note: sounds 2 frames only
    roll[0, 5, 50, 0] = 1
    roll[0, 5:11, 50, 1] = 1
    logits = torch.zeros(1, T, 10, NUM_KEYS)
    logits[..., 0, 40], logits[..., 1, 40] = 3.0, 5.0  # fingers 0 and 1 on key 40, finger 1 surer
    logits[..., 2, 50], logits[..., 3, 60] = 4.0, 4.0  # finger 2 on key 50; finger 3 on an unplayed key
    touch = model.keyboard.contact(logits, roll, n)  # (B, T, 10, 88)
    expected = torch.zeros_like(touch)
    expected[0, 2:4, 1, 40] = 1  # the surer finger, while the note sounds (2 < n frames)
    expected[0, 5 : 5 + n, 2, 50] = 1
    assert torch.equal(touch, expected)
    # the frames before each contact begins: the fingertip comes down (a held contact starts once)
    near = model.keyboard.approach(touch, 2)
    coming = torch.zeros_like(touch)
    coming[0, 0:2, 1, 40] = torch.tensor([0.5, 1.0])  # easing in: half-way, then above the key
    coming[0, 3:5, 2, 50] = torch.tensor([0.5, 1.0])
    assert torch.equal(near, coming)
    # and the frames after each contact ends: the fingertip eases off (not where it touches again)
    away = model.keyboard.release(touch, 2)
    going = torch.zeros_like(touch)
    going[0, 4:6, 1, 40] = torch.tensor([2 / 3, 1 / 3])  # above the key, then a third of the way
    going[0, 8:10, 2, 50] = torch.tensor([2 / 3, 1 / 3])
    assert torch.allclose(away, going)
    again = touch.clone()
    again[0, 5, 1, 41] = 1  # finger 1 strikes another key on the second frame after: no easing there
    assert model.keyboard.release(again, 2)[0, 5, 1].sum() == 0


def test_key_contact_reach_sends_a_free_fingertip_to_a_key_nobody_points_at():
    """With reach, a struck key no fingertip points at takes the free fingertip most likely to point at it
    (at least `reach`), one key a fingertip, in rounds; fingertips already on a struck key stay there."""
    model = notes_model()
    T, n = 6, 3
    roll = torch.zeros(1, T, NUM_KEYS, 3)
    for k in (40, 42, 44):  # a chord of three
        roll[0, 1, k, 0] = 1
        roll[0, 1:5, k, 1] = 1
    logits = torch.full((1, T, 10, NUM_KEYS), -4.0)
    logits[..., 3:, 70] = 5.0  # fingers 3-9 point at an unplayed key and like none of the chord
    logits[..., 0, 40], logits[..., 0, 42] = 5.0, 1.0  # finger 0 points at 40, a little at 42 (p 0.018)
    logits[..., 1, 40] = 7.0  # finger 1 points at 40, surer: it strikes 40
    logits[..., 2, 60], logits[..., 2, 42], logits[..., 2, 44] = (
        5.0,
        3.0,
        3.5,
    )  # finger 2: 60; 44 (p 0.16), 42
    plain = model.keyboard.contact(logits, roll, n)
    assert plain[0, 1:4].sum() == 3 and plain[0, 1:4, 1, 40].all()  # only key 40 struck by a finger
    touch = model.keyboard.contact(logits, roll, n, reach=0.01)
    expected = plain.clone()
    expected[0, 1:4, 2, 44] = 1  # round 1: 42 and 44 both want finger 2; it takes 44, which it likes more
    expected[0, 1:4, 0, 42] = 1  # round 2: 42 takes the likeliest free finger left, finger 0
    assert torch.equal(touch, expected)
    assert touch.sum(-1).max() <= 1 and touch.sum(2).max() <= 1  # one key a finger, one finger a key
    expected[0, 1:4, 0, 42] = 0  # finger 0 (p 0.018) is not likely enough at reach 0.05
    assert torch.equal(model.keyboard.contact(logits, roll, n, reach=0.05), expected)
    with pytest.raises(ValueError, match="key_contact_reach"):
        tiny_khp_config(architecture="notes", key_contact_reach=1.5)


def test_key_contact_hold_keeps_the_onsets_finger():
    """With hold, the finger chosen on the onset frame stays on the key for the contact frames even when
    another finger becomes surer; a newer onset takes the finger over."""
    model = notes_model()
    T, n = 8, 3
    roll = torch.zeros(1, T, NUM_KEYS, 3)
    roll[0, 1, 40, 0] = 1
    roll[0, 1:7, 40, 1] = 1
    roll[0, 3, 45, 0] = 1  # a new note for finger 0, while it still holds 40
    roll[0, 3:7, 45, 1] = 1
    logits = torch.full((1, T, 10, NUM_KEYS), -4.0)
    logits[0, :, 0, 40] = 5.0  # finger 0 points at 40 ...
    logits[0, 2:, 1, 40] = 6.0  # ... until finger 1 is surer, from frame 2
    logits[0, 3:, 0, 45] = 6.0  # and finger 0 points at 45 from frame 3
    loose = model.keyboard.contact(logits, roll, n)
    assert loose[0, 1, 0, 40] and loose[0, 2, 1, 40]  # frame by frame: the finger on 40 changes
    held = model.keyboard.contact(logits, roll, n, hold=True)
    expected = torch.zeros_like(held)
    expected[0, 1:3, 0, 40] = 1  # finger 0 strikes 40 and stays ...
    expected[0, 3:6, 0, 45] = 1  # ... until the newer onset takes it to 45
    assert torch.equal(held, expected)


def test_free_lift_raises_only_the_fingertips_that_strike_nothing():
    """free_lift: fingertips neither on a key nor coming down on one move towards their key's back by
    that fraction of its length; the striking ones do not move."""
    keys = keyboard()
    roll = notes_to_roll(NOTES, 40, 30)
    base = notes_model(key_contact_frames=3)
    lifted = notes_model(key_contact_frames=3, free_lift=0.2)
    a = base.predict(piano_roll=roll, reference_keys=keys[0]).keypoints[0, :, TIPS]  # (T, 10, 2)
    b = lifted.predict(piano_roll=roll, reference_keys=keys[0]).keypoints[0, :, TIPS]
    press = base.keyboard.press_points(keys)[0]  # (88, 2)
    on = (a[:, :, None] - press).norm(dim=-1).min(-1).values < 1e-6  # (T, 10): on a press point
    assert on.any() and (~on).any()
    assert torch.allclose(a[on], b[on], atol=1e-6)
    shift = b[~on] - a[~on]
    length = base.keyboard.key_axes(keys)[1][0]  # (88, 2): front -> back
    assert (shift[:, 1] * length[:, 1].mean()).min() > 0  # every free fingertip moved towards the back
    assert shift.norm(dim=-1).max() <= 0.2 * length.norm(dim=-1).max() + 1e-6


def test_key_contact_in_the_model():
    """With key contact, the touching fingertips sit exactly on their keys' press points, raised above
    them just before, and the others are the free model's; chunked inference stays exact."""
    n = 4
    free = notes_model()
    model = notes_model(key_contact_frames=n, key_approach_frames=2, press_lift=0.5)
    keys = keyboard()
    roll = notes_to_roll(NOTES, 40, 30)
    seen = {}
    fingertips = model.keyboard.fingertips

    def spy(*args, **kwargs):
        tips, logits = fingertips(*args, **kwargs)
        seen["logits"] = logits
        return tips, logits

    model.keyboard.fingertips = spy
    out = model.predict(piano_roll=roll, reference_keys=keys[0])
    tips = out.keypoints[0, :, TIPS]  # (T, 10, 2)
    touch = model.keyboard.contact(seen["logits"], torch.from_numpy(roll)[None], n)[0]  # (T, 10, 88)
    assert touch.sum() > 0
    press = model.keyboard.press_points(keys)[0]  # (88, 2)
    near = model.keyboard.approach(touch[None], 2)[0]  # (T, 10, 88)
    w = near.sum(-1, keepdim=True)  # (T, 10, 1): how far towards above the key about to be struck
    coming = w[..., 0] > 0
    on = (touch.sum(-1) > 0) & ~coming  # (T, 10): on the press point
    assert torch.allclose(tips[on], (touch @ press)[on], atol=1e-6)
    up = press + 0.5 * (keys[0, :, 2:].mean(1) - keys[0, :, :2].mean(1))  # half a key's length back
    base = free.predict(piano_roll=roll, reference_keys=keys[0]).keypoints[0, :, TIPS]
    held = torch.where(touch.sum(-1, keepdim=True) > 0, touch @ press, base)  # leaving a key it held
    eased = near @ up + (1 - w) * held
    assert coming.sum() > 0 and torch.allclose(tips[coming], eased[coming], atol=1e-6)
    assert torch.allclose(tips[~(on | coming)], base[~(on | coming)], atol=1e-6)
    parts = model.predict(piano_roll=roll, reference_keys=keys[0], chunk_frames=7)
    assert torch.allclose(out.keypoints, parts.keypoints, atol=1e-6)
    with pytest.raises(ValueError, match="key_contact_frames"):
        tiny_khp_config(architecture="notes", key_contact_frames=-1)
    with pytest.raises(ValueError, match="key_release_frames"):
        tiny_khp_config(architecture="notes", key_release_frames=-1)
    # with release: after a contact the fingertip eases from above the key back to the free model's
    model.config.key_release_frames = 2
    eased_out = model.predict(piano_roll=roll, reference_keys=keys[0])
    tips2 = eased_out.keypoints[0, :, TIPS]
    away = model.keyboard.release(touch[None], 2)[0]  # (T, 10, 88)
    v = away.sum(-1, keepdim=True)
    going = (v[..., 0] > 0) & ~coming  # leaving a key (and not coming down on the next one)
    assert going.sum() > 0
    assert torch.allclose(tips2[going], (away @ up + (1 - v) * base)[going], atol=1e-6)
    assert torch.allclose(tips2[on], tips[on]) and torch.allclose(
        tips2[~(going | coming)], tips[~(going | coming)]
    )
    parts = model.predict(piano_roll=roll, reference_keys=keys[0], chunk_frames=7)
    assert torch.allclose(eased_out.keypoints, parts.keypoints, atol=1e-6)  # chunking stays exact


def test_pointer_target_press_changes_the_pointer_loss_only():
    """pointer_target="press": the pointer's cross-entropy asks for the key with the nearest press point.
    At a white key's press depth, just inside the black key beside it (D#3 | E3), the nearest centre is
    the black key's and the nearest press point the white key's: only the pointer term differs."""
    B, T = 1, 12
    roll = torch.from_numpy(notes_to_roll(NOTES, T, 30))[None]
    keys = keyboard(B)
    target = torch.rand(B, T, 56, 2, generator=torch.Generator().manual_seed(0))
    target[:, :, TIPS] = torch.tensor([float(keys[0, 30, 1, 0]) - 0.001, 0.9 - 0.2333 * 0.2])
    feats = torch.randn(B, T, 32, generator=torch.Generator().manual_seed(1))
    terms = {}
    for mode in ("centre", "press"):
        model = notes_model(pointer_target=mode)
        with torch.no_grad():  # a pointer with opinions (a fresh one scores every key the same)
            g = torch.Generator().manual_seed(2)
            for layer in (model.keyboard.tip_query, model.keyboard.key_proj):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
        out = model(feats, piano_roll=roll, reference_keys=keys, target_keypoints=target)
        terms[mode] = out.loss_terms
    assert torch.allclose(terms["centre"][:-1], terms["press"][:-1])  # everything else is the same
    assert not torch.allclose(terms["centre"][-1], terms["press"][-1])
    with pytest.raises(ValueError, match="pointer_target"):
        tiny_khp_config(architecture="notes", pointer_target="middle")


def test_press_points_are_the_virtual_pianists():
    """The model's press points (from `press_depth`) are where the virtual pianist presses each key."""
    from apvg_hf.data.scene import ALL_PITCHES, Camera, keyboard_quads
    from apvg_hf.evaluation.keypress import press_points

    model = notes_model()
    quads, pitches = keyboard_quads(Camera()), ALL_PITCHES
    assert len(pitches) == NUM_KEYS and pitches[0] == LOWEST_PITCH
    mine = model.keyboard.press_points(torch.as_tensor(quads, dtype=torch.float32)[None])[0]
    assert np.allclose(mine.numpy(), press_points(quads, pitches), atol=1e-5)


def test_chunked_inference_is_exact_and_notes_come_back():
    model = notes_model()
    T = 70
    feats = torch.randn(T, 32)
    roll = notes_to_roll(NOTES, T, 30)
    whole = model.predict(feats, piano_roll=roll, reference_keys=keyboard()[0])
    parts = model.predict(feats, piano_roll=roll, reference_keys=keyboard()[0], chunk_frames=9)
    assert torch.allclose(whole.keypoints, parts.keypoints, atol=1e-6)
    assert [(n["pitch"], n["onset"]) for n in whole.notes[0]] == [(60, 0.1), (21, 0.7), (64, 0.7)]
    probs_whole, probs_parts = model.transcribe(feats), model.transcribe(feats, chunk_frames=11)
    assert probs_whole.shape == (1, T, NUM_KEYS, 3) and torch.allclose(probs_whole, probs_parts, atol=1e-6)
    heard = model.predict(feats, chunk_frames=13)  # audio in: transcribed, then played
    assert heard.notes is not None and torch.allclose(
        heard.keypoints, model.predict(feats).keypoints, atol=1e-6
    )


def test_save_load_and_errors(tmp_path):
    model = notes_model()
    model.set_mean_keys(keyboard()[0])
    model.save_pretrained(tmp_path)
    loaded = KHPModel.from_pretrained(tmp_path).eval()
    assert loaded.uses_notes and loaded.config.architecture == "notes"
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    roll = notes_to_roll(NOTES, 20, 30)
    a, b = model.predict(piano_roll=roll), loaded.predict(piano_roll=roll)  # no keys: the mean layout
    assert torch.allclose(a.keypoints, b.keypoints, atol=1e-5)
    with pytest.raises(ValueError, match="input_features or a piano_roll"):
        model.predict()
    with pytest.raises(ValueError, match="architecture"):
        tiny_khp_config(architecture="video")
    with pytest.raises(ValueError, match="no transcriber"):
        KHPModel(tiny_khp_config()).transcribe(torch.randn(10, 80))
    with pytest.raises(ValueError, match=r"piano_roll must be \(T, 88, 3\)"):
        model.predict(piano_roll=np.zeros((10, 88)))
    with pytest.raises(ValueError, match="reference_keys must be the key-top quads"):
        model.predict(piano_roll=roll, reference_keys=np.zeros((88, 8)))
    with pytest.raises(ValueError, match="makes 32 per frame"):
        model.predict(np.zeros((10, 80)))
    with pytest.raises(ValueError, match="this one hears audio"):
        KHPModel(tiny_khp_config()).predict(np.zeros((10, 80)), piano_roll=roll)
    with pytest.raises(ValueError, match="transcribe first"):
        model.forward_window(torch.zeros(1, 10, 32), 0, 5)
