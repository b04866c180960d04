"""Training configs (draccus): typed values, nested `model` / `feature_extractor` / `loss` keys checked
against their targets, clear errors, the shipped recipes, `train_config.yaml` round trips; the command
line of the trainers (`--config`, `--resume`); GracefulStop. All fast: nothing is trained."""

import dataclasses
import inspect
import os
import signal
from pathlib import Path

import pytest
import yaml

from apvg_hf import APVGFeatureExtractor, KHPConfig, STUModel
from apvg_hf.training.config import ConfigError, dump_config, load_config, parse_config, save_config
from apvg_hf.training.khp import FeatureExtractorArgs, KHPConfigArgs, TrainKHPConfig
from apvg_hf.training.loop import GracefulStop, hparams, parse_args
from apvg_hf.training.stu import STUModelArgs, TrainSTUConfig
from apvg_hf.training.transcriber import TrainTranscriberConfig

RECIPES = Path(__file__).parents[1] / "pipelines" / "apvg-virtual-pianist"


def test_values_are_typed():
    cfg = parse_config(
        TrainKHPConfig,
        ["--steps=10", "--learning_rate=3e-4", "--cpu=no", "--mixed_precision=no", "--limit_clips=null"],
    )
    assert cfg.steps == 10 and cfg.learning_rate == 3e-4 and isinstance(cfg.learning_rate, float)
    assert cfg.cpu is False and cfg.mixed_precision == "no" and cfg.limit_clips is None
    assert parse_config(TrainKHPConfig, ["--cpu=true", "--mixed_precision", "bf16"]).cpu is True
    assert parse_config(TrainKHPConfig, ["--dataset=[a, b/c]"]).dataset == ["a", "b/c"]
    assert parse_config(TrainKHPConfig, ["--dataset=data/x"]).dataset == "data/x"


