"""apvg-hf Space: upload (or record) a piano recording, or a MIDI file, get a video of a virtual pianist
playing it (the keys that sound lit, where the notes are known).

Runs on CPU, offline once the pipeline is loaded. Locally: `make space` (http://127.0.0.1:7860).

Settings (environment variables):
    APVG_SPACE_MODEL        a pipeline folder or Hub id (default: the embedded default pipeline)
    APVG_SPACE_MAX_SECONDS  the longest recording or MIDI piece accepted (default 60: a CPU Space's cap)
    APVG_SPACE_CONCURRENCY  generations run at once (default 1: one request uses both cores)
    APVG_SPACE_MAX_QUEUE    requests waiting at most; more are turned away (default 32)
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT   where to listen (default 127.0.0.1:7860)

The app uses the package's public API only: `APVGPipeline.from_pretrained`, the pipeline call (audio, or
`notes=` read with `apvg_hf.midi.read_midi`; `highlight_keys=`), `apvg_hf.midi.notes_to_midi` for the notes
download, and `AppearanceReference.from_frame` with frames drawn by the virtual-pianist data generator.
"""

from __future__ import annotations

import os

# No telemetry, no version check, no Hub calls after start-up. Set before gradio / huggingface_hub load.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
_MODEL = os.environ.get("APVG_SPACE_MODEL", "")
_CHECKOUT_DEFAULT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "pipelines", "apvg-virtual-pianist"
)
_LOCAL = _MODEL or os.environ.get("APVG_DEFAULT_PIPELINE", "") or _CHECKOUT_DEFAULT
if os.path.isfile(os.path.join(_LOCAL, "model_index.json")):  # a local pipeline folder: no Hub at all
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Otherwise (a Hub id, or the package installed without the checkout, as on a Space) the pipeline is
# downloaded once at start; nothing reaches the network after that.

import inspect  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

import apvg_hf  # noqa: E402
import apvg_hf.midi  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"
FPS_NOTE = "30 frames/s"
LAYOUTS = [
    ("Frames", "frames"),
    ("Skeleton overlay", "overlay"),
    ("Side by side (stage 1 | stage 2)", "side-by-side"),
]
SIZES = (128, 256, 384, 512)


def size_choices(native: int) -> list[tuple[str, int]]:
    """The output sizes offered, the pipeline's own resolution marked (and offered if not in SIZES)."""
    sizes = sorted(set(SIZES) | {native})
    return [(f"{s} px (native)" if s == native else f"{s} px", s) for s in sizes]


def chunk_seconds_for(duration: float) -> float:
    """Audio per pipeline step: about 8 steps a request, so the progress bar moves, but no chunk under 2 s
    (each chunk recomputes some KHP context) or over 10 s. The frames do not depend on it."""
    return float(min(10.0, max(2.0, duration / 8)))


EXAMPLES = [  # (file, label, performer): pieces in no training split, rendered by scripts/make_example_audio.py
    ("mozart_k458_movement1.ogg", "Mozart · String Quartet K. 458 “The Hunt”, I (20 s)", "default"),
    ("haydn_opus74no1_movement1.ogg", "Haydn · String Quartet Op. 74 No. 1, I (20 s)", "chloe"),
    ("beethoven_opus59no3_movement4.ogg", "Beethoven · String Quartet Op. 59 No. 3, IV (20 s)", "ben"),
    ("mozart_k458_movement1.mid", "Mozart · K. 458, I, as MIDI: the notes the .ogg plays (21 s)", "default"),
]
MIDI_SUFFIXES = (".mid", ".midi")
MAX_MIDI_BYTES = 8 << 20  # a minute of even dense piano music is a few tens of KiB


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {value!r}") from None


# ------------------------------------------------------------------------------------------ performers


@dataclass
class Performer:
    key: str  # the API value
    label: str  # what the page shows
    reference: apvg_hf.AppearanceReference
    picture: np.ndarray  # (H, W, 3) uint8


