"""Real performance videos -> the virtual pianist's dataset schema (`apvg preprocess`).

    report = preprocess_videos(["pianist.avi"], "data/fourms_pianist", PreprocessConfig(performer="fourms"))

For each video: the audio track (resampled, mono), a stable square crop around the performer (fixed
when the performer stays put, tracked otherwise; chosen from a first pose pass on every
`crop_every`-th frame, or given), the pose of every cropped frame (`apvg_hf.data.pose`), cleaned
(`clean_track`: swapped and duplicated hands removed, gaps filled relative to the body's wrists,
light temporal smoothing, confidence -> visibility), the audio/motion offset checked, and rows in the
schema of `virtual_pianist.features` with the fields the real world cannot give (notes, camera,
augmentation, seed, ...) left empty (None). The keyboard's key quads come from its four corners when
given. Splits are by time: the last `test_seconds` of every video are the test split, the
`validation_seconds` before them validation, the rest training, with `gap_seconds` dropped at each
boundary so no near-identical frames straddle two splits.

Writes `<output>/` (a `DatasetDict` on disk), `<output>/preprocess.json` (crop, detection rates,
offset check, the settings) and `<output>/preview.png` (cropped frames with the cleaned skeleton).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image

from .. import skeleton as sk
from ..video_io import iter_video, probe_video, read_audio_track
from .pose import MediaPipeHolistic, PoseTrack
from .scene import ALL_PITCHES, key_top_quad, keyboard_outline

SPLITS = ("train", "validation", "test")


@dataclass
class PreprocessConfig:
    """How videos become a dataset; every field is a `apvg preprocess` option."""

    performer: str = "performer"  # the `appearance` column: who plays (one name per dataset)
    licence: str = "unknown"  # the footage's licence, recorded in every row
    title: str = ""  # the `title` column (default: the video's file name)
    composer: str = ""
    size: int = 256  # side of the square output frames
    crop: list[int] | None = None  # x0, y0, side in source pixels: a fixed crop (None: automatic)
    crop_mode: str = "auto"  # auto | fixed | tracked (auto: fixed unless the performer moves a lot)
    crop_margin: float = 0.12  # extra side around the performer's box, as a fraction of it
    crop_every: int = 15  # the crop's pose pass looks at every N-th frame
    keyboard_corners: list[float] | None = None  # 8 numbers, source pixels: see `quads_from_corners`
    # semitones the instrument sounds above the key pressed (a digital piano's octave shift): quads are
    # indexed by the pitch heard, so the one for pitch p is the key p - keyboard_transpose
    # (`scripts/calibrate_keyboard.py` measures it)
    keyboard_transpose: int = 0
    sampling_rate: int = 16000
    audio_offset_seconds: float = 0.0  # shift applied to the audio (positive: the sound comes later)
    clip_seconds: float = 10.0
    test_seconds: float = 20.0  # the end of every video
    validation_seconds: float = 5.0  # just before the test part
    gap_seconds: float = 0.5  # dropped at each split boundary
    max_gap_seconds: float = 0.5  # hand gaps up to this long are interpolated and visible
    smooth_sigma_frames: float = 1.0  # Gaussian smoothing of the cleaned track (0: none)
    video_crf: int = 14
    video_pix_fmt: str = "yuv444p"

    def __post_init__(self):
        if self.crop is not None and len(self.crop) != 3:
            raise ValueError(f"crop is x0, y0, side (3 numbers), got {self.crop}")
        if self.crop_mode not in ("auto", "fixed", "tracked"):
            raise ValueError(f"crop_mode must be auto, fixed or tracked, got {self.crop_mode!r}")
        if self.keyboard_corners is not None and len(self.keyboard_corners) != 8:
            raise ValueError(
                f"keyboard_corners is 8 numbers (x, y of 4 corners), got {len(self.keyboard_corners)}"
            )
        if min(self.test_seconds, self.validation_seconds, self.gap_seconds) < 0 or self.clip_seconds <= 0:
            raise ValueError("split and clip lengths must be >= 0 (clip_seconds > 0)")


# ---------------------------------------------------------------------------------------------- crop


def choose_crop(track: PoseTrack, width: int, height: int, margin: float, mode: str = "auto") -> np.ndarray:
    """Square crop boxes from a pose pass over (some of) the frames -> (T, 3) x0, y0, side in source
    pixels (one per frame of `track`; all equal for a fixed crop).

    The box holds the detected body and hands (2nd..98th percentile over time) plus `margin`. A
    fixed crop when the performer's centre moves less than a fifth of the side (a static camera), a
    tracked one (the centre smoothed over ~2 s) otherwise; `mode` forces either."""
    pts = track.keypoints * np.array([width, height])  # (T, K, 2) pixels
    ok = (track.confidence > 0.5) & np.isfinite(pts).all(-1)
    if not ok.any():
        raise ValueError("no performer was detected in the sampled frames: pass a crop (x0, y0, side)")
    xy = pts[ok]
    lo, hi = np.percentile(xy, 2, 0), np.percentile(xy, 98, 0)
    side = float(min(max(hi - lo) * (1 + 2 * margin), width, height))
    centres = np.array(
        [np.median(p[o], 0) if o.any() else [np.nan, np.nan] for p, o in zip(pts, ok)]
    )  # (T, 2)
    centres = _fill_nan(centres)
    offset = (lo + hi) / 2 - np.median(centres, 0)  # box centre relative to the body's centre
    moving = np.percentile(np.linalg.norm(centres - np.median(centres, 0), axis=1), 90) > 0.2 * side
    if mode == "tracked" or (mode == "auto" and moving):
        centres = _smooth(centres, sigma=max(1.0, len(centres) / 20)) + offset
    else:
        centres = np.repeat(((lo + hi) / 2)[None], len(centres), 0)
    x0 = np.clip(centres[:, 0] - side / 2, 0, width - side)
    y0 = np.clip(centres[:, 1] - side / 2, 0, height - side)
    return np.stack([np.round(x0), np.round(y0), np.full(len(x0), round(side))], 1).astype(np.int64)


def crop_frame(frame: np.ndarray, box) -> np.ndarray:
    x0, y0, side = (int(v) for v in box)
    return frame[y0 : y0 + side, x0 : x0 + side]


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    """(S, S, 3) uint8 -> (size, size, 3), area-averaged down (Lanczos up)."""
    if frame.shape[0] == size:
        return np.ascontiguousarray(frame)
    method = PIL.Image.Resampling.BOX if frame.shape[0] > size else PIL.Image.Resampling.LANCZOS
    return np.asarray(PIL.Image.fromarray(np.ascontiguousarray(frame)).resize((size, size), method))


# ------------------------------------------------------------------------------------------ keyboard


def quads_from_corners(corners, transpose: int = 0) -> np.ndarray:
    """The 88 key-top quads (88, 4, 2) from the keyboard's four corners, by the homography from the
    virtual pianist's keyboard plane to the image (key heights ignored).

    corners: (4, 2) (or 8 numbers) in any 2D frame, in this order: the front edge at the lowest key
    (A0), the front edge at the highest key (C8), the back edge at C8, the back edge at A0. "Front" is
    the edge nearest the performer. The quads come back in the same frame, indexed by the pitch that
    sounds: with `transpose` (semitones the instrument sounds above the key pressed), quad i is the
    key of pitch 21 + i - transpose (beyond the keyboard's ends the key layout is extended)."""
    dst = np.asarray(corners, np.float64).reshape(4, 2)
    scale = np.ptp(dst, axis=0).max()
    for i in range(4):  # every three corners must span a triangle: no three on a line
        a, b, c = np.delete(dst, i, 0)
        u, v = b - a, c - a
        if not scale or abs(u[0] * v[1] - u[1] * v[0]) < 1e-4 * scale**2:
            raise ValueError(
                f"the keyboard corners are degenerate (three of them on a line?): {dst.tolist()}"
            )
    src = keyboard_outline()[:, :2]  # (4, 2) world X, Y of the keyboard plane
    Hm = _homography(src, dst)
    quads = np.stack([key_top_quad(p - transpose)[:, :2] for p in ALL_PITCHES])  # (88, 4, 2)
    q = np.concatenate([quads, np.ones((*quads.shape[:2], 1))], -1) @ Hm.T
    return (q[..., :2] / q[..., 2:]).astype(np.float32)


def fit_keyboard_transpose(
    clips_notes, clips_keypoints, clips_visibility, quads: np.ndarray, fps: float, search=range(-24, 25)
) -> dict[int, float]:
    """How well each transposition explains where the fingers are: for every note onset (e.g. the
    notes a transcriber hears in the video's audio), the distance along the keyboard from the key that
    pitch would be (quads for transpose 0, (88, 4, 2)) to the nearest visible fingertip; returns
    {transpose: median distance} (normalised units). The smallest is the instrument's transposition."""
    centre = quads.mean(1)  # (88, 2) key centres
    axis = centre[-1] - centre[0]
    axis = axis / np.linalg.norm(axis)  # along the keyboard
    along = centre @ axis  # (88,)
    tips = [k for h in sk.HANDS for k in sk.FINGERTIPS[h]]
    pitches, positions = [], []
    for notes, kp, vis in zip(clips_notes, clips_keypoints, clips_visibility):
        for n in notes:
            t = int(round(n["onset"] * fps))
            if 0 <= t < len(kp):
                v = [k for k in tips if vis[t, k] > 0.5]
                if v:
                    pitches.append(int(n["pitch"]))
                    positions.append(np.asarray(kp[t, v]) @ axis)
    if not pitches:
        raise ValueError("no note onset with a visible fingertip to fit the keyboard to")
    # key positions extended beyond both ends by the keyboard's own spacing (a linear fit per key index)
    slope, icpt = np.polyfit(np.arange(88), along, 1)
    out = {}
    for s in search:
        d = []
        for p, xs in zip(pitches, positions):
            i = p - 21 - s
            key = along[i] if 0 <= i < 88 else icpt + slope * i
            d.append(np.min(np.abs(xs - key)))
        out[int(s)] = float(np.median(d))
    return out


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with dst ~ H src, from 4 point pairs (DLT)."""
    A = []
    for (x, y), (u, v) in zip(src, dst):
        A.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        A.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(A))
    return vt[-1].reshape(3, 3) / vt[-1, -1]


# -------------------------------------------------------------------------------------------- cleaning


def clean_track(
    track: PoseTrack, fps: float, max_gap_seconds: float = 0.5, smooth_sigma_frames: float = 1.0
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Raw detections -> (T, 56, 2) keypoints with no gaps, (T, 56) visibility in [0, 1], and counts.

    Body joints: missing frames interpolated in time; visibility = the estimator's confidence mapped
    0.3..0.7 -> 0..1. Hands: each detected hand is assigned to the body wrist it is nearest (the pair
    assignment with the smaller total distance: swapped hands are swapped back); a hand whose wrist is
    farther than half a shoulder width from its body wrist, or that lies on the other hand (two outputs
    on one hand), is dropped. Missing hands are filled relative to the body's wrist: the hand's shape
    and its offset from the body wrist are interpolated between the detections around the gap, so the
    hand follows the arm. Gaps up to `max_gap_seconds` stay visible; longer ones are filled but
    invisible (losses ignore them, the STU draws no map for them). Then Gaussian smoothing in time."""
    kp = np.array(track.keypoints, np.float64)  # (T, K, 2)
    conf = np.array(track.confidence, np.float64)
    T = len(kp)
    body = sk.BODY_INDICES
    counts = {"frames": T}
    # 1. Body: interpolate what is missing; confidence -> visibility.
    body_ok = (conf[:, body] > 0.3) & np.isfinite(kp[:, body]).all(-1)
    if not body_ok.any():
        raise ValueError("no body was detected in any frame: is there a performer in the crop?")
    for j, k in enumerate(body):
        kp[:, k] = _interp_missing(kp[:, k], body_ok[:, j])
    vis = np.zeros((T, sk.NUM_KEYPOINTS))
    vis[:, body] = np.clip((conf[:, body] - 0.3) / 0.4, 0, 1)
    # 2. Hands: assign to the nearest body wrist, drop far and duplicated ones.
    wrist_body = {h: kp[:, sk.INDEX[f"{h}_wrist"]] for h in sk.HANDS}  # (T, 2) each
    shoulder = np.nanmedian(
        np.linalg.norm(kp[:, sk.INDEX["left_shoulder"]] - kp[:, sk.INDEX["right_shoulder"]], axis=-1)
    )
    hands = {h: kp[:, sk.HAND_INDICES[h]].copy() for h in sk.HANDS}  # (T, 21, 2)
    found = {h: conf[:, sk.HAND_INDICES[h][0]] > 0 for h in sk.HANDS}
    L, R = sk.HANDS
    counts |= {f"{h}_detected": int(found[h].sum()) for h in sk.HANDS}
    swapped = duplicates = far = 0
    for t in range(T):
        dist = lambda h, side, t=t: np.linalg.norm(hands[h][t, 0] - wrist_body[side][t])  # noqa: E731
        if found[L][t] and found[R][t]:
            if np.mean(np.linalg.norm(hands[L][t] - hands[R][t], axis=-1)) < 0.15 * shoulder:
                duplicates += 1  # both outputs on one hand: keep it on the side it is nearest
                near = min(((h, s) for h in sk.HANDS for s in sk.HANDS), key=lambda hs: dist(*hs))
                hand = hands[near[0]][t].copy()
                found[L][t] = found[R][t] = False
                hands[near[1]][t], found[near[1]][t] = hand, True
            elif dist(L, R) + dist(R, L) < dist(L, L) + dist(R, R):
                swapped += 1
                hands[L][t], hands[R][t] = hands[R][t].copy(), hands[L][t].copy()
        else:
            for h, o in ((L, R), (R, L)):
                if found[h][t] and dist(h, o) < dist(h, h) and dist(h, o) < 0.5 * shoulder:
                    swapped += 1  # a lone hand reported on the wrong side
                    hands[o][t], found[o][t], found[h][t] = hands[h][t].copy(), True, False
        for h in sk.HANDS:
            if found[h][t] and dist(h, h) > 0.5 * shoulder:
                far += 1
                found[h][t] = False
    counts |= {"hands_swapped": swapped, "hands_duplicated": duplicates, "hands_far_from_wrist": far}
    # 3. Fill hand gaps relative to the body wrist; long gaps are invisible.
    max_gap = int(round(max_gap_seconds * fps))
    for h in sk.HANDS:
        ok = found[h]
        counts[f"{h}_kept"] = int(ok.sum())
        idx = sk.HAND_INDICES[h]
        if not ok.any():  # never seen: a collapsed hand at the wrist, invisible
            kp[:, idx] = wrist_body[h][:, None]
            continue
        shape = hands[h] - hands[h][:, :1]  # (T, 21, 2) relative to the hand's own wrist
        offset = hands[h][:, 0] - wrist_body[h]  # (T, 2) hand wrist relative to the body wrist
        shape = _interp_missing(shape.reshape(T, -1), ok).reshape(T, sk.NUM_HAND, 2)
        offset = _interp_missing(offset, ok)
        kp[:, idx] = wrist_body[h][:, None] + offset[:, None] + shape
        run = _gap_lengths(ok)
        vis[:, idx] = ((run == 0) | (run <= max_gap))[:, None].astype(np.float64)
        counts[f"{h}_visible"] = int((vis[:, idx[0]] > 0).sum())
    # 4. Light smoothing in time.
    if smooth_sigma_frames > 0:
        kp = _smooth(kp.reshape(T, -1), smooth_sigma_frames).reshape(T, sk.NUM_KEYPOINTS, 2)
    return kp.astype(np.float32), vis.astype(np.float32), counts


def _interp_missing(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(T, ...) with rows where `ok` is False replaced by linear interpolation in time (held at the ends)."""
    x = np.array(x, np.float64)
    t = np.arange(len(x))
    flat = x.reshape(len(x), -1)
    for c in range(flat.shape[1]):
        flat[~ok, c] = np.interp(t[~ok], t[ok], flat[ok, c])
    return flat.reshape(x.shape)


def _gap_lengths(ok: np.ndarray) -> np.ndarray:
    """(T,) for each frame the length of the run of missing frames it lies in (0 where ok)."""
    out = np.zeros(len(ok), np.int64)
    t = 0
    while t < len(ok):
        if ok[t]:
            t += 1
            continue
        end = t
        while end < len(ok) and not ok[end]:
            end += 1
        out[t:end] = end - t
        t = end
    return out


def _fill_nan(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x).all(-1)
    return _interp_missing(x, ok) if ok.any() else x


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 of (T, C), edges reflected."""
    r = max(1, int(round(3 * sigma)))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w /= w.sum()
    pad = np.pad(x, ((r, r), (0, 0)), mode="reflect" if len(x) > r else "edge")
    return np.stack([np.convolve(pad[:, c], w, mode="valid") for c in range(x.shape[1])], 1)


# ------------------------------------------------------------------------------------ offset check


def onset_envelope(audio: np.ndarray, sr: int, fps: float, num_frames: int) -> np.ndarray:
    """(num_frames,) half-wave-rectified spectral flux of the audio at the video's frame rate."""
    hop = sr / fps
    n_fft = 2048 if sr > 20000 else 1024
    starts = (np.arange(num_frames) * hop).astype(np.int64)
    pad = np.pad(audio, (n_fft // 2, n_fft))
    frames = np.stack([pad[s : s + n_fft] for s in starts]) * np.hanning(n_fft)
    mag = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(mag, axis=0, prepend=mag[:1]), 0).sum(1)
    return flux


def motion_speed(keypoints: np.ndarray, visibility: np.ndarray | None = None, joints=None) -> np.ndarray:
    """(T,) mean speed of the given joints (default: the fingertips) in normalised units per frame."""
    joints = joints if joints is not None else [k for h in sk.HANDS for k in sk.FINGERTIPS[h]]
    v = np.linalg.norm(np.diff(keypoints[:, joints], axis=0, prepend=keypoints[:1, joints]), axis=-1)
    if visibility is not None:
        v = v * (visibility[:, joints] > 0)
    return v.mean(1)


def audio_motion_lag(envelope: np.ndarray, speed: np.ndarray, max_lag: int = 15) -> tuple[int, float, float]:
    """The lag (frames) at which hand motion best follows the audio's onsets, its correlation and the
    correlation at lag 0. A positive lag: the motion comes after the sound."""

    def corr(lag: int) -> float:
        a, b = (envelope[: len(envelope) - lag], speed[lag:]) if lag >= 0 else (envelope[-lag:], speed[:lag])
        if len(a) < 3 or a.std() == 0 or b.std() == 0:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])

    lags = range(-max_lag, max_lag + 1)
    scores = [corr(lag) for lag in lags]
    best = int(np.argmax(scores))
    return lags[best], scores[best], corr(0)


# ---------------------------------------------------------------------------------------- the driver


@dataclass
class VideoResult:
    """What preprocessing made of one video (the arrays the dataset rows are cut from)."""

    name: str
    fps: float
    frames: np.ndarray  # (T, S, S, 3) uint8
    keypoints: np.ndarray  # (T, 56, 2)
    visibility: np.ndarray  # (T, 56)
    audio: np.ndarray  # (N,) float32 at the config's sampling rate
    boxes: np.ndarray  # (T, 3) crop boxes in source pixels
    keyboard_quads: np.ndarray | None  # (88, 4, 2) in the crop (fixed crops), or None
    report: dict = field(default_factory=dict)


def preprocess_video(path, cfg: PreprocessConfig, estimator=None, progress: bool = True) -> VideoResult:
    """One video -> cropped frames, cleaned keypoints, audio and a report (see the module doc)."""
    import soxr
    from tqdm.auto import tqdm

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    estimator = estimator or MediaPipeHolistic()
    try:
        info = probe_video(path)
    except Exception as err:  # noqa: BLE001 (PyAV raises many kinds)
        raise ValueError(f"cannot read {path} as a video: {err}") from err
    T, W, H, fps = info["frames"], info["width"], info["height"], info["fps"]
    if not T or not fps:
        raise ValueError(f"{path} has no decodable video frames")
    if not info["sampling_rate"]:
        raise ValueError(f"{path} has no audio track: a performance video needs its sound")
    # 1. Audio: mono, resampled, shifted by the configured offset, cut/padded to the video's length.
    audio, sr = read_audio_track(path)
    audio = (
        soxr.resample(audio, sr, cfg.sampling_rate).astype(np.float32) if sr != cfg.sampling_rate else audio
    )
    n = int(round(T / fps * cfg.sampling_rate))
    shift = int(round(cfg.audio_offset_seconds * cfg.sampling_rate))
    audio = np.concatenate([np.zeros(max(shift, 0), np.float32), audio[max(-shift, 0) :]])
    audio = np.pad(audio[:n], (0, max(0, n - len(audio))))
    # 2. The crop: given, or from a pose pass over every crop_every-th frame.
    if cfg.crop is not None:
        x0, y0, side = cfg.crop
        if x0 < 0 or y0 < 0 or x0 + side > W or y0 + side > H or side < 16:
            raise ValueError(f"crop {cfg.crop} does not fit in the {W}x{H} frame")
        boxes = np.tile(np.array(cfg.crop, np.int64), (T, 1))
    else:
        step = max(1, cfg.crop_every)
        sampled = np.arange(0, T, step)
        frames_iter = (f for i, f in enumerate(iter_video(path)) if i % step == 0)
        with tqdm(
            total=len(sampled), desc=f"{path.name}: finding the performer", disable=not progress
        ) as bar:
            coarse = estimator(
                frames_iter, count=len(sampled), progress=bar.update,
                frame_indices=sampled, boxes=np.tile([0, 0, W, H], (len(sampled), 1)),
            )  # fmt: skip
        # keyboard corners are one quad in the source: they need one crop for the whole video
        mode = "fixed" if cfg.keyboard_corners is not None and cfg.crop_mode == "auto" else cfg.crop_mode
        if mode == "tracked" and cfg.keyboard_corners is not None:
            raise ValueError("keyboard corners need a fixed crop (--crop-mode fixed or --crop)")
        sampled_boxes = choose_crop(coarse, W, H, cfg.crop_margin, mode)
        boxes = (
            np.stack([np.interp(np.arange(T), sampled, sampled_boxes[:, c]) for c in range(3)], 1)
            .round()
            .astype(np.int64)
        )
        boxes[:, 2] = sampled_boxes[0, 2]
    # 3. Crop every frame; pose on the crops at the source's resolution; store them at `size`.
    frames = np.empty((T, cfg.size, cfg.size, 3), np.uint8)

    def crops():
        for i, f in enumerate(iter_video(path)):
            if i >= T:
                break
            c = crop_frame(f, boxes[i])
            frames[i] = resize(c, cfg.size)
            yield c

    with tqdm(total=T, desc=f"{path.name}: pose", disable=not progress) as bar:
        track = estimator(crops(), count=T, progress=bar.update, frame_indices=np.arange(T), boxes=boxes)
    # 4. Clean; check the audio against the motion.
    keypoints, visibility, counts = clean_track(track, fps, cfg.max_gap_seconds, cfg.smooth_sigma_frames)
    env = onset_envelope(audio, cfg.sampling_rate, fps, T)
    lag, best, at_zero = audio_motion_lag(env, motion_speed(keypoints, visibility))
    # In sync, fingertips move *ahead* of the sound (they travel to the key, then stop as the note
    # sounds): the virtual pianist, in perfect sync, peaks near -0.27 s. The estimate is noisy on short
    # videos (a 6 s one can peak anywhere), so it only warns on 30 s or more with a clear peak.
    clear = best >= 0.3 and best > at_zero + 0.15 and 30 * fps <= T
    if clear and not -0.5 <= lag / fps <= 0.1:
        warnings.warn(
            f"{path.name}: the hands move best with the sound {lag / fps:+.2f} s later than recorded "
            f"(correlation {best:.2f} vs {at_zero:.2f} at 0; in sync it is -0.5..0 s): check the "
            "audio/video offset (--audio-offset-seconds)",
            stacklevel=2,
        )
    quads = None
    if cfg.keyboard_corners is not None:
        if np.ptp(boxes, axis=0).any():
            raise ValueError("keyboard corners need a fixed crop (--crop-mode fixed or --crop)")
        x0, y0, side = boxes[0]
        corners = (np.asarray(cfg.keyboard_corners, np.float64).reshape(4, 2) - [x0, y0]) / side
        quads = quads_from_corners(corners, cfg.keyboard_transpose)
    report = {
        "video": path.name,
        "source": {k: info[k] for k in ("frames", "width", "height", "fps", "sampling_rate")},
        "crop": {"mode": "fixed" if not np.ptp(boxes, axis=0).any() else "tracked",
                 "first_box_x0_y0_side": boxes[0].tolist()},
        "estimator": getattr(estimator, "name", type(estimator).__name__),
        "detections": counts | {f"{h}_hand_found_fraction": round(float(track.hand_found()[:, i].mean()), 4)
                                for i, h in enumerate(sk.HANDS)},
        "audio_motion": {"best_lag_frames": lag, "correlation_at_best": round(best, 4),
                         "correlation_at_zero": round(at_zero, 4)},
        "keyboard": "from the given corners" if quads is not None else None,
    }  # fmt: skip
    return VideoResult(path.stem, fps, frames, keypoints, visibility, audio, boxes, quads, report)


def split_ranges(T: int, fps: float, cfg: PreprocessConfig) -> dict[str, tuple[int, int]]:
    """Frame ranges [a, b) of each split for a video of T frames: train | gap | validation | gap | test."""
    test = int(round(cfg.test_seconds * fps))
    val = int(round(cfg.validation_seconds * fps))
    gap = int(round(cfg.gap_seconds * fps))
    t1 = T - test
    v1 = t1 - (gap if test else 0)
    v0 = v1 - val
    tr1 = v0 - (gap if val else 0)
    if tr1 < int(fps):
        raise ValueError(
            f"a {T / fps:.1f} s video leaves {max(tr1, 0) / fps:.1f} s for training after {cfg.test_seconds} s "
            f"test, {cfg.validation_seconds} s validation and the gaps: shorten them"
        )
    return {"train": (0, tr1), "validation": (v0, v1), "test": (t1, T)}


def video_rows(result: VideoResult, cfg: PreprocessConfig, split: str, span: tuple[int, int]):
    """Dataset rows (clips of at most `clip_seconds`) of frames [a, b) of one preprocessed video."""
    from ..video_io import encode_video
    from .virtual_pianist import _flac_bytes

    fps, sr = result.fps, cfg.sampling_rate
    a, b = span
    step = max(1, int(round(cfg.clip_seconds * fps)))
    bounds = list(range(a, b, step)) + [b]
    if len(bounds) > 2 and b - bounds[-2] < fps:  # a tail under a second joins the clip before it
        del bounds[-2]
    for ci, (f0, f1) in enumerate(zip(bounds[:-1], bounds[1:])):
        if f1 <= f0:
            continue
        t0, t1 = f0 / fps, f1 / fps
        audio = result.audio[int(round(t0 * sr)) : int(round(t1 * sr))]
        yield {
            "piece_id": f"real/{result.name}",
            "title": cfg.title or result.name,
            "composer": cfg.composer,
            "licence": cfg.licence,
            "variant": 0,
            "clip_index": ci,
            "start_time": float(t0),
            "duration": float(t1 - t0),
            "fps": float(fps),
            "num_frames": int(f1 - f0),
            "width": cfg.size,
            "height": cfg.size,
            "sampling_rate": sr,
            "audio": {"bytes": _flac_bytes(audio, sr), "path": None},
            "video": encode_video(result.frames[f0:f1], fps, crf=cfg.video_crf, pix_fmt=cfg.video_pix_fmt),
            "keypoints": result.keypoints[f0:f1],
            "visibility": result.visibility[f0:f1],
            "notes": None,
            "keyboard_pitches": ALL_PITCHES if result.keyboard_quads is not None else None,
            "keyboard_quads": result.keyboard_quads,
            "appearance": cfg.performer,
            "camera": None,
            "augmentation": None,
            "dropped_notes": None,
            "seed": None,
            "soundfont": None,
        }


def preview(result: VideoResult, count: int = 6) -> np.ndarray:
    """A strip of `count` cropped frames with the cleaned skeleton and the keyboard's outline."""
    idx = np.linspace(0, len(result.frames) - 1, count).round().astype(int)
    tiles = []
    for t in idx:
        f = result.frames[t]
        if result.keyboard_quads is not None:
            f = sk.draw_keys(f, result.keyboard_quads, np.ones(len(ALL_PITCHES), bool), alpha=0.25)
        tiles.append(sk.draw_skeleton(f, result.keypoints[t], result.visibility[t]))
    return np.concatenate(tiles, 1)


def preprocess_videos(
    videos, output: str | os.PathLike, cfg: PreprocessConfig, estimator=None, progress: bool = True
) -> dict:
    """Videos -> a `DatasetDict` at `output` split by time (see the module doc); returns the report."""
    import datasets

    from .virtual_pianist import features

    videos = [Path(v) for v in videos]
    if not videos:
        raise ValueError("no videos given")
    output = Path(output)
    rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    reports, previews = [], []
    for v in videos:
        result = preprocess_video(v, cfg, estimator, progress)
        spans = split_ranges(len(result.frames), result.fps, cfg)
        for s in SPLITS:
            rows[s] += list(video_rows(result, cfg, s, spans[s]))
        reports.append(result.report | {"splits_frames": {s: list(spans[s]) for s in SPLITS}})
        previews.append(preview(result))
    feats = features(cfg.sampling_rate, audio_feature=False)
    dd = datasets.DatasetDict(
        {
            s: datasets.Dataset.from_list(r, features=feats).cast_column(
                "audio", datasets.Audio(sampling_rate=cfg.sampling_rate, decode=False)
            )
            for s, r in rows.items()
            if r
        }
    )
    tmp = output.with_name(output.name + ".partial")
    dd.save_to_disk(str(tmp))
    report = {"config": asdict(cfg), "videos": reports, "clips": {s: len(r) for s, r in rows.items()}}
    (tmp / "preprocess.json").write_text(json.dumps(report, indent=1))
    PIL.Image.fromarray(np.concatenate(previews, 0)).save(tmp / "preview.png")
    if output.exists():
        import shutil

        shutil.rmtree(output)
    tmp.rename(output)
    return report
