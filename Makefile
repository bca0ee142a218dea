# imgcomp: `make all` runs the pipeline, `make test` runs the tests. `make help` lists targets.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON ?= python3
export PATH := $(BIN):$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help install all repro test test-fast test-slow test-gpu gpu-check bench report submit package pipeline clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies (once)

all: $(STAMP) ## run the whole pipeline (dvc repro) and print the scores
	@python -m imgcomp check  # params.yaml through our validator first: one clear line
	@python -m imgcomp prune  # predictions of models no longer run would change ensemble's deps
	dvc repro
	@dvc checkout --relink -q 2>/dev/null || true  # repro copied outputs into .dvc/cache: link them
	python -m imgcomp summary

repro: all ## alias of all

test: $(STAMP) ## the test suite (installs first if needed; CUDA tests run where CUDA is)
	python -m pytest -n 2 --dist loadgroup -m "not slow"

test-fast: $(STAMP) ## unit tests only (no end-to-end pipeline runs)
	python -m pytest -n 2 -m "not slow and not e2e and not gpu"

test-slow: $(STAMP) ## the minutes-long runs: the default pipeline against the SVM anchor
	python -m pytest -n 2 --dist loadgroup -m slow

test-gpu: $(STAMP) ## the CUDA tests alone (on a GPU machine; they skip without CUDA)
	python -m pytest -n 2 --dist loadgroup -m gpu

gpu-check: ## on a CUDA machine after `source gpu/setup-on-gpu.sh`: gpu tests, e2e run, bench, suite: one log, one JSON (OUT=dir)
	bash scripts/gpu_check.sh

bench: $(STAMP) ## speed and accuracy benchmarks, side by side; writes metrics/bench.json
	python benchmarks/bench.py

report: $(STAMP) ## one self-contained HTML page of the last run: reports/<competition>.html
	python -m imgcomp report

submit: $(STAMP) ## upload the submission with the kaggle CLI (DRY_RUN=1: print the command only)
	python -m imgcomp upload $(if $(DRY_RUN),--dry-run,)

# PACKAGE_WHEELS=1: packages/wheels/ also holds every dependency's wheel, at requirements.lock's
# pins (one shipped as source only is built into a wheel here), for this machine's Python and
# platform: `pip install --no-index --find-links packages/wheels imgcomp` then needs no registry.
# torch and torchvision come from the registry pip uses (the lock's build, with its CUDA
# libraries), or from PACKAGE_TORCH_INDEX, e.g. https://download.pytorch.org/whl/cpu (CPU-only).
PACKAGE_WHEELS ?=
PACKAGE_TORCH_INDEX ?=
package: $(STAMP) ## the trained ensemble for another machine: packages/<competition>/ + wheels (PACKAGE_WHEELS=1: all)
	dvc repro package
	@dvc checkout --relink -q 2>/dev/null || true
	rm -f packages/wheels/imgcomp-*.whl
	python -m pip wheel -q --no-deps --no-build-isolation -w packages/wheels .
	@if [ -n "$(PACKAGE_WHEELS)" ] && [ "$(PACKAGE_WHEELS)" != 0 ]; then set -e; \
	  if [ -n "$(PACKAGE_TORCH_INDEX)" ]; then \
	    python -m pip download -q --no-deps -d packages/wheels --index-url "$(PACKAGE_TORCH_INDEX)" \
	      $$(grep -E '^(torch|torchvision)==' requirements.lock); fi; \
	  python -m pip wheel -q -w packages/wheels -c requirements.lock --find-links packages/wheels \
	    packages/wheels/imgcomp-*.whl; \
	  echo "packages/wheels: $$(ls packages/wheels | wc -l) wheels, $$(du -sh packages/wheels | cut -f1)"; fi
	@echo "offline: pip install --no-index --find-links packages/wheels imgcomp (PACKAGE_WHEELS=1), then python -m imgcomp infer --package packages/<competition> --raw DIR --out submission.csv"

pipeline: $(STAMP) ## regenerate dvc.yaml from the stages' declarations (src/imgcomp/stages/*.py)
	python -m imgcomp.pipeline

clean: ## remove pipeline outputs (not the raw data, not the venv)
	rm -rf data/prepared data/folds models preds dvclive checkpoints metrics reports plots packages
