# apvg-hf — every target installs what it needs into .venv first, from the committed lock.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
LOCK := requirements/lock.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
# Where the CPU build of torch (torch==2.13.0+cpu, pinned in the lock) comes from: a local wheel folder
# (this project's machines have /opt/wheels, also named by $$PIP_FIND_LINKS), or the PyTorch CPU index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(wildcard /opt/wheels))
TORCH_INDEX ?=
UV_SOURCES = $(if $(FIND_LINKS),--find-links $(FIND_LINKS)) \
	$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match)

.PHONY: install lock test test-slow test-latest test-wheel quality format demo demo-midi demo-real personalise-fourms evaluate-real preview-data benchmark dataset-small \
	dataset-medium train-khp train-khp-finetune train-khp-transcriber train-khp-motion evaluate-transcription evaluate-khp train-stu train-stu-continue train-stu-ablations train-stu-variants \
	evaluate-stu-variants benchmark-stu-variants train-stu-256 evaluate-stu-256 benchmark-stu-256 \
	evaluate-stu evaluate-stu-released benchmark-stu clean

# The environment: exactly the lock (uv installs it in seconds), then this package (editable, no deps).
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q uv==$(UV_VERSION)
	$(UV) pip install -q --python $(PY) $(UV_SOURCES) -r $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

install: $(VENV)/.installed

## lock: re-resolve every dependency (all extras) for this machine kind (Linux x86-64, Python 3.11, CPU torch)
## into requirements/lock.txt; commit the result after `make test` passes with it
lock: $(VENV)/.installed
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		-c constraints.txt $(UV_SOURCES) --annotation-style line --no-emit-find-links \
		--custom-compile-command "make lock" -o $(LOCK) --upgrade

## test: the default test suite (fast; what CI runs)
test: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" -q

## test-slow: the slow tests only (multi-process training, signals, benchmarks, the wheel, the browser)
test-slow: $(VENV)/.installed
	$(PY) -m pytest -m slow -q

## test-latest: the suite against the newest releases pyproject.toml allows (not the lock), in .venv-latest:
## drift is seen here before it reaches the lock
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q uv==$(UV_VERSION)
	.venv-latest/bin/uv pip install -q --python .venv-latest/bin/python $(UV_SOURCES) -c constraints.txt \
		--upgrade --reinstall-package apvg-hf -e ".[dev]"
	.venv-latest/bin/uv pip freeze --python .venv-latest/bin/python | grep -Ei '^(torch|transformers|diffusers|accelerate|datasets|huggingface.hub|gradio|numpy|av)=' || true
	.venv-latest/bin/python -m pytest -m "not slow" -q -p no:cacheprovider

## test-wheel: build the wheel, install it into a fresh venv outside the repository, run the README's three
## lines offline with the embedded default (also part of test-slow)
test-wheel: $(VENV)/.installed
	$(PY) -m pytest -m slow -q tests/test_wheel.py

quality: $(VENV)/.installed
	$(PY) -m ruff check src scripts tests
	$(PY) -m ruff format --check src scripts tests

format: $(VENV)/.installed
	$(PY) -m ruff check --fix src scripts tests
	$(PY) -m ruff format src scripts tests

## demo: the main job: the embedded default pipeline plays the bundled example (Mozart K. 458, in no
## training split) -> outputs/demo.mp4 (stage 1: coarse frame + skeleton | stage 2: the frames; with the audio)
DEMO_AUDIO := spaces_demo/examples/mozart_k458_movement1.ogg
DEMO_MIDI := spaces_demo/examples/mozart_k458_movement1.mid
demo: $(VENV)/.installed
	$(VENV)/bin/apvg generate $(DEMO_AUDIO) -o outputs/demo.mp4 --layout side-by-side --size 256 --highlight-keys

## demo-midi: the same excerpt from its MIDI file (the notes as written: no transcription) -> outputs/demo_midi.mp4
demo-midi: $(VENV)/.installed
	$(VENV)/bin/apvg generate $(DEMO_MIDI) -o outputs/demo_midi.mp4 --layout side-by-side --size 256 --highlight-keys

## demo-real: the fourMs pianist (personalised, committed weights) plays the Mozart example -> outputs/demo_real.mp4
##   (fetches the clip from PyPI and preprocesses it on first use: a few minutes)
demo-real: $(VENV)/.installed
	$(PY) scripts/personalise.py pipelines/fourms-pianist --no-train
	$(VENV)/bin/apvg generate $(DEMO_AUDIO) --model outputs/fourms-pianist-pipeline -o outputs/demo_real.mp4 --layout side-by-side --size 256

## personalise-fourms: the whole fourMs recipe: fetch, preprocess, fine-tune STU and KHP (resumes), assemble
personalise-fourms: $(VENV)/.installed
	$(PY) scripts/personalise.py pipelines/fourms-pianist

