"""Hand anchoring (apvg_hf.hand_anchor): hands far from the keys of the notes move there, per frame;
fitted for a performer on training clips; applied by a "notes" KHP whose config carries it."""

import numpy as np
import pytest
import torch

from apvg_hf import KHPConfig, KHPModel
from apvg_hf.data.clips import Clip
from apvg_hf.hand_anchor import DEFAULTS, anchor_hands, note_anchors, white_key_width
from apvg_hf.skeleton import FINGERTIPS, HAND_INDICES, INDEX
from apvg_hf.training.khp import fit_hand_anchor
from conftest import tiny_khp_config

FPS = 30


def centres() -> np.ndarray:
    """(88, 2) key centres on a straight keyboard at y = 0.8, key i at x = 0.06 + i / 100."""
    return np.stack([0.06 + np.arange(88) / 100, np.full(88, 0.8)], -1)


def two_hands_notes(seconds: float = 3.0) -> list[dict]:
    """A bass note (A1, key 12) and a treble note (A5, key 60) every 0.2 s."""
    out = []
    for t in np.arange(0, seconds, 0.2):
        out += [{"pitch": 33, "onset": float(t), "offset": float(t) + 0.4, "velocity": 80},
                {"pitch": 81, "onset": float(t), "offset": float(t) + 0.4, "velocity": 80}]  # fmt: skip
    return out


def test_note_anchors_split_the_hands_and_fade_away_from_notes():
    T = 150  # 5 s; notes only in the first 3 s
    anchors, w = note_anchors(two_hands_notes(), T, FPS, centres())
    assert anchors.shape == (2, T, 2) and w.shape == (2, T)
    assert np.allclose(anchors[0, :80], centres()[12], atol=1e-6)  # left hand: the bass key
    assert np.allclose(anchors[1, :80], centres()[60], atol=1e-6)  # right hand: the treble key
    assert (w[:, :76] == 1).all() and (w[:, -20:] < 1e-3).all()
    # a narrow group goes to one hand by split_pitch: both notes below middle C -> the left hand
    _, w2 = note_anchors([{"pitch": 40, "onset": 0.0}, {"pitch": 43, "onset": 0.0}], 30, FPS, centres())
    assert w2[0].max() > 0 and w2[1].max() == 0
    assert abs(white_key_width(centres()) - 12 / 7 / 100) < 1e-3  # 7 white keys per 12 keys
    # a note on the first frame counts once (no padding that repeats it); one before the input (-1 s) not
    # at all
    _, w3 = note_anchors([{"pitch": 40, "onset": 0.0}, {"pitch": 41, "onset": -1.0}], 60, FPS, centres(),
                         {"full_weight": 1e9})  # fmt: skip
    assert 0.5 < w3[0].sum() * 1e9 < 0.6  # half its kernel (and the centre) inside, not 2.3 onsets' worth


def test_anchor_hands_moves_only_hands_outside_the_dead_zone():
    T = 10
    kp = np.full((T, 56, 2), 0.5, np.float32)
    kp[:, HAND_INDICES["left"]] = [0.9, 0.8]  # far from the left anchor (x 0.18)
    kp[:, HAND_INDICES["right"]] = [0.66 + 0.01, 0.8]  # one key from the right anchor (x 0.66)
    anchors = np.stack([np.tile(centres()[12], (T, 1)), np.tile(centres()[60], (T, 1))])
    weights = np.ones((2, T))
    s = DEFAULTS | {"body_follow": [0.5, 0.0]}
    out = anchor_hands(kp, anchors, weights, centres(), s)
    dead = s["dead_zone_keys"] * white_key_width(centres())
    left_tips = out[:, FINGERTIPS["left"]].mean(1)
    assert np.allclose(np.linalg.norm(left_tips - centres()[12], axis=-1), dead, atol=1e-5)  # to the edge
    move = left_tips[0, 0] - 0.9
    assert np.allclose(out[:, INDEX["left_wrist"], 0], 0.5 + move, atol=1e-5)  # the body's wrist too
    assert np.allclose(out[:, INDEX["left_elbow"], 0], 0.5 + move / 2, atol=1e-5)  # the elbow half
    assert np.array_equal(out[:, HAND_INDICES["right"]], kp[:, HAND_INDICES["right"]])  # inside: stays
    assert np.allclose(out[:, INDEX["nose"], 0], 0.5 + 0.5 * move / 2, atol=1e-5)  # the body leans
    assert np.array_equal(anchor_hands(kp, anchors, 0 * weights, centres(), s), kp)  # no notes: nothing
    s["offsets"] = [[0.1, 0.0], [0.0, 0.0]]  # this performer's fingertips sit 0.1 right of the keys
    shifted = anchor_hands(kp, anchors, weights, centres(), s)[:, FINGERTIPS["left"]].mean(1)
    assert np.allclose(shifted[:, 0] - left_tips[:, 0], 0.1, atol=1e-5)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown hand_anchor"):
        tiny_khp_config(architecture="notes", hand_anchor={"sigma": 1})
    with pytest.raises(ValueError, match="'notes' KHP"):
        KHPConfig(hand_anchor={})
    with pytest.raises(ValueError, match="offsets"):
        tiny_khp_config(architecture="notes", hand_anchor={"offsets": [0.1, 0.2]})
    assert tiny_khp_config(architecture="notes", hand_anchor={}).hand_anchor == DEFAULTS


