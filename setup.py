"""Packaging glue: the wheel carries the embedded default pipeline as package data.

The weights live once, in `pipelines/apvg-virtual-pianist/` (where training writes them and where the Hub
push reads them); `build_py` copies the files a pipeline needs to load (component folders, model_index.json,
config.json, the model card) into `apvg_hf/default_pipeline/` of the build, so an installed wheel runs
`pipeline("audio-to-performance-video")` offline. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEFAULT = Path(__file__).parent / "pipelines" / "apvg-virtual-pianist"
TOP_FILES = ("model_index.json", "config.json", "README.md")
COMPONENT_SUFFIXES = (".json", ".safetensors")


class BuildPyWithDefaultPipeline(build_py):
    def run(self):
        super().run()
        if not (DEFAULT / "model_index.json").is_file():  # building from an sdist without it
            return
        target = Path(self.build_lib) / "apvg_hf" / "default_pipeline"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in TOP_FILES:
            shutil.copy2(DEFAULT / name, target / name)
        for folder in sorted(p for p in DEFAULT.iterdir() if p.is_dir()):
            for f in sorted(folder.iterdir()):
                if f.suffix in COMPONENT_SUFFIXES:
                    (target / folder.name).mkdir(exist_ok=True)
                    shutil.copy2(f, target / folder.name / f.name)


setup(cmdclass={"build_py": BuildPyWithDefaultPipeline})
