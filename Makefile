# Every target installs what it needs into .venv first (torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= lite
# On an ordinary Linux machine PyPI's torch brings several GB of CUDA libraries; with
# TORCH_INDEX=https://download.pytorch.org/whl/cpu the pinned torch comes from PyTorch's
# CPU-only index instead (e.g. make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu).
TORCH_INDEX ?=

.PHONY: install demo test lint notebooks notebook-times bench clean-cache

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet -c constraints.txt torch --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## demo: the main job -- the whole pipeline on the phantom cohort, printing the results table
demo: install
	$(PY) -m slicreg_lite run --preset $(PRESET)

## test: lint, unit/property tests and every notebook under the smoke preset
test: install
	$(PY) -m ruff check slicreg_lite tests benchmarks notebooks tools
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check slicreg_lite tests benchmarks notebooks tools

## notebooks: every .ipynb from its .py with the outputs of a lite run (figures too), the
## student versions and the agenda (fast after make demo: the stages are cached)
notebooks: install
	$(PY) tools/sync_notebooks.py

## notebook-times: time every notebook under lite, warm and from an empty cache (~15 min)
notebook-times: install
	$(PY) tools/time_notebooks.py
	$(PY) tools/sync_notebooks.py --no-execute

## bench: every benchmark, each printing its ratio against a reference measured in the same run
bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-cache:
	rm -rf data/cache