def _notes_model(**kw) -> KHPModel:
    torch.manual_seed(0)
    cfg = tiny_khp_config(architecture="notes", feature_size=32, transcriber_layers=1, transcriber_channels=4,
                          key_context=3, **kw)  # fmt: skip
    return KHPModel(cfg).eval()


def test_khp_applies_its_hand_anchor_chunk_exactly_and_saves_it(tmp_path):
    from apvg_hf.piano_roll import notes_to_roll

    T = 90
    roll = notes_to_roll(two_hands_notes(), T, FPS)
    quads = np.repeat(centres()[:, None], 4, 1).astype(np.float32) + np.array(
        [[-0.004, 0.05], [0.004, 0.05], [0.004, -0.05], [-0.004, -0.05]], np.float32
    )  # (88, 4, 2) around the centres
    plain = _notes_model()
    anchored = _notes_model(hand_anchor={"dead_zone_keys": 0.0})
    anchored.load_state_dict(plain.state_dict())
    p0 = plain.predict(piano_roll=roll, reference_keys=quads).keypoints[0].numpy()
    p1 = anchored.predict(piano_roll=roll, reference_keys=quads).keypoints[0].numpy()
    tips = p1[:76, FINGERTIPS["left"]].mean(1)  # (after 2.5 s the last notes fade)
    assert np.allclose(tips, centres()[12], atol=1e-4)  # no dead zone: the fingertips on the key
    assert not np.allclose(p0, p1)
    unkeyed = anchored.predict(piano_roll=roll).keypoints[0].numpy()  # no keyboard: anchoring is off
    assert np.allclose(unkeyed, plain.predict(piano_roll=roll).keypoints[0].numpy())
    chunked = anchored.predict(piano_roll=roll, reference_keys=quads, chunk_frames=17).keypoints[0].numpy()
    assert np.allclose(chunked, p1, atol=1e-5)
    anchored.save_pretrained(tmp_path)
    again = KHPModel.from_pretrained(tmp_path).eval()
    assert again.config.hand_anchor == anchored.config.hand_anchor
    assert np.allclose(
        again.predict(piano_roll=roll, reference_keys=quads).keypoints[0].numpy(), p1, atol=1e-6
    )


def test_fit_hand_anchor_recovers_a_performers_offsets_and_lean():
    """Clips where each hand's fingertips sit a known offset from its notes' keys and the body leans
    0.4 of the hands' move: the fit finds both."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(3):
        T = 90
        notes = [{**n, "pitch": n["pitch"] + 2 * i} for n in two_hands_notes()]
        kp = np.full((T, 56, 2), 0.5, np.float32)
        for h, key, off in (("left", 12 + 2 * i, (0.03, -0.02)), ("right", 60 + 2 * i, (-0.01, -0.04))):
            kp[:, HAND_INDICES[h]] = centres()[key] + off + rng.normal(0, 1e-3, (T, 21, 2))
        tips = kp[:, FINGERTIPS["left"] + FINGERTIPS["right"]].mean(1)  # (T, 2)
        torso = [
            j
            for j in range(14)
            if j not in [INDEX[f"{h}_{p}"] for h in ("left", "right") for p in ("elbow", "wrist")]
        ]
        kp[:, torso] = 0.5 + 0.4 * (tips[:, None] - 0.45)
        quads = np.repeat(centres()[:, None], 4, 1).tolist()
        meta = {"piece_id": f"p{i}", "fps": FPS, "notes": notes, "keyboard_quads": quads}
        clips.append(Clip(np.zeros((T, 32), np.float32), kp, np.ones((T, 56), np.float32), None, meta))
    model = _notes_model()
    fitted = fit_hand_anchor(model, clips)
    assert np.allclose(fitted["offsets"], [[0.03, -0.02], [-0.01, -0.04]], atol=2e-3)
    assert abs(fitted["body_follow"][0] - 0.4) < 0.02
    assert model.config.hand_anchor == fitted
    with pytest.raises(ValueError, match="'notes' KHP"):
        fit_hand_anchor(KHPModel(tiny_khp_config()), clips)