## evaluate-real: the personalised pipeline on the clip's held-out last 20 s, beside baselines
evaluate-real: $(VENV)/.installed
	$(PY) scripts/personalise.py pipelines/fourms-pianist --no-train
	$(PY) scripts/evaluate_real.py --dataset data/fourms_pianist --khp pipelines/fourms-pianist/khp \
		--stu pipelines/fourms-pianist/stu --output pipelines/fourms-pianist/results.json \
		--video outputs/fourms_side_by_side.mp4 --shareable-video docs/media/fourms_pose_vs_generated.mp4

## preview-data: a virtual-pianist performance with its ground-truth skeleton -> outputs/preview.mp4
preview-data: $(VENV)/.installed
	$(PY) scripts/preview_sample.py --synthesize bach/bwv846 --seconds 20 --output outputs/preview.mp4

## benchmark: the whole pipeline (speed by stage, real-time factor, memory for 10/60/300 s)
## benchmark: the embedded pipeline beside the previous release (its STU at 128), in one run
## (PRECISIONS="fp32 bf16" on CPUs with bf16 units)
PRECISIONS ?= fp32
MEMORY_SECONDS ?= 10 60 300
PREVIOUS := 0c86510
outputs/pipeline-$(PREVIOUS)/model_index.json:
	mkdir -p outputs/pipeline-$(PREVIOUS)
	git archive $(PREVIOUS) pipelines/apvg-virtual-pianist | tar -x -C outputs/pipeline-$(PREVIOUS) --strip-components=2
benchmark: $(VENV)/.installed outputs/pipeline-$(PREVIOUS)/model_index.json
	$(PY) scripts/benchmark.py --precisions $(PRECISIONS) --memory-seconds $(MEMORY_SECONDS) \
		--output pipelines/apvg-virtual-pianist/benchmark.json \
		--compare "previous release (128 STU, $(PREVIOUS))=outputs/pipeline-$(PREVIOUS)"

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

## train-khp-transcriber: the third stage of the embedded KHP: its transcriber alone, on audio rendered from
## every training-split piece of the corpus (transposed up to an octave); ~50 min (resumes)
KHP_STAGE2 := 2dbc2d1
outputs/khp-stage2/model.safetensors:
	mkdir -p outputs/khp-stage2
	for f in config.json model.safetensors preprocessor_config.json; do \
		git show $(KHP_STAGE2):pipelines/apvg-virtual-pianist/khp/$$f > outputs/khp-stage2/$$f; done
train-khp-transcriber: $(VENV)/.installed outputs/khp-stage2/model.safetensors
	$(PY) scripts/train_transcriber.py --config pipelines/apvg-virtual-pianist/khp_transcriber.yaml \
		$(if $(wildcard outputs/khp-transcriber/checkpoints),--resume)

## train-khp-motion: the fourth stage of the embedded KHP: its motion decoder on a motion pool (every
## training-split piece of the corpus performed, transposed up to an octave; built first, ~25 min) and the
## dataset, the transcriber frozen; ~35 min (resumes)
KHP_STAGE3 := b2d599d
outputs/khp-stage3/model.safetensors:
	mkdir -p outputs/khp-stage3
	for f in config.json model.safetensors preprocessor_config.json; do \
		git show $(KHP_STAGE3):pipelines/apvg-virtual-pianist/khp/$$f > outputs/khp-stage3/$$f; done
data/motion_pool/index.json: | $(VENV)/.installed
	$(PY) scripts/build_motion_pool.py --output data/motion_pool --held-out-from data/virtual_pianist_medium \
		--keyboard-variants 8 --chorale-variants 1 --max-seconds 40 --workers 2
train-khp-motion: $(VENV)/.installed outputs/khp-stage3/model.safetensors data/motion_pool/index.json
	$(VENV)/bin/accelerate launch --num_processes 1 --mixed_precision no --dynamo_backend no \
		scripts/train_khp.py --config pipelines/apvg-virtual-pianist/khp_motion.yaml \
		$(if $(wildcard outputs/khp-motion/checkpoints),--resume)

## evaluate-transcription: the KHP's transcriber beside basic-pitch on the test pieces (+ a held-out SoundFont, noise)
evaluate-transcription: $(VENV)/.installed outputs/khp-stage2/model.safetensors
	$(PY) scripts/evaluate_transcription.py --model pipelines/apvg-virtual-pianist/khp --dataset data/virtual_pianist_medium \
		--split test --output pipelines/apvg-virtual-pianist/transcription_results.json \
		--compare "KHP transcriber before its own stage (2dbc2d1)" outputs/khp-stage2

