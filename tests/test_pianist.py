"""Kinematics of the virtual pianist: keys reached, rigid bones, bounded speed, rest in silence."""

import numpy as np
import pytest

from apvg_hf import skeleton as sk
from apvg_hf.data.music import load_piece_notes
from apvg_hf.data.notes import Note
from apvg_hf.data.pianist import (
    MAX_FLEXION,
    MIN_FLEXION,
    PianistConfig,
    _chain_chord,
    plan_performance,
    solve_finger_chain,
    synthesize_motion,
)
from apvg_hf.data.render import APPEARANCES
from apvg_hf.data.scene import (
    BLACK_WIDTH,
    WHITE_WIDTH,
    Camera,
    is_black,
    key_press_point,
    key_under_points,
    keyboard_quads,
)

FPS = 30.0


def random_music(seed: int, n: int = 150, silence_at: int | None = 60) -> list[Note]:
    rng = np.random.default_rng(seed)
    notes, t = [], 0.5
    for i in range(n):
        rh = int(rng.integers(60, 88))
        notes.append(Note(rh, t, t + 0.3, int(rng.integers(50, 110)), "right"))
        if rng.random() < 0.3:
            notes.append(Note(rh - int(rng.choice([3, 4, 7])), t, t + 0.3, 70, "right"))
        if i % 2 == 0:
            notes.append(Note(int(rng.integers(38, 58)), t, t + 0.45, 70, "left"))
        t += float(rng.choice([0.2, 0.25, 0.5]))
        if i == silence_at:
            t += 5.0
    return notes


@pytest.fixture(scope="module", params=["random", "bach/bwv846", "chorale"])
def performance(request):
    if request.param == "random":
        notes, app = random_music(0), APPEARANCES[1]
    elif request.param == "chorale":
        from apvg_hf.data.music import list_pieces

        notes, app = (
            load_piece_notes(list_pieces(kinds=("chorale",))[0].piece_id, max_seconds=30),
            APPEARANCES[2],
        )
    else:
        notes, app = load_piece_notes(request.param, max_seconds=30), APPEARANCES[0]
    plan = plan_performance(notes, body=app.body)
    duration = max(n.offset for n in plan.notes) + 2.0
    motion = synthesize_motion(plan, duration=duration, fps=FPS)
    return notes, plan, motion


def test_fingertip_over_sounding_key_at_onset(performance):
    """>= 95% of notes: the assigned finger's tip is over the key (3D and in the image) at the onset frame."""
    notes, plan, motion = performance
    cam = Camera()
    quads, pitches = keyboard_quads(cam), np.array(range(21, 109))
    hits_3d = hits_2d = 0
    for n in plan.notes:
        frame = int(round(n.onset * FPS))
        tip = motion.joints[frame, sk.FINGERTIPS[n.hand][n.finger - 1]]
        half = (BLACK_WIDTH if is_black(n.pitch) else WHITE_WIDTH) / 2
        hits_3d += abs(tip[0] - key_press_point(n.pitch)[0]) < half
        uv, _ = cam.project(tip)
        hits_2d += key_under_points(uv[None], quads, pitches)[0] == n.pitch
    assert hits_3d / len(plan.notes) >= 0.95
    assert hits_2d / len(plan.notes) >= 0.95
    # And the pianist plays (nearly) everything it was given.
    assert len(plan.notes) >= 0.8 * len(notes)


def test_bone_lengths_constant(performance):
    _, _, motion = performance
    lengths = sk.bone_lengths(motion.joints)  # (T, B)
    rel = lengths / lengths.mean(0)
    assert np.abs(rel - 1).max() < 0.02


def test_joint_speed_bounded(performance):
    _, plan, motion = performance
    speed = np.linalg.norm(np.diff(motion.joints, axis=0), axis=-1) * FPS  # (T-1, K) m/s
    assert speed.max() < PianistConfig().speed_limit, sk.KEYPOINT_NAMES[int(speed.max(0).argmax())]


