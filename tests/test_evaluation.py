"""Keypoint metrics, the key-press decoder and the baselines."""

import numpy as np
import pytest

from apvg_hf import APVGFeatureExtractor
from apvg_hf.data.clips import load_clips
from apvg_hf.data.scene import ALL_PITCHES, Camera, keyboard_quads
from apvg_hf.evaluation import (
    KeypointMetrics,
    LSTMBaseline,
    MeanPoseBaseline,
    NearestNeighbourBaseline,
    decode_key_presses,
    evaluate_predictor,
    f1_from_counts,
    match_events,
    mfcc,
    note_events,
)
from apvg_hf.evaluation.keypress import press_points
from apvg_hf.evaluation.khp import performance_key, reference_for
from apvg_hf.skeleton import BODY_INDICES, FINGERTIPS, HAND_INDICES, INDEX


def test_keypoint_metrics_known_values():
    gt = np.full((5, 56, 2), 0.5)
    pred = gt.copy()
    pred[:, BODY_INDICES, 0] += 0.06  # body off by 0.06: outside PCK@0.05, inside @0.1
    vis = np.ones((5, 56))
    vis[:, INDEX["nose"]] = 0  # hidden points are not scored
    pred[:, INDEX["nose"]] += 10
    m = KeypointMetrics()
    m.update(pred, gt, vis)
    r = m.compute()
    assert r["body"]["mpjpe"] == pytest.approx(0.06) and r["body"]["mpjpe_px256"] == pytest.approx(15.36)
    assert r["body"]["pck@0.05"] == 0 and r["body"]["pck@0.1"] == 1
    assert r["hands"]["mpjpe"] == 0 and r["hands"]["pck@0.05"] == 1
    assert r["body"]["velocity"] == pytest.approx(0)  # constant offset: no velocity error
    with pytest.raises(ValueError):
        m.update(pred[:, :10], gt, vis)


def test_event_matching_and_f1():
    assert match_events([(60, 10), (60, 11)], [(60, 10)]) == (1, 2, 1)  # one-to-one
    assert match_events([(60, 13)], [(60, 10)], tolerance=2) == (0, 1, 1)
    assert match_events([(61, 10)], [(60, 10)]) == (0, 1, 1)  # wrong key
    assert f1_from_counts(1, 2, 1) == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3})
    assert f1_from_counts(0, 0, 3)["f1"] == 0.0


def test_press_points_lie_on_their_keys():
    from apvg_hf.data.scene import key_under_points

    quads = keyboard_quads(Camera())
    pts = press_points(quads, ALL_PITCHES)
    assert (key_under_points(pts, quads, ALL_PITCHES) == np.array(ALL_PITCHES)).all()


def test_decoder_finds_a_synthetic_strike_and_ignores_a_held_finger():
    quads = keyboard_quads(Camera())
    target = press_points(quads, ALL_PITCHES)[ALL_PITCHES.index(60)]
    kp = np.full((30, 56, 2), 0.5)
    tip = FINGERTIPS["right"][1]
    wrist = HAND_INDICES["right"][0]  # the hand's own wrist point
    kp[:, wrist] = target + [0.0, 0.1]
    kp[:, tip] = target + [0.0, -0.05]  # hovering above the key
    kp[10:14, tip] = target + np.linspace([0, -0.04], [0, -0.01], 4)  # reaching down ...
    kp[14:, tip] = target  # ... and resting on the key from frame 14
    assert decode_key_presses(kp, quads, ALL_PITCHES) == [(60, 14)]
    kp[:, tip] = target  # on the key all along: a held note, no new strike
    assert decode_key_presses(kp, quads, ALL_PITCHES) == []


@pytest.fixture(scope="module")
def clips(tiny_dataset):
    ext = APVGFeatureExtractor()
    return load_clips(tiny_dataset[0], "train", ext, 16), load_clips(tiny_dataset[0], "test", ext, 16)


