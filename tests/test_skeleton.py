"""The canonical skeleton: layout, graph, normalisation, drawing."""

import numpy as np

from apvg_hf import skeleton as sk


def test_layout_body_and_two_standard_hands():
    assert sk.NUM_KEYPOINTS == sk.NUM_BODY + 2 * 21
    for name in (
        "nose",
        "neck",
        "left_shoulder",
        "right_elbow",
        "left_wrist",
        "right_hip",
        "left_eye",
        "right_ear",
    ):
        assert name in sk.INDEX
    # Standard 21-point hand: wrist, then 4 points per finger, thumb to little finger.
    assert (
        sk.HAND_JOINTS[0] == "wrist"
        and sk.HAND_JOINTS[4] == "thumb_tip"
        and sk.HAND_JOINTS[20] == "pinky_tip"
    )
    for h in sk.HANDS:
        assert [sk.KEYPOINT_NAMES[i] for i in sk.FINGERTIPS[h]] == [f"{h}_hand_{f}_tip" for f in sk.FINGERS]


def test_graph_is_connected_and_symmetric():
    a = sk.adjacency_matrix(self_loops=False, normalize=False)
    assert (a == a.T).all() and a.trace() == 0
    seen, frontier = {0}, [0]
    while frontier:
        i = frontier.pop()
        for j in np.nonzero(a[i])[0]:
            if j not in seen:
                seen.add(int(j))
                frontier.append(int(j))
    assert len(seen) == sk.NUM_KEYPOINTS
    assert len(set(map(frozenset, sk.BONES))) == len(sk.BONES)  # no duplicate bones


def test_normalise_round_trip():
    px = np.random.default_rng(0).uniform(0, 640, size=(10, 2))
    np.testing.assert_allclose(
        sk.denormalize_keypoints(sk.normalize_keypoints(px, 640, 480), 640, 480), px, rtol=1e-5
    )


def test_draw_skeleton_marks_visible_points_only():
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    kp = np.full((sk.NUM_KEYPOINTS, 2), 0.5)
    kp[sk.INDEX["nose"]] = [0.2, 0.2]
    kp[sk.INDEX["neck"]] = [0.8, 0.8]
    vis = np.zeros(sk.NUM_KEYPOINTS)
    out = sk.draw_skeleton(frame, kp, vis)
    assert out.sum() == 0  # nothing visible, nothing drawn
    vis[[sk.INDEX["nose"], sk.INDEX["neck"]]] = 1
    out = sk.draw_skeleton(frame, kp, vis)
    assert out[32, 32].sum() > 0  # the nose-neck bone crosses the centre
    assert out[5, 58].sum() == 0