def test_motion_is_continuous_no_teleports(performance):
    """The motion is a continuous function of time. A jump of size d shows up as a speed d * fps that
    grows with the sampling rate; a continuous motion's peak speed does not: sampled at 240 and at
    960 fps, the peak speeds agree (and stay within 1.25x the bound, which holds at the data's 30 fps)."""
    _, plan, _ = performance
    duration = min(12.0, max(n.offset for n in plan.notes))
    peak = {}
    for fps in (240.0, 960.0):
        joints = synthesize_motion(plan, duration=duration, fps=fps).joints
        peak[fps] = (np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps).max()
    assert peak[960.0] < 1.3 * peak[240.0], peak  # a 1 cm jump would make it ~4x
    assert peak[960.0] < 1.25 * PianistConfig().speed_limit, peak


def test_rest_pose_in_silence():
    notes = random_music(1, n=80, silence_at=40)
    plan = plan_performance(notes)
    onsets = np.array(sorted(n.onset for n in plan.notes))
    i = int(np.argmax(np.diff(onsets)))
    gap_start, gap_end = max(n.offset for n in plan.notes if n.onset <= onsets[i]), onsets[i + 1]
    assert gap_end - gap_start > 4.0
    motion = synthesize_motion(plan, duration=onsets[-1] + 2, fps=FPS)
    mid = slice(int((gap_start + 1.2) * FPS), int((gap_end - 1.0) * FPS))
    for h in sk.HANDS:
        wrist = motion.joints[mid, sk.HAND_INDICES[h][0]]
        assert wrist[:, 2].max() < 0.02, "hands rest below the keys (on the lap) in a silence"
        assert wrist[:, 1].max() < -0.05, "hands rest away from the keyboard"
        speed = np.linalg.norm(np.diff(wrist, axis=0), axis=-1).max() * FPS
        assert speed < 0.05, "and stay still"
    # Both hands play again after the silence.
    assert any(n.onset > gap_end for n in plan.notes if n.hand == "left")


def test_finger_chain_ik_reaches_and_keeps_lengths():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 3)) * 0.01
    seg = np.array([0.045, 0.028, 0.021])
    near, far = (_chain_chord(np.array(p), seg) for p in (MAX_FLEXION, MIN_FLEXION))
    direction = rng.normal(size=(200, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    dist = rng.uniform(0.5 * near, 1.1 * far, size=(200, 1))
    tip = base + direction * dist
    chain = solve_finger_chain(
        base, tip, np.broadcast_to(seg, (200, 3)), np.broadcast_to([0, 0, 1.0], (200, 3))
    )
    # Bone lengths are exact; targets within the band are reached; others are approached along their line.
    np.testing.assert_allclose(
        np.linalg.norm(np.diff(chain, axis=1), axis=-1), np.broadcast_to(seg, (200, 3)), atol=1e-9
    )
    inside = ((dist > near) & (dist < far))[:, 0]
    assert inside.sum() > 50
    np.testing.assert_allclose(chain[inside, -1], tip[inside], atol=1e-5)
    reached = chain[:, -1] - base
    np.testing.assert_allclose(
        reached / np.linalg.norm(reached, axis=-1, keepdims=True), direction, atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.norm(reached, axis=-1), np.clip(dist[:, 0], near, far), atol=1e-5)


def test_hands_and_fingers_assigned_consistently():
    # C D E F G up in the right hand, C B A G F down in the left: five-finger positions.
    notes = [Note(p, 1.0 + 0.4 * i, 1.3 + 0.4 * i, 80, "right") for i, p in enumerate([60, 62, 64, 65, 67])]
    notes += [Note(p, 1.0 + 0.4 * i, 1.3 + 0.4 * i, 80, "left") for i, p in enumerate([48, 47, 45, 43, 41])]
    plan = plan_performance(notes)
    right = [n.finger for n in plan.notes if n.hand == "right"]
    left = [n.finger for n in plan.notes if n.hand == "left"]
    assert right == [1, 2, 3, 4, 5]  # a five-finger position, thumb first
    assert left == [1, 2, 3, 4, 5]  # descending from the left thumb
    # A chord an octave wide in the right hand: thumb and little finger.
    plan = plan_performance(
        [Note(60, 0.5, 1.0, 80, "right"), Note(64, 0.5, 1.0, 80, "right"), Note(72, 0.5, 1.0, 80, "right")]
    )
    assert [n.finger for n in plan.notes] == [1, 2, 5] or [n.finger for n in plan.notes] == [1, 3, 5]
