"""Personalise a pipeline to one performer, end to end, resuming wherever it stopped:
fetch (or find) the video -> `apvg preprocess` -> fine-tune the STU -> fine-tune the KHP -> copy the
weights into the recipe folder -> fit hand anchoring (optional) -> assemble a runnable pipeline folder.

A recipe folder (`pipelines/<performer>/`) holds `personalise.yaml`:

    video: data/real/pianist.avi          # the performance video (with sound)
    fetch: fourms-pianist                 # optional: a named source that downloads it (data/sources.py)
    dataset: data/fourms_pianist          # where `apvg preprocess` writes
    preprocess: {performer: fourms-pianist, keyboard_corners: [...], ...}   # PreprocessConfig fields
    stu: stu.yaml                         # the fine-tuning recipes (train_stu.py / train_khp.py);
                                          # a list runs them in order (the last one's model is kept)
    khp: khp.yaml
    hand_anchor: {}                       # optional: fit hand anchoring on the training part (settings
                                          # override apvg_hf.hand_anchor.DEFAULTS), stored in khp/config.json
    reference: {clip: 3, frame: 0}        # a training frame: who plays, where, seen how
    pipeline: outputs/fourms-pianist-pipeline

Every stage is skipped when its output exists; a training run with checkpoints resumes from the
newest. The fine-tuned weights land in `<recipe>/stu` and `<recipe>/khp` (small, committed); the
assembled pipeline (which holds a frame of the footage as its reference) goes to `pipeline`, outside git.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .checkpoints import latest_checkpoint
from .config import load_config


def read_recipe(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / "personalise.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no personalise.yaml (see apvg_hf.training.personalise)")
    recipe = yaml.safe_load(path.read_text())
    missing = {"video", "dataset", "stu", "khp", "pipeline"} - set(recipe)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}")
    return recipe


def ensure_video(recipe: dict) -> Path:
    video = Path(recipe["video"])
    if video.is_file():
        return video
    if recipe.get("fetch") == "fourms-pianist":
        from ..data.sources import fetch_fourms_pianist

        return fetch_fourms_pianist(video.parent)
    raise FileNotFoundError(f"no video at {video} (and no `fetch` source named in the recipe)")


def ensure_dataset(recipe: dict, video: Path) -> Path:
    from ..data.real import PreprocessConfig, preprocess_videos

    dataset = Path(recipe["dataset"])
    if not (dataset / "dataset_dict.json").exists():
        preprocess_videos([video], dataset, PreprocessConfig(**recipe.get("preprocess", {})))
    return dataset


def ensure_trained(folder: Path, kind: str, recipe: dict, train_stage: bool) -> Path:
    """`<folder>/<kind>`: the committed weights, or (train_stage) a fresh/resumed fine-tune copied there."""
    target = folder / kind
    if not train_stage:
        if not any(target.glob("*.safetensors")):
            raise FileNotFoundError(f"{target} holds no weights: run without --no-train first")
        return target
    if kind == "stu":
        from .stu import TrainSTUConfig as Config
        from .stu import train
    else:
        from .khp import TrainKHPConfig as Config
        from .khp import train
    stages = recipe[kind] if isinstance(recipe[kind], list) else [recipe[kind]]
    for stage in stages:  # e.g. a fine-tune, then a continuation that starts from its output
        cfg = load_config(Config, folder / stage, [])
        out = Path(cfg.output_dir)
        model = out / "model"
        if not model.exists():
            resume = "latest" if latest_checkpoint(out) is not None else None
            if train(cfg, resume=resume) is None:
                raise SystemExit(f"{kind} training stopped early; run the same command again to go on")
    target.mkdir(exist_ok=True)
    for f in model.iterdir():
        if f.suffix in (".json", ".safetensors"):
            shutil.copy2(f, target / f.name)
    return target


def ensure_hand_anchor(recipe: dict, khp: Path, dataset: Path) -> None:
    """With `hand_anchor` in the recipe (and training run here): fit it on the training split and
    write it into `khp`'s config (`apvg_hf.training.khp.fit_hand_anchor`)."""
    if recipe.get("hand_anchor") is None:
        return
    from ..data.clips import load_clips
    from ..feature_extraction_apvg import APVGFeatureExtractor
    from ..modeling_khp import KHPModel
    from .khp import fit_hand_anchor

    model = KHPModel.from_pretrained(khp)
    clips = load_clips(dataset, "train", APVGFeatureExtractor.from_pretrained(khp), model.config.coarse_size)
    fitted = fit_hand_anchor(model, clips, **recipe["hand_anchor"])
    model.config.save_pretrained(khp)
    print(f"hand anchoring fitted on {len(clips)} training clips: {fitted}", file=sys.stderr)


def personalise(folder: str | Path, train_stage: bool = True) -> Path:
    """Run the whole recipe in `folder` (see the module doc); returns the assembled pipeline folder."""
    folder = Path(folder)
    recipe = read_recipe(folder)
    video = ensure_video(recipe)
    dataset = ensure_dataset(recipe, video)
    stu = ensure_trained(folder, "stu", recipe, train_stage)
    khp = ensure_trained(folder, "khp", recipe, train_stage)
    if train_stage:
        ensure_hand_anchor(recipe, khp, dataset)
    ref = recipe.get("reference", {})
    out = Path(recipe["pipeline"])
    script = Path(__file__).resolve().parents[3] / "scripts" / "assemble_pipeline.py"
    cmd = [sys.executable, str(script), "--khp", str(khp), "--stu", str(stu), "--dataset", str(dataset),
           "--index", str(ref.get("clip", 0)), "--frame", str(ref.get("frame", 0)), "--output", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return out