@pytest.mark.parametrize(
    "arg, match",
    [
        ("--steps=abc", r"`steps`: Couldn't parse 'abc' into an int"),
        ("--steps=2.5", "steps"),
        ("--cpu=maybe", "into a bool"),
        ("--mixed_precision=fp8", "fp8"),
        ("--model.hidden_size=wide", "model.hidden_size"),
    ],
)
def test_values_of_the_wrong_type_are_errors(arg, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(TrainKHPConfig, [arg])


def test_unknown_keys_are_errors_that_name_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'stepz'; known keys: .*\bsteps\b"):
        parse_config(TrainKHPConfig, ["--stepz=3"])
    with pytest.raises(ConfigError, match=r"'model.hiden_size'; the keys of model are .*\bhidden_size\b"):
        parse_config(TrainKHPConfig, ["--model.hiden_size=128"])
    with pytest.raises(
        ConfigError, match=r"'loss.ssmi'; the keys of loss are adversarial, hands, l1, ssim, temporal"
    ):
        parse_config(TrainSTUConfig, ["--loss.ssmi=0"])
    with pytest.raises(ConfigError, match="steps takes a value, not sub-keys"):
        parse_config(TrainKHPConfig, ["--steps.max=3"])


def test_unknown_keys_in_a_yaml_file_are_errors(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("steps: 5\nmodel:\n  hidden_size: 64\n  num_layer: 2\n")
    with pytest.raises(ConfigError, match=r"'model.num_layer'; the keys of model are .*\bnum_layers\b"):
        parse_config(TrainKHPConfig, [], path)
    path.write_text("steps: 5\nbatchsize: 2\n")
    with pytest.raises(ConfigError, match="unknown config key 'batchsize'"):
        parse_config(TrainKHPConfig, [], path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_config(TrainKHPConfig, [], tmp_path / "missing.yaml")


def test_file_then_overrides(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("steps: 5\nmixed_precision: no\nmodel:\n  hidden_size: 64\n  num_heads: 2\n")
    cfg = parse_config(TrainKHPConfig, ["--model.hidden_size=32", "--batch_size=3"], path)
    assert (cfg.steps, cfg.batch_size, cfg.mixed_precision) == (5, 3, "no")  # unquoted YAML `no`
    assert (cfg.model.hidden_size, cfg.model.num_heads, cfg.model.num_layers) == (32, 2, 4)


@pytest.mark.parametrize(
    "args_class, target",
    [(KHPConfigArgs, KHPConfig), (FeatureExtractorArgs, APVGFeatureExtractor), (STUModelArgs, STUModel)],
)
def test_model_sections_are_the_keyword_arguments_of_their_class(args_class, target):
    params = {
        p.name: p.default
        for p in list(inspect.signature(target.__init__).parameters.values())[1:]
        if p.kind is p.POSITIONAL_OR_KEYWORD
    }
    defaults = dataclasses.asdict(args_class())
    assert defaults == params
    target(**defaults)  # the defaults build the class


def test_model_section_builds_the_model_config():
    cfg = parse_config(TrainKHPConfig, ["--model.hidden_size=64", "--model.num_heads=2", "--model.dropout=0"])
    config = KHPConfig(**dataclasses.asdict(cfg.model))
    assert (config.hidden_size, config.num_heads, config.dropout) == (64, 2, 0.0)
    cfg = parse_config(TrainSTUConfig, ["--model.block_channels=[8,16,16]", "--model.use_graph=false"])
    assert cfg.model.block_channels == (8, 16, 16) and cfg.model.use_graph is False


@pytest.mark.parametrize(
    "cls, name",
    [
        (TrainKHPConfig, "khp.yaml"),
        (TrainKHPConfig, "khp_finetune.yaml"),
        (TrainSTUConfig, "stu.yaml"),
        (TrainSTUConfig, "stu_256.yaml"),
        (TrainKHPConfig, "khp_contact.yaml"),
        (TrainTranscriberConfig, "khp_transcriber.yaml"),
        (TrainKHPConfig, "khp_motion.yaml"),
        (TrainKHPConfig, "khp/train_config.yaml"),  # the embedded KHP's last stage (the motion stage)
        (TrainSTUConfig, "stu/train_config.yaml"),
    ],
)
def test_shipped_recipes_load_as_written_and_round_trip(cls, name, tmp_path):
    cfg = load_config(cls, RECIPES / name)
    written = yaml.safe_load((RECIPES / name).read_text())
    for key, value in written.items():  # every key of the file lands in the config unchanged
        got = dataclasses.asdict(cfg)[key] if key != "mixed_precision" else cfg.mixed_precision
        if isinstance(value, dict):
            assert {k: got[k] for k in value} == {
                k: tuple(v) if isinstance(v, list) else v for k, v in value.items()
            }
        else:
            assert got == value, key
    save_config(cfg, tmp_path / "train_config.yaml")
    again = load_config(cls, tmp_path / "train_config.yaml")
    assert again == cfg and type(getattr(again, "model", None)) is type(getattr(cfg, "model", None))
    text = dump_config(cfg)
    first = "dataset:" if hasattr(cfg, "dataset") else "init_from:"
    assert text.index(first) < text.index("steps:")  # field order, not sorted


def test_makefile_ablations_parse():
    cfg = load_config(
        TrainSTUConfig,
        RECIPES / "stu.yaml",
        ["--output_dir=outputs/stu-pix2pix", "--model.use_graph=false", "--model.use_gru=false"]
        + ["--discriminator_frames=1", "--loss.ssim=0", "--loss.temporal=0"],
    )
    assert not cfg.model.use_graph and not cfg.model.use_gru and cfg.discriminator_frames == 1
    assert dataclasses.asdict(cfg.loss) == {
        "l1": 1.0,
        "ssim": 0.0,
        "temporal": 0.0,
        "adversarial": 0.02,
        "hands": 0.0,
    }
    assert cfg.model.resolution == 128  # the rest of the recipe's model section stays


def test_command_line_config_and_resume(tmp_path):
    recipe = RECIPES / "khp.yaml"
    cfg, args = parse_args(TrainKHPConfig, ["--config", str(recipe), "--steps=10", "--resume"], None)
    assert cfg.steps == 10 and cfg.model.hidden_size == 192 and args.resume == "latest"
    cfg, args = parse_args(
        TrainKHPConfig, [f"--config_path={recipe}", "--resume", "runs/x/step-000004"], None
    )
    assert cfg.dataset == "data/virtual_pianist_medium" and args.resume == "runs/x/step-000004"
    _, args = parse_args(TrainKHPConfig, ["--model.hidden_size=64"], None)
    assert args.resume is None and args.config is None


def test_command_line_errors_exit_with_the_message(capsys):
    for argv in (["--steps=abc"], ["--model.hiden_size=1"], ["--config", "missing.yaml"]):
        with pytest.raises(SystemExit) as e:
            parse_args(TrainKHPConfig, argv, None)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "`steps`: Couldn't parse 'abc'" in err and "'model.hiden_size'" in err and "missing.yaml" in err


def test_help_lists_the_fields(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(TrainSTUConfig, ["--help"], "Train an STU.")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert (
        "Train an STU." in out and "--resume" in out and "--loss.ssim" in out and "--model.use_graph" in out
    )


def test_hparams_are_flat():
    flat = hparams(dataclasses.asdict(parse_config(TrainSTUConfig)))
    assert flat["loss.ssim"] == 0.5 and flat["model.block_channels"] == "(32, 64, 128, 256)"
    assert flat["init_from"] == "None" and all(not isinstance(v, dict) for v in flat.values())


def test_graceful_stop_on_sigterm_and_sigint():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # launchers forward it again: still a graceful stop
        assert stop.flag
    assert signal.getsignal(signal.SIGTERM) is before
    with GracefulStop() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.flag
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C: stop at once
