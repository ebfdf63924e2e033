# Every target installs what it needs into .venv first (CPU torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= lite

.PHONY: install demo test lint notebooks bench clean-cache

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
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

## notebooks: write the .ipynb of every edited .py (jupytext) and store the checked outputs
notebooks: install
	$(PY) tools/sync_notebooks.py notebooks/*.py

## bench: every benchmark, each printing its ratio against a reference measured in the same run
bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-cache:
	rm -rf data/cache
