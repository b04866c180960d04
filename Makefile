# apvg-hf — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
# Where torch comes from. Empty: pip's configured index (on the project's machines it serves the CPU
# wheel). Elsewhere, keep GBs of CUDA packages out: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: install test test-slow quality format demo dataset-small dataset-medium train-khp train-khp-finetune evaluate-khp clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## test: the default test suite (fast; what CI runs)
test: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" -q

## test-slow: the slow tests only (bigger datasets, multi-process runs)
test-slow: $(VENV)/.installed
	$(PY) -m pytest -m slow -q

quality: $(VENV)/.installed
	$(PY) -m ruff check src scripts tests
	$(PY) -m ruff format --check src scripts tests

format: $(VENV)/.installed
	$(PY) -m ruff check --fix src scripts tests
	$(PY) -m ruff format src scripts tests

## demo: the main job (for now: a virtual-pianist performance with skeleton overlay -> outputs/demo.mp4)
demo: $(VENV)/.installed
	$(PY) scripts/preview_sample.py --synthesize bach/bwv846 --seconds 20 --output outputs/demo.mp4

dataset-small: $(VENV)/.installed
	$(PY) scripts/build_dataset.py --preset small --output data/virtual_pianist_small

dataset-medium: $(VENV)/.installed
	$(PY) scripts/build_dataset.py --preset medium --output data/virtual_pianist_medium

## train-khp: the KHP recipe of the default pipeline (resumes if a checkpoint is there)
KHP_RECIPE := pipelines/apvg-virtual-pianist/khp.yaml
train-khp: $(VENV)/.installed
	$(VENV)/bin/accelerate launch --num_processes 1 --mixed_precision no --dynamo_backend no \
		scripts/train_khp.py --config $(KHP_RECIPE) $(if $(wildcard outputs/khp-virtual-pianist/checkpoints),--resume)

## train-khp-finetune: the second stage, on two performances of the medium pieces (builds the second one first)
data/virtual_pianist_medium_seed1: | $(VENV)/.installed
	$(PY) scripts/build_dataset.py --preset medium --seed 1 --output $@
train-khp-finetune: $(VENV)/.installed data/virtual_pianist_medium_seed1
	$(VENV)/bin/accelerate launch --num_processes 1 --mixed_precision no --dynamo_backend no \
		scripts/train_khp.py --config pipelines/apvg-virtual-pianist/khp_finetune.yaml \
		$(if $(wildcard outputs/khp-virtual-pianist-finetune/checkpoints),--resume)

evaluate-khp: $(VENV)/.installed
	$(PY) scripts/evaluate_khp.py --model pipelines/apvg-virtual-pianist/khp --dataset data/virtual_pianist_medium \
		--train-dataset data/virtual_pianist_medium data/virtual_pianist_medium_seed1 \
		--split test --output pipelines/apvg-virtual-pianist/khp_results.json

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