def _picture(reference: apvg_hf.AppearanceReference) -> np.ndarray:
    return (reference.frame.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def generator_references(resolution: int = 256) -> list[tuple[str, apvg_hf.AppearanceReference]]:
    """One reference per appearance of the virtual-pianist generator (empty if it is not importable)."""
    try:
        from apvg_hf.data.references import appearance_references
    except ImportError:
        return []
    return appearance_references(resolution)


def available_performers(pipe, model_path: str | None = None) -> list[Performer]:
    """The pipeline's own reference first, then the generator's other appearances."""
    default_name = None
    if model_path and Path(model_path, "reference", "source.json").is_file():
        try:
            default_name = json.loads(Path(model_path, "reference", "source.json").read_text())["appearance"]
        except (ValueError, KeyError, TypeError):
            default_name = None
    performers = [Performer("default", "Default", pipe.reference, _picture(pipe.reference))]
    for name, ref in generator_references():
        if name != default_name:  # the default already shows this one, as trained
            performers.append(Performer(name, name.title(), ref, _picture(ref)))
    return performers


# ------------------------------------------------------------------------------------ audio analysis


def onset_strength(wave: np.ndarray, sr: int, fps: float, num_frames: int) -> np.ndarray:
    """Spectral flux (half-wave rectified rise of the log-magnitude spectrum) averaged over each video
    frame: (num_frames,)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:  # (channels, n) or (n, channels)
        wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
    hop = max(1, round(sr / 100))  # 10 ms
    n_fft = 1 << int(np.ceil(np.log2(0.064 * sr)))  # ~64 ms
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.log1p(100.0 * np.abs(np.fft.rfft(frames, axis=-1)))
    flux = np.maximum(np.diff(mag, axis=0), 0.0).sum(axis=-1)
    flux = np.concatenate([[0.0], flux])
    times = (np.arange(len(flux)) * hop + n_fft / 2) / sr
    bins = np.minimum((times * fps).astype(np.int64), num_frames)
    total = np.bincount(bins, weights=flux, minlength=num_frames + 1)[:num_frames]
    count = np.bincount(bins, minlength=num_frames + 1)[:num_frames]
    return total / np.maximum(count, 1)


def hand_motion(keypoints: np.ndarray) -> np.ndarray:
    """Mean speed of both hands' 42 points, in frame widths per frame: (T,)."""
    from apvg_hf import skeleton

    idx = skeleton.HAND_INDICES["left"] + skeleton.HAND_INDICES["right"]
    hands = np.asarray(keypoints, dtype=np.float64)[:, idx]
    speed = np.linalg.norm(np.diff(hands, axis=0), axis=-1).mean(axis=-1)
    return np.concatenate([[0.0], speed])


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag (frames; > 0: `b` follows `a`) with the largest Pearson correlation, and that correlation."""

    def z(x):
        return (x - x.mean()) / (x.std() + 1e-12)

    best = (0, float("nan"))
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[: len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: len(b) + lag])
        if len(x) < 3:
            continue
        r = float(np.mean(z(x) * z(y)))
        if np.isnan(best[1]) or r > best[1]:
            best = (lag, r)
    return best


def sync_plot(keypoints: np.ndarray, wave: np.ndarray, sr: int, fps: float, path: Path) -> tuple[Path, str]:
    """A PNG of hand motion against the audio's onset strength; returns it and a one-line summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = len(keypoints)
    onset, motion = onset_strength(wave, sr, fps, T), hand_motion(keypoints)
    lag, r = best_lag(onset, motion, max_lag=int(round(0.5 * fps)))
    t = np.arange(T) / fps

    def unit(x):
        return x / (np.percentile(x, 99) + 1e-12)

    fig, ax = plt.subplots(figsize=(7.2, 2.4), dpi=110)
    ax.fill_between(t, 0, np.clip(unit(onset), 0, 1.2), color="#9ca3af", alpha=0.55, lw=0,
                    label="audio onset strength")  # fmt: skip
    ax.plot(t, np.clip(unit(motion), 0, 1.2), color="#4f46e5", lw=1.3, label="hand motion (speed)")
    ax.set_xlim(0, max(t[-1] if T else 1.0, 1e-3))
    ax.set_ylim(0, 1.25)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    summary = f"best alignment: hands {'after' if lag >= 0 else 'before'} the onsets by {abs(lag) / fps * 1000:.0f} ms"
    summary += f" (correlation {r:.2f})" if np.isfinite(r) else ""
    ax.set_title(summary, fontsize=9, loc="left")
    ax.legend(loc="upper right", fontsize=8, frameon=False, ncol=2)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path, summary


# ------------------------------------------------------------------------------------------ the app


class SpaceError(gr.Error):
    """A message for the person using the page (shown as is, nothing else)."""


def _clean_old_outputs(root: Path, max_age_s: float = 3600.0) -> None:
    now = time.time()
    for d in root.glob("req_*"):
        try:
            if now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _check_audio(path: str | None, max_seconds: float) -> float:
    """Duration in seconds of a readable, non-empty recording no longer than `max_seconds`."""
    import soundfile as sf

    if not path:
        raise SpaceError(
            "No audio or MIDI file: upload a recording, record one with the microphone, upload a MIDI "
            "file, or pick an example."
        )
    if not Path(path).is_file():
        raise SpaceError("The uploaded file did not arrive: please upload it again.")
    try:
        info = sf.info(path)
    except Exception:  # noqa: BLE001  (libsndfile raises its own error types for unreadable data)
        raise SpaceError(
            f"Cannot read {Path(path).name!r} as audio. Upload a WAV, FLAC, MP3 or OGG recording."
        ) from None
    if info.frames == 0 or info.duration <= 0:
        raise SpaceError(f"{Path(path).name!r} holds no sound (0 samples).")
    if info.duration > max_seconds:
        raise SpaceError(
            f"The recording is {info.duration:.1f} s long; this Space takes at most {max_seconds:.0f} s "
            "(the 'Longest recording' setting). Cut it and try again."
        )
    return float(info.duration)


def _check_midi(path: str, max_seconds: float) -> tuple[list[dict], float, int]:
    """The notes of a readable MIDI file that lasts (last note offset + the 1 s release the video keeps)
    no longer than `max_seconds`: (note dicts, duration in seconds, notes left out: outside the 88 keys)."""
    name = Path(path).name
    if not Path(path).is_file():
        raise SpaceError("The uploaded MIDI file did not arrive: please upload it again.")
    size = Path(path).stat().st_size
    if size > MAX_MIDI_BYTES:
        raise SpaceError(
            f"{name!r} is {size / 2**20:.1f} MiB: too large for a MIDI file this Space plays "
            f"(at most {MAX_MIDI_BYTES >> 20} MiB)."
        )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            notes = apvg_hf.midi.read_midi(Path(path).read_bytes())  # bytes: no server path in messages
    except Exception as err:  # noqa: BLE001  (read_midi raises ValueError; anything else is as unusable)
        reason = "it could not be read"
        if isinstance(
            err, ValueError
        ):  # e.g. "the MIDI data holds no notes (...)" -> "it holds no notes (...)"
            reason = str(err).replace("the MIDI data ", "it ", 1).rstrip(": ")
        raise SpaceError(
            f"Cannot use {name!r}: {reason}. Upload a standard MIDI file (.mid, .midi) with piano notes."
        ) from None
    left_out = 0
    for w in caught:
        words = str(w.message).split("dropped ", 1)
        if len(words) == 2 and words[1].split(" ", 1)[0].isdigit():
            left_out += int(words[1].split(" ", 1)[0])
    last = max(n["offset"] for n in notes)
    duration = last + apvg_hf.midi.RELEASE_TAIL_S
    if duration > max_seconds:
        raise SpaceError(
            f"The MIDI file lasts {duration:.1f} s (its last note ends at {last:.1f} s, and the video keeps "
            f"{apvg_hf.midi.RELEASE_TAIL_S:g} s for the release); this Space takes at most "
            f"{max_seconds:.0f} s (the 'Longest recording' setting). Cut it and try again."
        )
    return notes, float(duration), left_out


def create_demo(
    pipe=None,
    model_path: str | None = None,
    max_seconds: float | None = None,
    performers: list[Performer] | None = None,
    output_dir: str | os.PathLike | None = None,
) -> gr.Blocks:
    """The Blocks app. `pipe`: an APVGPipeline (default: loaded once from `model_path`, else
    `$APVG_SPACE_MODEL`, else the embedded default pipeline)."""
    model_path = model_path or _MODEL or apvg_hf.default_pipeline_path()
    if pipe is None:
        pipe = apvg_hf.APVGPipeline.from_pretrained(model_path)
    cap = float(max_seconds if max_seconds is not None else _env_number("APVG_SPACE_MAX_SECONDS", 60.0))
    performers = performers or available_performers(pipe, model_path)
    by_key = {p.key: p for p in performers}
    work = Path(output_dir or tempfile.mkdtemp(prefix="apvg_space_"))
    work.mkdir(parents=True, exist_ok=True)
    has_callback = "callback_on_chunk_end" in inspect.signature(pipe.__call__).parameters
    model_name = Path(model_path).name or str(model_path)
    # A note-aware KHP transcribes audio (its notes come back, and can light the keys); an audio-only one
    # plays what it hears, so only a MIDI file gives notes.
    note_khp = getattr(getattr(pipe.khp, "config", None), "architecture", "audio") == "notes"

    def generate(
        audio: str | None,
        midi: str | None,
        performer: str,
        video_size: int,
        layout: str,
        longest: float,
        highlight_keys: bool,
        progress=gr.Progress(track_tqdm=not has_callback),  # noqa: B008  (gradio's way of asking for it)
    ):
        """Audio file or MIDI file -> (mp4 of the performance with its sound, keypoints JSON, sync plot PNG,
        summary, the notes played as MIDI or None)."""
        t0 = time.perf_counter()
        try:
            longest = float(longest) if longest is not None else cap
        except (TypeError, ValueError):
            raise SpaceError(f"'Longest recording' must be a number of seconds, got {longest!r}") from None
        limit = min(max(longest, 1.0), cap)
        if audio and midi:
            raise SpaceError(
                "Both a recording and a MIDI file were given: keep one of them (clear the other) and try "
                "again."
            )
        notes, left_out = None, 0
        if midi:
            notes, duration, left_out = _check_midi(midi, limit)
        else:
            duration = _check_audio(audio, limit)  # no audio either: it says what to give
        source = midi or audio
        if performer not in by_key:
            raise SpaceError(f"Unknown performer {performer!r}: choose one of {', '.join(by_key)}.")
        try:
            size = int(video_size) if video_size not in (None, "") else None
        except (TypeError, ValueError):
            raise SpaceError(f"Output size must be a number of pixels, got {video_size!r}") from None
        if size is not None and not 32 <= size <= 1024:
            raise SpaceError(f"Output size must be between 32 and 1024 pixels, got {size}.")
        if layout not in {v for _, v in LAYOUTS}:
            raise SpaceError(f"Layout must be one of {', '.join(v for _, v in LAYOUTS)}, got {layout!r}.")

        # Lit keys need the notes (a MIDI file, or audio that this KHP transcribes) and a performer
        # picture that knows where the keys are; otherwise the video is made without them, and says why.
        reference = by_key[performer].reference
        lit, keys_note = False, ""
        if highlight_keys:
            if notes is None and not note_khp:
                keys_note = (
                    "Keys not lit: this model hears the audio but does not transcribe it "
                    "(upload the piece as a MIDI file to light them)."
                )
            elif getattr(reference, "keyboard_quads", None) is None:
                keys_note = "Keys not lit: this performer's picture does not know where the keys are."
            else:
                lit = True

        _clean_old_outputs(work)
        out_dir = Path(tempfile.mkdtemp(prefix="req_", dir=work))
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(source).stem)[:60] or "music"
        video_path = out_dir / f"{stem}_performance.mp4"
        progress(0.0, desc="Preparing")
        kwargs = dict(
            reference=reference,
            output_path=str(video_path),
            video_layout=layout,
            video_size=size,
            max_seconds=limit,
            output_type=None,  # frames go straight to the file: memory stays flat
            chunk_seconds=chunk_seconds_for(duration),
        )
        if lit:
            kwargs["highlight_keys"] = True
        if has_callback:
            kwargs["callback_on_chunk_end"] = lambda done, total: progress(
                (done, total), desc="Generating", unit="chunks"
            )
            kwargs["show_progress"] = False
        else:  # older library: follow its tqdm bar
            kwargs["show_progress"] = True
        try:
            out = pipe(notes=notes, **kwargs) if notes is not None else pipe(audio, **kwargs)
        except (ValueError, FileNotFoundError) as err:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise SpaceError(str(err)) from None
        except RuntimeError as err:  # e.g. a decoder giving up half-way through a damaged file
            shutil.rmtree(out_dir, ignore_errors=True)
            raise SpaceError(f"Could not process {Path(source).name!r}: {err}") from None
        progress(1.0, desc="Plotting")
        keypoints = np.asarray(out.keypoints)
        T, fps = len(keypoints), float(out.fps)
        kp_path = out_dir / f"{stem}_keypoints.json"
        kp_path.write_text(
            json.dumps(
                {
                    "source": Path(source).name,
                    "input": "midi" if midi else "audio",
                    "model": model_name,
                    "performer": performer,
                    "fps": fps,
                    "num_frames": T,
                    "keypoint_names": list(apvg_hf.skeleton.KEYPOINT_NAMES),
                    "coordinates": "normalised to the frame: x right, y down, in [0, 1]",
                    "keypoints": np.round(keypoints.astype(np.float64), 4).tolist(),
                    "visibility": np.round(np.asarray(out.visibility, dtype=np.float64), 3).tolist(),
                },
                separators=(",", ":"),
            )
        )
        plot_path, sync = sync_plot(keypoints, out.audio, out.sampling_rate, fps, out_dir / "sync.png")
        played = getattr(out, "notes", None)  # the notes given, or those a note-aware KHP transcribed
        notes_path = None
        if played:  # none heard: nothing to download
            notes_path = out_dir / f"{stem}_notes.mid"
            notes_path.write_bytes(apvg_hf.midi.notes_to_midi(played, end_time=T / fps))
        took = time.perf_counter() - t0
        what = f"a MIDI file ({len(notes)} notes)" if notes is not None else "audio"
        summary = (
            f"**{T} frames** ({T / fps:.1f} s at {fps:g} fps) from {duration:.1f} s of {what} in "
            f"**{took:.1f} s** ({(T / fps) / took:.2f}× real time). Sync: {sync}."
        )
        if left_out:
            summary += f" {left_out} note(s) outside the piano's 88 keys were left out."
        if lit:
            summary += " The keys that sound are lit."
        elif keys_note:
            summary += " " + keys_note
        if played is not None and notes is None:
            summary += f" Heard {len(played)} notes" + (" (download them below)." if played else ".")
        return (
            str(video_path),
            str(kp_path),
            str(plot_path),
            summary,
            (str(notes_path) if notes_path else None),
        )

    theme = gr.themes.Soft(
        primary_hue="indigo",
        neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    examples = [  # [audio, MIDI]: one of the two, the other cleared
        [None, str(EXAMPLES_DIR / f)] if f.endswith(MIDI_SUFFIXES) else [str(EXAMPLES_DIR / f), None]
        for f, _, _ in EXAMPLES
        if (EXAMPLES_DIR / f).is_file()
    ]
    labels = [label for f, label, _ in EXAMPLES if (EXAMPLES_DIR / f).is_file()]

    with gr.Blocks(title="apvg-hf: a pianist for your recording", analytics_enabled=False) as demo:
        demo.theme_for_launch, demo.css_for_launch = theme, CSS
        gr.Markdown(
            "# apvg-hf · a pianist for your recording\n"
            "Upload or record piano music (or upload a MIDI file) and get a video of a virtual pianist "
            "playing it, in sync, with your audio (or the notes rendered as piano sound; the keys that sound "
            "light up). Stage 1 predicts the performer's keypoints and a coarse picture from the sound; "
            "stage 2 paints the frames ([*Let's Play Music*, ICPR 2020](https://arxiv.org/abs/2011.02631), "
            f"independent implementation). On 2 CPU cores a 20 s recording takes about 20–60 s. Model: `{model_name}`.",
            elem_id="intro",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=360):
                audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Recording (upload or microphone)",
                    elem_id="audio-input",
                )
                midi = gr.File(
                    file_types=list(MIDI_SUFFIXES),
                    type="filepath",
                    label="…or a MIDI file (.mid): the video shows exactly these notes",
                    height=96,
                    elem_id="midi-input",
                )
                gr.Examples(
                    examples=examples,
                    inputs=[audio, midi],
                    example_labels=labels,
                    label="Examples: pieces the models never saw in training",
                    cache_examples=False,
                    examples_per_page=4,
                )
                gallery = gr.Gallery(
                    value=[(p.picture, p.label) for p in performers],
                    label="Performer (click one)",
                    columns=min(4, len(performers)),
                    height=272,  # two rows of thumbnails, no empty space below
                    allow_preview=False,
                    selected_index=0,
                    object_fit="cover",
                    interactive=False,
                    elem_id="performers",
                )
                performer = gr.Radio(
                    [(p.label, p.key) for p in performers],
                    value=performers[0].key,
                    label="Performer",
                    visible=False,  # the API's value; the gallery above is how people choose
                    elem_id="performer",
                )
                with gr.Row():
                    video_size = gr.Radio(
                        size_choices(pipe.stu.config.resolution),
                        value=256,
                        label="Output size",
                        elem_id="size",
                    )
                    layout = gr.Radio(LAYOUTS, value="side-by-side", label="Layout", elem_id="layout")
                longest = gr.Slider(
                    minimum=5,
                    maximum=cap,
                    value=cap,
                    step=5,
                    label="Longest recording (s)",
                    info=f"Longer recordings (and MIDI files: last note + 1 s) are refused. "
                    f"This Space's cap: {cap:.0f} s.",
                    elem_id="max-seconds",
                )
                highlight = gr.Checkbox(
                    value=True,
                    label="Light the keys that sound",
                    info=KEYS_INFO_NOTES if note_khp else KEYS_INFO_AUDIO,
                    elem_id="highlight-keys",
                )
                button = gr.Button("Generate", variant="primary", size="lg", elem_id="generate")
            with gr.Column(scale=6, min_width=360):
                video = gr.Video(
                    label="Performance (with your audio)", elem_id="result-video", autoplay=False
                )
                summary = gr.Markdown(elem_id="summary")
                plot = gr.Image(
                    label="Sync: hand motion against the audio's onset strength",
                    type="filepath",
                    interactive=False,
                    elem_id="sync-plot",
                )
                keypoints = gr.File(label="Keypoints (JSON, normalised x/y per frame)", elem_id="keypoints")
                notes_file = gr.File(
                    label="The notes the performer plays (MIDI)", elem_id="notes-file", interactive=False
                )
        gr.Markdown(
            "Examples: public-domain string-quartet movements reduced to two hands and rendered by the "
            "project's own virtual pianist and SoundFont; none is in a training split. Nothing you upload is "
            "kept: results are deleted after an hour.",
            elem_id="footer-note",
        )

        def pick(evt: gr.SelectData):
            return performers[evt.index].key

        def show(key: str):
            keys = [p.key for p in performers]
            return gr.Gallery(selected_index=keys.index(key) if key in keys else None)

        def keys_possible(audio_value, midi_value):
            """The checkbox is on when notes will be known (a MIDI file, or a KHP that transcribes);
            with audio and an audio-only KHP it cannot light anything, and says so."""
            if audio_value and not midi_value and not note_khp:
                return gr.Checkbox(value=False, interactive=False, info=KEYS_INFO_AUDIO)
            return gr.Checkbox(value=True, interactive=True)

        private = dict(queue=False, api_visibility="private")
        gallery.select(pick, None, performer, **private)
        performer.input(show, performer, gallery, **private)
        # One input at a time: a new upload (or recording) replaces the other kind.
        midi.upload(lambda: None, None, audio, **private)
        audio.upload(lambda: None, None, midi, **private)
        audio.stop_recording(lambda: None, None, midi, **private)
        audio.change(keys_possible, [audio, midi], highlight, **private)
        midi.change(keys_possible, [audio, midi], highlight, **private)
        outputs = [video, keypoints, plot, summary, notes_file]
        button.click(lambda: (None, None, None, "", None), None, outputs, **private).then(
            generate,
            [audio, midi, performer, video_size, layout, longest, highlight],
            outputs,
            api_name="generate",
            api_description=(
                "Audio file or MIDI file (exactly one) -> performance video (mp4 with the sound), "
                "keypoints JSON, sync plot, summary, the notes played (MIDI, or None when not known)."
            ),
            concurrency_limit=int(_env_number("APVG_SPACE_CONCURRENCY", 1)),
        )
    demo.queue(max_size=int(_env_number("APVG_SPACE_MAX_QUEUE", 32)), default_concurrency_limit=1)
    return demo


KEYS_INFO_AUDIO = "With a MIDI file (this model hears audio but does not transcribe it)."
KEYS_INFO_NOTES = "From the MIDI file's notes, or the notes this model hears in the audio."

CSS = """
#intro h1 { margin-bottom: 0.2em; }
#performers .thumbnail-item { border-radius: 10px; }
#summary { min-height: 1.5em; }
#footer-note { opacity: 0.75; font-size: 0.9em; }
"""


def launch(demo: gr.Blocks, **kwargs):
    """Launch with the Space's settings: loopback unless GRADIO_SERVER_NAME says otherwise, no share link,
    no server-side rendering (no Node), no MCP."""
    options = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        share=False,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        footer_links=["api"],
        theme=getattr(demo, "theme_for_launch", None),
        css=getattr(demo, "css_for_launch", None),
    )
    return demo.launch(**(options | kwargs))


if __name__ == "__main__":
    launch(create_demo())
