"""Rendering the virtual pianist: appearances, a shaded performer, a keyboard whose keys go down.

Frames are drawn with Pillow at twice the output size and downsampled (antialiasing), back to
front: wall, legs, torso, head, keyboard (pressed keys lowered and shaded), arms, hands.

>>> from apvg_hf.data.pianist import plan_performance, synthesize_motion
>>> from apvg_hf.data.notes import Note
>>> plan = plan_performance([Note(60, 0.2, 0.8, 90, "right")])
>>> motion = synthesize_motion(plan, duration=1.0, fps=10)
>>> renderer = PianistRenderer(APPEARANCES[0], Camera(), width=64, height=64)
>>> renderer.render_clip(motion.joints, plan.notes, fps=10).shape
(10, 64, 64, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .. import skeleton as sk
from .notes import Note
from .pianist import BodyProportions
from .scene import ALL_PITCHES, Camera, is_black, key_top_quad, keyboard_outline

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Appearance:
    """How a performer and scene look; `body` sets the performer's proportions."""

    name: str
    skin: RGB
    hair: RGB
    hair_style: str  # "short" | "long" | "bun" | "bald"
    shirt: RGB
    long_sleeves: bool
    trousers: RGB
    wall: tuple[RGB, RGB]  # top, bottom
    piano: RGB
    body: BodyProportions = field(default_factory=BodyProportions)


APPEARANCES: list[Appearance] = [
    Appearance("ada", (234, 192, 160), (60, 40, 25), "long", (40, 70, 140), True, (30, 30, 40),
               ((200, 205, 215), (150, 150, 160)), (25, 22, 22), BodyProportions()),
    Appearance("ben", (141, 85, 60), (20, 15, 12), "short", (200, 60, 50), False, (60, 60, 70),
               ((225, 215, 190), (170, 150, 120)), (20, 20, 22),
               BodyProportions(upper_arm=0.32, forearm=0.285, shoulder_width=0.42, torso=0.56, hand=1.06)),
    Appearance("chloe", (250, 214, 185), (200, 160, 80), "bun", (240, 240, 235), True, (40, 40, 60),
               ((90, 100, 120), (50, 55, 70)), (70, 40, 25),
               BodyProportions(upper_arm=0.285, forearm=0.26, shoulder_width=0.36, torso=0.50, hand=0.95)),
    Appearance("dev", (190, 130, 95), (35, 30, 30), "short", (60, 130, 80), True, (80, 70, 60),
               ((235, 235, 230), (190, 195, 200)), (15, 15, 15),
               BodyProportions(upper_arm=0.31, forearm=0.275, shoulder_width=0.40, torso=0.54, hand=1.02)),
    Appearance("eli", (225, 180, 150), (120, 120, 125), "bald", (30, 30, 30), True, (30, 30, 30),
               ((120, 90, 80), (70, 50, 45)), (30, 25, 25),
               BodyProportions(upper_arm=0.30, forearm=0.27, shoulder_width=0.39, torso=0.52, hand=1.0)),
    Appearance("fay", (110, 70, 50), (15, 10, 10), "long", (150, 60, 150), False, (50, 40, 70),
               ((180, 210, 200), (120, 150, 140)), (40, 20, 15),
               BodyProportions(upper_arm=0.29, forearm=0.265, shoulder_width=0.37, torso=0.51, hand=0.97)),
]  # fmt: skip


def _shade(c: RGB, k: float) -> RGB:
    if k >= 1:
        return tuple(int(v + (255 - v) * min(k - 1, 1)) for v in c)  # type: ignore[return-value]
    return tuple(int(v * k) for v in c)  # type: ignore[return-value]