def test_load_clips_aligned_and_cached(clips, tiny_dataset):
    train, test = clips
    for c in train + test:
        T = c.num_frames
        assert (
            c.features.shape == (T, 80) and c.keypoints.shape == (T, 56, 2) and c.visibility.shape == (T, 56)
        )
        assert c.coarse.shape == (T, 3, 16, 16) and c.coarse.dtype == np.uint8
    again = load_clips(tiny_dataset[0], "train", APVGFeatureExtractor(), 16)  # from the cache
    assert all(np.array_equal(a.keypoints, b.keypoints) for a, b in zip(train, again))
    with pytest.raises(FileNotFoundError, match="build_dataset"):
        load_clips(tiny_dataset[0] / "nope", "train", APVGFeatureExtractor())


def test_decoder_on_ground_truth_recovers_most_notes(clips):
    """The decoder's ceiling on real virtual-pianist motion (the tiny preset's clips)."""
    counts = np.zeros(3, dtype=int)
    for c in clips[0] + clips[1]:
        ev = decode_key_presses(c.keypoints, np.array(c.meta["keyboard_quads"]), c.meta["keyboard_pitches"])
        counts += match_events(ev, note_events(c.meta["notes"], c.meta["fps"], c.num_frames))
    assert counts[2] > 20
    assert f1_from_counts(*counts)["f1"] > 0.6
    shifted = np.zeros(3, dtype=int)  # the same motion 10 frames late no longer matches
    for c in clips[0]:
        kp = np.concatenate([np.repeat(c.keypoints[:1], 10, 0), c.keypoints[:-10]])
        ev = decode_key_presses(kp, np.array(c.meta["keyboard_quads"]), c.meta["keyboard_pitches"])
        shifted += match_events(ev, note_events(c.meta["notes"], c.meta["fps"], c.num_frames))
    assert f1_from_counts(*shifted)["f1"] < 0.3


def test_baselines_fit_predict_and_lstm_round_trip(clips, tmp_path):
    train, test = clips
    feats = test[0].features
    assert mfcc(feats).shape == (len(feats), 13)
    for b in (MeanPoseBaseline().fit(train), NearestNeighbourBaseline(max_frames=500).fit(train)):
        kp = b.predict(feats)
        assert kp.shape == (len(feats), 56, 2) and np.isfinite(kp).all()
    lstm = LSTMBaseline(hidden=16, n_components=4).fit(train, steps=3, batch_size=2, progress=False)
    kp = lstm.predict(feats)
    assert kp.shape == (len(feats), 56, 2) and (kp >= 0).all() and (kp <= 1).all()
    lstm.save(tmp_path)
    assert np.array_equal(LSTMBaseline.load(tmp_path).predict(feats), kp)
    mean = MeanPoseBaseline().fit(train)
    r = evaluate_predictor(lambda c: mean.predict(c.features), test)
    assert set(r) >= {"body", "hands", "all", "keypress"}
    r = evaluate_predictor(lambda c: c.keypoints, test)
    assert r["hands"]["pck@0.05"] == 1 and r["body"]["mpjpe"] == 0


def test_reference_comes_from_another_clip_of_the_performance(clips):
    train, _ = clips
    for clip in train:
        kp, frame, _keys = reference_for(clip, train)
        assert kp.shape == (56, 2) and frame.shape == (3, 16, 16) and frame.min() >= 0 and frame.max() <= 1
        same = [c for c in train if performance_key(c) == performance_key(clip) and c is not clip]
        if same:  # the reference frame is none of the clip's own frames
            assert not any(np.array_equal(kp, k) for k in clip.keypoints)


def test_note_hits():
    from apvg_hf.evaluation.keypress import note_hits

    quads = keyboard_quads(Camera())
    target = press_points(quads, ALL_PITCHES)[ALL_PITCHES.index(64)]
    kp = np.full((20, 56, 2), 0.01)
    kp[8, FINGERTIPS["left"][0]] = target  # a thumb over E4 at frame 8 only
    assert note_hits(kp, quads, ALL_PITCHES, [(64, 10), (64, 11), (65, 8)], tolerance=2) == (1, 3)
