"""Appearance references of the virtual pianist's performers: who can play, for pipelines and the Space."""

from __future__ import annotations

import numpy as np

from ..reference import AppearanceReference
from .notes import Note
from .pianist import plan_performance, synthesize_motion
from .render import APPEARANCES, PianistRenderer
from .scene import Camera, keyboard_quads


def appearance_references(resolution: int = 256) -> list[tuple[str, AppearanceReference]]:
    """One reference for each appearance of the virtual-pianist generator: the performer with both hands
    on a chord, seen by the generator's default camera, with the keyboard's geometry in that frame (the key-top
    quads). Needs numpy and Pillow only (not the `data` extra's music libraries).

    >>> refs = appearance_references(64)
    >>> [name for name, _ in refs][:3], tuple(refs[0][1].frame.shape), tuple(refs[0][1].keyboard_quads.shape)
    (['ada', 'ben', 'chloe'], (3, 64, 64), (88, 4, 2))
    """
    fps, frame = 30.0, 20  # a frame while the chord sounds (0.3 s to 1.2 s)
    chord = [(48, "left"), (52, "left"), (64, "right"), (67, "right"), (72, "right")]
    notes = [Note(pitch, 0.3, 1.2, 80, hand) for pitch, hand in chord]
    camera = Camera()
    quads = keyboard_quads(camera)  # (88, 4, 2): the keys at rest (as the dataset stores them)
    out = []
    for appearance in APPEARANCES:
        plan = plan_performance(notes, body=appearance.body)
        joints = synthesize_motion(plan, duration=1.5, fps=fps, rng=np.random.default_rng(0)).joints[frame]
        pressed = frozenset(n.pitch for n in plan.notes if n.onset * fps <= frame < n.offset * fps)
        image = PianistRenderer(appearance, camera, resolution, resolution).render_frame(joints, pressed)
        keypoints = camera.project(joints)[0]
        ref = AppearanceReference.from_frame(np.array(image), keypoints, resolution, keyboard_quads=quads)
        out.append((appearance.name, ref))
    return out
