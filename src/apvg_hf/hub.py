"""Hub push/pull: model cards and uploads for the pipeline, its components and the dataset.

Pulling needs nothing here: `APVGPipeline.from_pretrained("owner/name")`, `KHPModel.from_pretrained(
"owner/name", subfolder="khp")`, `pipeline("audio-to-performance-video", model="owner/name")`.

This module sits below the models (it imports none of them): each object says what it is through
`card_kind` ("pipeline", "khp" or "stu") and `card_summary`.

>>> from apvg_hf import STUModel
>>> card = model_card(STUModel(block_channels=(8, 8, 8), graph_hidden=4, resolution=32), "me/stu")
>>> card.data.library_name, card.data.pipeline_tag
('apvg-hf', 'other')
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData

TAGS = ["apvg-hf", "audio-to-video", "audio-to-performance-video", "music", "pose", "video-generation"]
PAPER = "Zhu et al., *Let's Play Music: Audio-driven Performance Video Generation*, ICPR 2020"


def _source_dir(obj) -> Path | None:
    name = getattr(obj, "name_or_path", None) or getattr(getattr(obj, "config", None), "_name_or_path", None)
    return Path(name) if name and Path(name).is_dir() else None


def results_tables(folder: str | os.PathLike | None) -> str:
    """The evaluation tables (`*_results.md`) next to a model (its folder or the folder above)."""
    if folder is None:
        return ""
    folder = Path(folder)
    found = sorted(folder.glob("*_results.md")) or sorted(folder.parent.glob("*_results.md"))
    return "\n\n".join(p.read_text().strip() for p in found)


def model_card(obj, repo_id: str, results: str | None = None, datasets: list[str] | None = None) -> ModelCard:
    """A model card for an `APVGPipeline`, a `KHPModel` or an `STUModel`: metadata (library_name,
    pipeline_tag, tags, datasets) and a body with usage, the components and the evaluation tables."""
    kind = getattr(obj, "card_kind", None)
    results = results_tables(_source_dir(obj)) if results is None else results
    if kind == "pipeline":
        usage = (
            "import apvg_hf\nfrom transformers import pipeline\n\n"
            f'pipeline("audio-to-performance-video", model="{repo_id}")("etude.wav", output_path="etude.mp4")\n\n'
            f'# or: apvg_hf.APVGPipeline.from_pretrained("{repo_id}")("etude.wav", output_path="etude.mp4")'
        )
        params = {n: sum(p.numel() for p in getattr(obj, n).parameters()) for n in ("khp", "stu")}
        what = (
            "Audio in, a video of the performer playing it out: **KHP** (stage 1, a transformer: audio -> body "
            "and hand keypoints and a coarse video) then **STU** (stage 2, a Structured Temporal UNet: "
            f"heatmaps + coarse frames -> {obj.stu.config.resolution}x{obj.stu.config.resolution} frames)."
        )
        extra = "\n\n| component | parameters |\n|---|---|\n" + "\n".join(
            f"| {k} | {v:,} |" for k, v in params.items()
        )
    elif kind in ("khp", "stu"):
        cls = type(obj).__name__
        what = obj.card_summary
        usage = f'import apvg_hf\nfrom apvg_hf import {cls}\n\nmodel = {cls}.from_pretrained("{repo_id}")'
        extra = f"\n\nParameters: {sum(p.numel() for p in obj.parameters()):,}."
    else:
        raise TypeError(f"no model card for {type(obj).__name__}")
    data = ModelCardData(
        library_name="apvg-hf",
        pipeline_tag="other",
        tags=TAGS + ([] if kind == "pipeline" else [kind]),
        datasets=datasets or ["apvg-hf/virtual-pianist"],
        license="apache-2.0",
    )
    body = (
        f"# {repo_id.split('/')[-1]}\n\n{what}{extra}\n\nAfter {PAPER}; made with "
        "[apvg-hf](https://github.com/apvg-hf/apvg-hf).\n\n## Usage\n\n```python\n" + usage + "\n```\n\n"
        "## Evaluation\n\n" + (results or "No evaluation results were saved with this model.") + "\n"
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    repo_type: str = "model",
    commit_message: str = "Upload with apvg-hf",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
) -> str:
    """Create the repo (if needed) and upload a folder in one commit (LFS for the weights); returns the
    commit URL. A failed upload leaves the repo at its previous commit: run it again."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
        ignore_patterns=[".*", "**/.*", "__pycache__/**"],
    )
    return str(info.commit_url if hasattr(info, "commit_url") else info)


def push_object(obj, repo_id: str, card: ModelCard, **kwargs) -> str:
    """`save_pretrained` into a temporary folder, add the model card, `push_folder`."""
    with tempfile.TemporaryDirectory() as tmp:
        obj.save_pretrained(tmp)
        extra = kwargs.pop("feature_extractor", None)
        if extra is not None:
            extra.save_pretrained(tmp)
        card.save(Path(tmp) / "README.md")
        return push_folder(tmp, repo_id, **kwargs)


def push_pipeline_folder(folder: str | os.PathLike, repo_id: str, load, **kwargs) -> str:
    """Upload a saved pipeline folder as it is (e.g. `pipelines/apvg-virtual-pianist`), after checking
    that `load(folder)` loads it (e.g. `APVGPipeline.from_pretrained`: a folder that does not load is
    not uploaded); its README.md is the model card (one is generated if it has none)."""
    folder = Path(folder)
    pipe = load(folder)
    if not (folder / "README.md").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            pipe.save_pretrained(tmp)
            model_card(pipe, repo_id, results=results_tables(folder)).save(Path(tmp) / "README.md")
            return push_folder(tmp, repo_id, **kwargs)
    return push_folder(folder, repo_id, **kwargs)


def push_dataset(
    dataset_dir: str | os.PathLike, repo_id: str, private: bool | None = None, token=None
) -> str:
    """A dataset written by `scripts/build_dataset.py` (`DatasetDict.save_to_disk`) -> the Hub (parquet
    shards), with its build info in the dataset card. Returns the repo URL."""
    import json

    import datasets
    from huggingface_hub import DatasetCard, DatasetCardData

    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "dataset_dict.json").is_file():
        raise ValueError(f"{dataset_dir} is not a saved DatasetDict (no dataset_dict.json)")
    dsd = datasets.load_from_disk(str(dataset_dir))
    dsd.push_to_hub(repo_id, private=private, token=token)
    info_path = dataset_dir / "build_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    splits = {k: len(v) for k, v in dsd.items()}
    card = DatasetCard(
        f"---\n{DatasetCardData(license='other', tags=['apvg-hf', 'music', 'pose', 'video']).to_yaml()}\n---\n\n"
        f"# {repo_id.split('/')[-1]}\n\nVirtual-pianist clips (audio, video, body + hand keypoints) made by "
        "[apvg-hf](https://github.com/apvg-hf/apvg-hf) `scripts/build_dataset.py`, split by piece.\n\n"
        + "\n".join(f"- {k}: {v} clips" for k, v in splits.items())
        + (
            "\n\n```json\n"
            + json.dumps({k: v for k, v in info.items() if k != "pieces"}, indent=1)
            + "\n```\n"
        )
    )
    card.push_to_hub(repo_id, repo_type="dataset", token=token)
    return (
        f"{datasets.config.HF_ENDPOINT if hasattr(datasets.config, 'HF_ENDPOINT') else ''}/datasets/{repo_id}"
    )