## evaluate-khp: the embedded KHP on the test pieces beside the KHP before the transcriber stage, the first
## release and the baselines (the LSTM is trained once and kept in outputs/lstm_medium)
outputs/khp-v1/model.safetensors:
	mkdir -p outputs/khp-v1
	for f in config.json model.safetensors preprocessor_config.json; do \
		git show 481f2ee:pipelines/apvg-virtual-pianist/khp/$$f > outputs/khp-v1/$$f; done
evaluate-khp: $(VENV)/.installed outputs/khp-stage2/model.safetensors outputs/khp-stage3/model.safetensors \
		outputs/khp-v1/model.safetensors
	$(PY) scripts/evaluate_khp.py --model pipelines/apvg-virtual-pianist/khp --dataset data/virtual_pianist_medium \
		--split test --output pipelines/apvg-virtual-pianist/khp_results.json \
		$(if $(wildcard outputs/lstm_medium),--lstm outputs/lstm_medium,--save-lstm outputs/lstm_medium) \
		--compare-khp "KHP v1 (audio, first release)" outputs/khp-v1 \
		--compare-khp "KHP before the transcriber stage (2dbc2d1)" outputs/khp-stage2 \
		--compare-khp "KHP before the motion stage (b2d599d)" outputs/khp-stage3

## train-stu: the STU recipe of the default pipeline at 128x128 (bf16 autocast; resumes if a checkpoint is there)
STU_RECIPE := pipelines/apvg-virtual-pianist/stu.yaml
stu_train = $(VENV)/bin/accelerate launch --num_processes 1 --mixed_precision $(or $(3),bf16) --dynamo_backend no \
	scripts/train_stu.py --config $(STU_RECIPE) --output_dir=outputs/$(1) --mixed_precision=$(or $(3),bf16) $(2) \
	$(if $(wildcard outputs/$(1)/checkpoints),--resume)
train-stu: $(VENV)/.installed
	$(call stu_train,stu-full)

## train-stu-continue: the released STU: the recipe's model trained on for 800 more steps (after train-stu)
train-stu-continue: $(VENV)/.installed
	$(call stu_train,stu-full-continued,--init_from=outputs/stu-full/model --steps=800 --learning_rate=3e-4 \
		--warmup_steps=20)

## train-stu-ablations: the same budget without the graph module, without the ConvGRU, and pix2pix-style
train-stu-ablations: $(VENV)/.installed
	$(call stu_train,stu-no-graph,--model.use_graph=false)
	$(call stu_train,stu-no-gru,--model.use_gru=false)
	$(call stu_train,stu-pix2pix,--model.use_graph=false --model.use_gru=false --discriminator_frames=1 \
		--loss.ssim=0 --loss.temporal=0)

## train-stu-variants: the recipe's 450 steps in fp32 (CPUs without bf16 units), the released architecture
## (concatenated skips, 3x3 stem), the light full-resolution path (pointwise stem, added skips) and the
## pointwise stem alone
STU_LIGHT := --model.stem_kernel_size=1 --model.skip_fusion=add
train-stu-variants: $(VENV)/.installed
	$(call stu_train,stu-concat-fp32,,no)
	$(call stu_train,stu-light,$(STU_LIGHT),no)
	$(call stu_train,stu-pw-only,--model.stem_kernel_size=1,no)
## evaluate-stu-variants: their same-budget table on the test pieces; benchmark-stu-variants: their speed
evaluate-stu-variants: $(VENV)/.installed
	$(PY) scripts/evaluate_stu.py --model outputs/stu-concat-fp32/model \
		--name "STU, released architecture (3x3 stem, concatenated skips)" \
		--compare "light (pointwise stem, added skips)=outputs/stu-light/model" \
			"pointwise stem alone (concatenated skips)=outputs/stu-pw-only/model" \
		--dataset data/virtual_pianist_medium --split test --max-frames 150 \
		--output pipelines/apvg-virtual-pianist/stu_variants_results.json
STU_VARIANTS := released=stem_kernel_size:3,skip_fusion:concat light=stem_kernel_size:1,skip_fusion:add \
	light-top1=stem_kernel_size:1,skip_fusion:add,top_convs:1 pw-stem=stem_kernel_size:1,skip_fusion:concat
benchmark-stu-variants: $(VENV)/.installed
	$(PY) scripts/benchmark.py stu --resolutions 128 256 --precisions fp32 --variants $(STU_VARIANTS) \
		--output pipelines/apvg-virtual-pianist/stu_variants_benchmark.json
	$(PY) scripts/benchmark.py train-stu --resolutions 128 256 --precisions fp32 --repeats 3 \
		--variants $(STU_VARIANTS) --output pipelines/apvg-virtual-pianist/stu_variants_train_benchmark.json