def compute_visibility(joints: np.ndarray, camera: Camera, keypoints: np.ndarray | None = None) -> np.ndarray:
    """(T, K) visibility in [0, 1]: 0 outside the frame, 0.2 where the head, the keyboard or a palm
    hides the point from the camera, 1 otherwise."""
    uv, depth = camera.project(joints) if keypoints is None else (keypoints, camera.project(joints)[1])
    vis = np.ones(joints.shape[:2], dtype=np.float32)
    ix = sk.INDEX
    # Behind the head (ears, when it turns): inside the head's disc and farther than its centre.
    head = (joints[:, ix["left_ear"]] + joints[:, ix["right_ear"]]) / 2
    huv, hdepth = camera.project(head)
    hr = 0.085 * camera.focal / hdepth
    for name in ("left_ear", "right_ear", "left_eye", "right_eye", "nose"):
        k = ix[name]
        inside = np.linalg.norm(uv[:, k] - huv, axis=-1) < hr * 0.9
        vis[inside & (depth[:, k] > hdepth + 0.02), k] = 0.2
    # Behind the keyboard: below the key surface and inside the keyboard's outline.
    kb = camera.project(keyboard_outline())[0]
    lo, hi = kb[:, 1].min(), kb[:, 1].max()
    below = (joints[..., 2] < -0.005) & (uv[..., 1] > lo) & (uv[..., 1] < hi)
    vis[below] = np.minimum(vis[below], 0.2)

    # Behind a palm: inside the palm's triangle (wrist, index and little-finger knuckles) and farther
    # from the camera than the palm.
    def side(p1, p2, q):  # (T, 1, 2), (T, 1, 2), (T, K, 2) -> (T, K): which side of p1->p2 q lies on
        return (p2[..., 0] - p1[..., 0]) * (q[..., 1] - p1[..., 1]) - (p2[..., 1] - p1[..., 1]) * (
            q[..., 0] - p1[..., 0]
        )

    for h in sk.HANDS:
        corners = [sk.HAND_INDICES[h][i] for i in (0, 5, 17)]
        a, b, c = (uv[:, [i]] for i in corners)
        s1, s2, s3 = side(a, b, uv), side(b, c, uv), side(c, a, uv)
        inside = ((s1 > 0) & (s2 > 0) & (s3 > 0)) | ((s1 < 0) & (s2 < 0) & (s3 < 0))
        behind = depth > depth[:, corners].mean(1, keepdims=True) + 0.015
        hidden = inside & behind
        hidden[:, corners] = False
        vis[hidden] = 0.2
    out = (uv[..., 0] < 0) | (uv[..., 0] > 1) | (uv[..., 1] < 0) | (uv[..., 1] > 1)
    vis[out] = 0.0
    return vis


