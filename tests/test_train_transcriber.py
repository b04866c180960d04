"""The transcriber trainer (`apvg_hf.training.transcriber`, behind scripts/train_transcriber.py): windows
rendered from the corpus, held-out pieces never heard, only the transcriber learns, exact resume,
threshold choice, clear errors."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from apvg_hf import APVGFeatureExtractor, KHPConfig, KHPModel
from apvg_hf.data.music import fold_pitch, load_piece_notes
from apvg_hf.data.virtual_pianist import held_out_pieces, piece_split, training_pieces
from apvg_hf.modeling_khp import transcription_loss
from apvg_hf.piano_roll import notes_to_roll
from apvg_hf.training import transcriber as tt
from conftest import launch_two_processes, tiny_khp_config

PIECES = {"keyboard": ["mozart/k545/movement1_exposition"], "chorale": ["bach/bwv2.6"]}
EXTRACTOR = dict(feature_size=64, n_fft=512, floor_db=70)


def windows(**kw) -> tt.RenderedWindows:
    args = dict(keyboard_share=0.5, transpose=12, context_s=0.5, augment=True, seed=0)
    return tt.RenderedWindows(PIECES, APVGFeatureExtractor(**EXTRACTOR), ["timgm6mb"], 30, **(args | kw))


def test_windows_are_a_function_of_the_index_and_stay_on_the_keyboard():
    w = windows()
    f, roll = w[3]
    assert f.shape == (30, 64) and roll.shape == (30, 88, 3)
    f2, roll2 = w[3]
    assert torch.equal(f, f2) and torch.equal(roll, roll2)
    f3, _ = w[4]
    assert not torch.equal(f, f3)
    assert not torch.equal(f, windows(rank=1)[3][0])  # each process draws its own windows


def test_untransposed_windows_play_the_pieces_notes_and_transposition_reaches_high_keys():
    pitches = {fold_pitch(n.pitch) for p in sum(PIECES.values(), []) for n in load_piece_notes(p)}
    w = windows(transpose=0, augment=False)
    heard = set()
    for i in range(6):
        notes = w.performance(np.random.default_rng([0, 0, i]))
        heard |= {n["pitch"] for n in notes}
    assert heard and heard <= pitches
    w = windows(transpose=12)
    highest = max(n["pitch"] for i in range(40) for n in w.performance(np.random.default_rng([0, 0, i])))
    assert max(pitches) < highest <= 108


def test_the_rendered_audio_has_the_notes_of_the_roll():
    """Windows that begin before their piece: silent feature rows until the roll's first note, loud
    from it on (the audio and the labels are aligned to a frame)."""
    w = windows(augment=False)
    found = 0
    for i in range(40):
        f, roll = w[i]
        sounding = np.flatnonzero(roll[..., 1].sum(-1).numpy() > 0)
        if len(sounding) and sounding[0] >= 3:
            first = sounding[0]
            assert f[first : first + 2].mean() > f[: first - 1].mean() + 0.3
            assert torch.allclose(f[: first - 1], f[0].expand_as(f[: first - 1]))  # the floor: silence
            found += 1
    assert found, "no window began before its piece"


def test_held_out_pieces_are_never_heard(tiny_dataset, tmp_path):
    held = held_out_pieces([str(tiny_dataset[0])])
    assert held  # the tiny preset has validation and test pieces
    pieces = training_pieces(held, exclude=["bach/bwv2.6"])
    chosen = pieces["keyboard"] + pieces["chorale"]
    assert chosen and not set(chosen) & held and "bach/bwv2.6" not in chosen
    assert all(piece_split(p) == "train" for p in chosen)
    with pytest.raises(FileNotFoundError, match="build_info.json"):
        held_out_pieces([str(tmp_path)])


def test_transcription_loss_ignores_padding_and_vanishes_for_sure_right_answers():
    roll = torch.from_numpy(
        notes_to_roll([{"pitch": 60, "onset": 0.1, "offset": 0.5, "velocity": 127}], 20, 30)
    )[None]
    sure = (roll * 2 - 1) * 30  # logits of the right answer, very sure (velocity 1: sigmoid(30))
    assert transcription_loss(sure, roll) < 1e-6
    noisy = torch.randn(1, 20, 88, 3)
    mask = torch.ones(1, 20)
    mask[:, 15:] = 0
    changed = noisy.clone()
    changed[:, 15:] = 5.0
    assert torch.isclose(transcription_loss(noisy, roll, mask), transcription_loss(changed, roll, mask))


def test_choose_thresholds_maximises_onset_f1():
    fps, T = 30.0, 60
    notes = [
        {"pitch": 60 + i, "onset": 0.2 + 0.5 * i, "offset": 0.4 + 0.5 * i, "velocity": 80} for i in range(3)
    ]
    clip = SimpleNamespace(num_frames=T, meta={"fps": fps, "notes": notes})
    probs = notes_to_roll(notes, T, fps) * 0.45  # the true notes peak at 0.45 ...
    probs[40, 70, 0] = 0.3  # ... a false one at 0.3
    onset, frame, m = tt.choose_thresholds([probs], [clip], onset=(0.2, 0.4, 0.5), frame=(0.3,))
    assert onset == 0.4 and m["onset"]["f1"] == 1.0


def tiny_notes_khp(path):
    torch.manual_seed(0)
    config = tiny_khp_config(
        architecture="notes", transcriber_layers=1, transcriber_channels=4, key_context=3, feature_size=64
    )
    KHPModel(config).save_pretrained(path)
    APVGFeatureExtractor(**EXTRACTOR).save_pretrained(path)
    return path


TINY_RUN = [
    "--batch_size=2",
    "--window_frames=30",
    "--context_s=0.3",
    "--num_workers=0",
    "--log_every=1",
    "--warmup_steps=1",
    "--eval_clips=1",
    "--learning_rate=1e-2",
]


LISTED = "[" + ",".join(sum(PIECES.values(), [])) + "]"


def run(init, dataset, out, *extra):
    args = [f"--init_from={init}", f"--held_out_from={dataset}", f"--output_dir={out}", f"--pieces={LISTED}"]
    return tt.main([*args, "--soundfonts=[timgm6mb]", *TINY_RUN, *extra])


def test_only_the_transcriber_learns_and_resume_is_exact(tiny_dataset, tmp_path):
    init = tiny_notes_khp(tmp_path / "init")
    common = ["--steps=4", "--eval_every=4", "--checkpoint_every=0"]
    straight = run(init, tiny_dataset[0], tmp_path / "a", *common)
    assert run(init, tiny_dataset[0], tmp_path / "b", *common, "--stop_after=2") is None
    resumed = run(init, tiny_dataset[0], tmp_path / "b", *common, "--resume")
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    before = load_file(init / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert torch.equal(a[k], before[k]) != k.startswith("transcriber."), k  # only the transcriber moved
    config = KHPConfig.from_pretrained(straight)
    assert config.onset_threshold in (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)  # chosen on validation
    assert (straight / "preprocessor_config.json").exists() and (straight / "train_config.yaml").exists()


def test_clear_errors(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="init_from"):
        tt.main([f"--output_dir={tmp_path}"])
    audio = tmp_path / "audio"
    KHPModel(tiny_khp_config(feature_size=64)).save_pretrained(audio)
    APVGFeatureExtractor(**EXTRACTOR).save_pretrained(audio)
    with pytest.raises(ValueError, match="no transcriber"):
        run(audio, tiny_dataset[0], tmp_path / "x", "--steps=1")
    with pytest.raises(ValueError, match="no corpus pieces"):
        run(
            tiny_notes_khp(tmp_path / "m"),
            tiny_dataset[0],
            tmp_path / "y",
            "--steps=1",
            f"--exclude_pieces={LISTED}",
        )


@pytest.mark.slow
def test_two_real_processes(tiny_dataset, tmp_path):
    init = tiny_notes_khp(tmp_path / "init")
    launch_two_processes(
        "train_transcriber",
        f"--init_from={init}",
        f"--held_out_from={tiny_dataset[0]}",
        f"--output_dir={tmp_path / 'out'}",
        f"--pieces={LISTED}",
        "--soundfonts=[timgm6mb]",
        *TINY_RUN,
        "--steps=2",
        "--eval_every=2",
        "--checkpoint_every=2",
    )
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()


def test_evaluate_transcription_script_compares_and_counts_octaves(tiny_dataset, tmp_path):
    """scripts/evaluate_transcription.py on tiny models: a row per transcriber and audio set, recall by
    octave summing to the notes of the split, the Markdown and the plot."""
    from conftest import load_script

    a, b = tiny_notes_khp(tmp_path / "a"), tiny_notes_khp(tmp_path / "b")
    out = tmp_path / "tr.json"
    result = load_script("evaluate_transcription").main(
        [f"--model={a}", f"--dataset={tiny_dataset[0]}", f"--output={out}", "--no-basic-pitch"]
        + ["--heldout-soundfont=timgm6mb", "--compare", "earlier", str(b)]
    )
    rows = result["transcription"]
    assert {k.split(" | ")[0] for k in rows} == {"KHP transcriber", "earlier"}
    assert len(rows) == 5  # 2 transcribers x 2 audio sets + the noisy audio
    for r in rows.values():
        assert sum(c["reference"] for c in r["recall_by_octave"].values()) == r["onset"]["reference"]
    assert "Onset recall by octave" in out.with_suffix(".md").read_text()
    assert (tmp_path / "tr_octaves.png").stat().st_size > 1000
