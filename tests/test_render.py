"""Rendering and visibility: resolutions, appearances, occlusion labels."""

import numpy as np
import pytest

from apvg_hf import skeleton as sk
from apvg_hf.data.notes import Note
from apvg_hf.data.pianist import plan_performance, synthesize_motion
from apvg_hf.data.render import APPEARANCES, PianistRenderer, compute_visibility
from apvg_hf.data.scene import Camera


@pytest.fixture(scope="module")
def motion():
    plan = plan_performance([Note(60, 0.2, 0.9, 90, "right"), Note(48, 0.2, 0.9, 80, "left")])
    return plan, synthesize_motion(plan, duration=1.0, fps=10)


@pytest.mark.parametrize("size", [(128, 128), (256, 256), (192, 128)])
def test_renders_any_resolution(motion, size):
    plan, m = motion
    w, h = size
    frames = PianistRenderer(APPEARANCES[0], Camera(aspect=w / h), w, h).render_clip(
        m.joints, plan.notes, fps=10
    )
    assert frames.shape == (10, h, w, 3) and frames.dtype == np.uint8
    assert frames.std() > 20  # a picture, not a blank


def test_appearances_differ(motion):
    plan, m = motion
    assert len(APPEARANCES) >= 4
    frames = [PianistRenderer(a, Camera(), 64, 64).render_frame(m.joints[5]) for a in APPEARANCES]
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            assert np.abs(frames[i].astype(int) - frames[j]).mean() > 5


def test_visibility_marks_occlusions(motion):
    _, m = motion
    cam = Camera()
    joints = m.joints[5:6].copy()
    vis = compute_visibility(joints, cam)
    assert vis.shape == (1, sk.NUM_KEYPOINTS) and (vis[0, sk.BODY_INDICES] == 1).all()
    # An ear pushed behind the head, a point out of the frame, a fingertip tucked under its palm.
    ear = sk.INDEX["left_ear"]
    head = (joints[0, sk.INDEX["left_ear"]] + joints[0, sk.INDEX["right_ear"]]) / 2
    joints[0, ear] = (
        head + (head - np.asarray(cam.position)) / np.linalg.norm(head - np.asarray(cam.position)) * 0.06
    )
    joints[0, sk.INDEX["nose"]] = [3.0, 0.0, 0.0]
    idx = sk.HAND_INDICES["right"]
    palm_centre = joints[0, [idx[0], idx[5], idx[17]]].mean(0)
    away = (palm_centre - np.asarray(cam.position)) / np.linalg.norm(palm_centre - np.asarray(cam.position))
    joints[0, idx[12]] = palm_centre + away * 0.05
    vis = compute_visibility(joints, cam)[0]
    assert vis[ear] == pytest.approx(0.2) and vis[sk.INDEX["right_ear"]] == 1.0
    assert vis[sk.INDEX["nose"]] == 0.0
    assert vis[idx[12]] == pytest.approx(0.2)