class PianistRenderer:
    """Draws frames of one performer (appearance) seen by one camera, at any resolution."""

    def __init__(
        self,
        appearance: Appearance,
        camera: Camera,
        width: int = 256,
        height: int = 256,
        supersample: int = 2,
    ):
        self.app, self.cam = appearance, camera
        self.width, self.height, self.ss = width, height, supersample
        self.W, self.H = width * supersample, height * supersample
        self._background = self._draw_background()
        self._keyboard = self._draw_keyboard()

    # -- helpers ----------------------------------------------------------------------------------
    def _px(self, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uv, depth = self.cam.project(world)
        return uv * np.array([self.W, self.H]), depth

    def _size(self, metres: float, depth: float) -> float:
        return metres * self.cam.focal * self.W / max(depth, 1e-3)

    def _capsule(
        self, draw: ImageDraw.ImageDraw, a, b, width: float, color: RGB, highlight: bool = True
    ) -> None:
        a, b = tuple(map(float, a)), tuple(map(float, b))
        for w, c, off in ((width + 2 * self.ss, _shade(color, 0.55), 0.0), (width, color, 0.0)) + (
            ((width * 0.35, _shade(color, 1.25), -0.22 * width),) if highlight else ()
        ):
            p, q = (a[0] + off, a[1] + off), (b[0] + off, b[1] + off)
            draw.line([p, q], fill=c, width=max(1, int(round(w))))
            r = w / 2
            for x, y in (p, q):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=c)

    # -- static layers ------------------------------------------------------------------------------
    def _draw_background(self) -> Image.Image:
        top, bottom = np.array(self.app.wall[0], float), np.array(self.app.wall[1], float)
        s = np.linspace(0, 1, self.H)[:, None, None]
        img = (top * (1 - s) + bottom * s) * np.ones((1, self.W, 1))
        return Image.fromarray(img.astype(np.uint8))

    def _key_poly(self, pitch: int, pressed: bool) -> list[tuple[float, float]]:
        uv, _ = self._px(key_top_quad(pitch, pressed))
        return [tuple(map(float, p)) for p in uv]

    def _draw_key(self, draw: ImageDraw.ImageDraw, pitch: int, pressed: bool) -> None:
        if is_black(pitch):
            base = (60, 60, 70) if pressed else (20, 20, 24)
        else:
            base = (185, 185, 175) if pressed else (245, 243, 235)
        draw.polygon(self._key_poly(pitch, pressed), fill=base, outline=(70, 70, 70))

    def _draw_keyboard(self) -> Image.Image:
        img = Image.new("RGBA", (self.W, self.H), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        kb = keyboard_outline()  # front-left, front-right, back-right, back-left
        case = kb + np.array(
            [[-0.05, -0.02, -0.03], [0.05, -0.02, -0.03], [0.05, 0.08, 0.06], [-0.05, 0.08, 0.06]]
        )
        uv, _ = self._px(case)
        draw.polygon([tuple(map(float, p)) for p in uv], fill=self.app.piano + (255,))
        for black in (False, True):
            for p in ALL_PITCHES:
                if is_black(p) == black:
                    self._draw_key(draw, p, False)
        # Back rail over the keys' far ends (nearest the camera).
        rail = kb[[3, 2, 2, 3]] + np.array(
            [[-0.05, -0.005, 0.0], [0.05, -0.005, 0.0], [0.05, 0.05, 0.05], [-0.05, 0.05, 0.05]]
        )
        uv, _ = self._px(rail)
        draw.polygon([tuple(map(float, p)) for p in uv], fill=_shade(self.app.piano, 1.15) + (255,))
        return img

    # -- the performer -------------------------------------------------------------------------------
    def render_frame(
        self, joints: np.ndarray, pressed: set[int] | frozenset[int] = frozenset()
    ) -> np.ndarray:
        """One frame: joints (56, 3) world, `pressed` the MIDI pitches held down -> (H, W, 3) uint8."""
        app, ix = self.app, sk.INDEX
        uv, depth = self._px(joints)
        img = self._background.copy()
        draw = ImageDraw.Draw(img)

        # Legs (thighs) go forward under the keyboard.
        for h in sk.HANDS:
            hip = joints[ix[f"{h}_hip"]]
            knee = hip + np.array([0.03 * (1 if h == "right" else -1), 0.42, 0.02])
            (a, b), d = self._px(np.stack([hip, knee]))
            self._capsule(draw, a, b, self._size(0.15, d.mean()), app.trousers)
        # Torso: a trapezoid from the shoulders to the hips, lit from the upper left.
        sh = [joints[ix["left_shoulder"]], joints[ix["right_shoulder"]]]
        hp = [joints[ix["right_hip"]], joints[ix["left_hip"]]]
        torso = np.stack(
            [sh[0] + [-0.03, 0, 0.02], sh[1] + [0.03, 0, 0.02], hp[0] + [0.04, 0, 0], hp[1] + [-0.04, 0, 0]]
        )
        tuv, tdepth = self._px(torso)
        draw.polygon(
            [tuple(map(float, p)) for p in tuv], fill=_shade(app.shirt, 0.8), outline=_shade(app.shirt, 0.5)
        )
        centre = tuv.mean(0)
        inner = centre + (tuv - centre) * 0.78 + np.array([-0.02, -0.02]) * self.W
        draw.polygon([tuple(map(float, p)) for p in inner], fill=app.shirt)
        # Neck and head.
        head3 = (joints[ix["left_ear"]] + joints[ix["right_ear"]]) / 2
        (huv,), (hd,) = self._px(head3[None])
        self._capsule(
            draw,
            uv[ix["neck"]],
            huv + [0, self._size(0.05, hd)],
            self._size(0.07, hd),
            _shade(app.skin, 0.85),
        )
        r = self._size(0.085, hd)
        cx, cy = huv
        if app.hair_style == "long":
            draw.rounded_rectangle(
                [cx - r * 1.15, cy - r * 0.9, cx + r * 1.15, cy + r * 0.8], radius=r * 0.5, fill=app.hair
            )
            for side in (-1, 1):  # strands down to the shoulders, beside the face
                x0 = cx + side * r * 0.95
                draw.ellipse([x0 - r * 0.32, cy - r * 0.2, x0 + r * 0.32, cy + r * 1.6], fill=app.hair)
        for ear in ("left_ear", "right_ear"):
            ex, ey = uv[ix[ear]]
            draw.ellipse(
                [ex - r * 0.22, ey - r * 0.3, ex + r * 0.22, ey + r * 0.3], fill=_shade(app.skin, 0.85)
            )
        draw.ellipse(
            [cx - r * 0.95, cy - r * 1.1, cx + r * 0.95, cy + r * 1.15],
            fill=app.skin,
            outline=_shade(app.skin, 0.6),
        )
        draw.ellipse([cx - r * 0.7, cy - r * 0.9, cx + r * 0.3, cy + r * 0.4], fill=_shade(app.skin, 1.08))
        if app.hair_style != "bald":
            draw.chord([cx - r * 1.02, cy - r * 1.22, cx + r * 1.02, cy + r * 0.5], 180, 360, fill=app.hair)
        else:
            draw.chord([cx - r * 0.98, cy - r * 0.4, cx + r * 0.98, cy + r * 0.7], 170, 370, fill=app.hair)
        if app.hair_style == "bun":
            draw.ellipse([cx - r * 0.45, cy - r * 1.65, cx + r * 0.45, cy - r * 0.85], fill=app.hair)
        for eye in ("left_eye", "right_eye"):
            ex, ey = uv[ix[eye]]
            er = r * 0.11
            draw.ellipse([ex - er * 1.3, ey - er, ex + er * 1.3, ey + er], fill=(35, 30, 30))
        nx, ny = uv[ix["nose"]]
        draw.ellipse([nx - r * 0.1, ny - r * 0.08, nx + r * 0.1, ny + r * 0.1], fill=_shade(app.skin, 0.75))
        draw.line(
            [(nx - r * 0.25, ny + r * 0.35), (nx + r * 0.25, ny + r * 0.35)],
            fill=_shade(app.skin, 0.55),
            width=max(1, int(r * 0.08)),
        )

        # Keyboard, with the pressed keys lowered.
        img.paste(self._keyboard, (0, 0), self._keyboard)
        if pressed:
            for black in (False, True):
                for p in sorted(pressed):
                    if is_black(p) == black:
                        self._draw_key(draw, p, True)
                        if not black:  # black neighbours stay on top of a lowered white key
                            for q in (p - 1, p + 1):
                                if is_black(q) and q not in pressed:
                                    self._draw_key(draw, q, False)

        # Arms then hands, the farther side first.
        sides = sorted(sk.HANDS, key=lambda h: -depth[ix[f"{h}_elbow"]])
        sleeve = app.shirt if app.long_sleeves else app.skin
        for h in sides:
            s, e, w = ix[f"{h}_shoulder"], ix[f"{h}_elbow"], ix[f"{h}_wrist"]
            self._capsule(draw, uv[s], uv[e], self._size(0.095, depth[e]), app.shirt)
            self._capsule(draw, uv[e], uv[w], self._size(0.075, depth[w]), sleeve)
            self._draw_hand(draw, joints, uv, depth, h)
        return np.asarray(img.resize((self.width, self.height), Image.Resampling.BOX))

    def _draw_hand(self, draw, joints, uv, depth, hand: str) -> None:
        idx, skin = sk.HAND_INDICES[hand], self.app.skin
        palm = [idx[0], idx[1], idx[5], idx[9], idx[13], idx[17]]
        d = depth[idx[9]]
        draw.polygon(
            [tuple(map(float, uv[k])) for k in palm], fill=_shade(skin, 0.92), outline=_shade(skin, 0.55)
        )
        # Fingers, farthest first; segment widths taper towards the tips.
        order = sorted(range(5), key=lambda f: -depth[idx[4 + 4 * f]])
        for f in order:
            chain = [idx[0]] + idx[1 + 4 * f : 5 + 4 * f] if f == 0 else idx[1 + 4 * f : 5 + 4 * f]
            width = self._size(0.021 if f == 0 else 0.018, d) * self.app.body.hand
            for a, b in zip(chain[:-1], chain[1:]):
                self._capsule(draw, uv[a], uv[b], width, skin, highlight=False)
                width *= 0.9
            tx, ty = uv[chain[-1]]
            nr = width * 0.3
            draw.ellipse([tx - nr, ty - nr, tx + nr, ty + nr], fill=_shade(skin, 1.25))

    def render_clip(self, joints: np.ndarray, notes: list[Note], fps: float) -> np.ndarray:
        """(T, 56, 3) world joints -> (T, H, W, 3) uint8 frames; keys go down while their notes sound."""
        pressed = pressed_keys(notes, len(joints), fps)
        return np.stack([self.render_frame(joints[i], pressed[i]) for i in range(len(joints))])


def pressed_keys(notes: list[Note], num_frames: int, fps: float) -> list[frozenset[int]]:
    """The pitches held down in each of `num_frames` frames: from the first frame at or after a note's
    onset to the last before its offset."""
    pressed: list[set[int]] = [set() for _ in range(num_frames)]
    for n in notes:
        i0 = max(int(np.ceil(n.onset * fps - 1e-9)), 0)
        i1 = min(int(np.ceil(n.offset * fps - 1e-9)), num_frames)
        for i in range(i0, i1):
            pressed[i].add(n.pitch)
    return [frozenset(p) for p in pressed]