## train-stu-256: the released STU at 256x256: the 128 STU of the previous release (0c86510) upscaled with a
## pixel-shuffle path (the network stays at 128), trained on at 256 for 500 steps of a 600-step schedule in fp32
## (~80 min; resumes), the model exported from the step-500 checkpoint
outputs/stu-256-init/config.json: outputs/pipeline-$(PREVIOUS)/model_index.json | $(VENV)/.installed
	$(PY) scripts/upscale_stu.py --model outputs/pipeline-$(PREVIOUS)/stu --factor 2 --output outputs/stu-256-init
train-stu-256: $(VENV)/.installed outputs/stu-256-init/config.json
	$(VENV)/bin/accelerate launch --num_processes 1 --mixed_precision no --dynamo_backend no \
		scripts/train_stu.py --config pipelines/apvg-virtual-pianist/stu_256.yaml \
		$(if $(wildcard outputs/stu-256/checkpoints),--resume)
	$(PY) scripts/export_stu.py --run outputs/stu-256 --checkpoint outputs/stu-256/checkpoints/step-000500
## evaluate-stu-256: the 256 STU beside the 128 STU upscaled (bicubic) and its own starting point, on the test pieces
evaluate-stu-256: $(VENV)/.installed outputs/stu-256-init/config.json
	$(PY) scripts/evaluate_stu.py --model pipelines/apvg-virtual-pianist/stu --name "STU at 256 (released)" \
		--compare "STU at 128 (previous release), upscaled=outputs/pipeline-$(PREVIOUS)/stu" \
			"STU at 256 before training (the 128 STU upscaled inside)=outputs/stu-256-init" \
		--khp pipelines/apvg-virtual-pianist/khp --dataset data/virtual_pianist_medium --split test \
		--max-frames 150 --output pipelines/apvg-virtual-pianist/stu_256_results.json

## benchmark-stu-256: the 256 STU's network against the plain 256 one (the 128 architecture at 256), inference
## (fp32 and bf16) and training steps
STU_256_VARIANTS := plain-256=pixel_shuffle:1 pixel-shuffle=pixel_shuffle:2 \
	light-pixel-shuffle=pixel_shuffle:2,stem_kernel_size:1,skip_fusion:add
benchmark-stu-256: $(VENV)/.installed
	$(PY) scripts/benchmark.py stu --resolutions 256 --precisions fp32 bf16 --variants $(STU_256_VARIANTS) \
		--output pipelines/apvg-virtual-pianist/stu_256_benchmark.json
	$(PY) scripts/benchmark.py train-stu --resolutions 256 --precisions fp32 --repeats 3 \
		--variants plain-256=pixel_shuffle:1 pixel-shuffle=pixel_shuffle:2 \
		--output pipelines/apvg-virtual-pianist/stu_256_train_benchmark.json

STU_COMPARE := "no graph=outputs/stu-no-graph/model" "no ConvGRU=outputs/stu-no-gru/model" \
	"pix2pix-style UNet=outputs/stu-pix2pix/model"
## evaluate-stu: the same-budget table (the 450-step STU and its ablations); evaluate-stu-released: the shipped STU,
## also on what the shipped KHP predicts from the audio
evaluate-stu: $(VENV)/.installed
	$(PY) scripts/evaluate_stu.py --model outputs/stu-full/model --compare $(STU_COMPARE) \
		--dataset data/virtual_pianist_medium --split test --max-frames 150 \
		--output pipelines/apvg-virtual-pianist/stu_results.json
evaluate-stu-released: $(VENV)/.installed
	$(PY) scripts/evaluate_stu.py --model pipelines/apvg-virtual-pianist/stu --name "STU, released (450 + 800 steps)" \
		--khp pipelines/apvg-virtual-pianist/khp --dataset data/virtual_pianist_medium --split test \
		--max-frames 150 --output pipelines/apvg-virtual-pianist/stu_released_results.json

benchmark-stu: $(VENV)/.installed
	$(PY) scripts/benchmark.py stu --model pipelines/apvg-virtual-pianist/stu --resolutions 128 256 --precisions fp32 \
		--output pipelines/apvg-virtual-pianist/stu_benchmark.json

clean:
	rm -rf $(VENV) .venv-latest outputs build dist .pytest_cache .ruff_cache

## space: the Gradio Space on http://127.0.0.1:7860 (embedded default pipeline; APVG_SPACE_MODEL=folder|hub-id
## replaces it; GRADIO_SERVER_PORT another port). Offline, no telemetry, no share link.
.PHONY: space test-browser
space: $(VENV)/.installed
	$(PY) spaces_demo/app.py

## test-browser: the Space in a real browser (Playwright + Debian's chromium: apt-get install -y chromium);
## APVG_UPDATE_SCREENSHOT=1 also refreshes docs/media/space_screenshot.png
test-browser: $(VENV)/.installed
	$(PY) -m pytest tests/test_space_browser.py -m browser -q -s
