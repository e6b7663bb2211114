# Two entry points: `make demo` (the main job) and `make test` (the suite).
# Each sets up what it needs: a virtual environment with the pinned
# packages, and espeak-ng for the synthetic demo corpus.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= results/demo
DEMO_DATA ?= $(DEMO_DIR)/corpus
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: demo test lint espeak clean

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

espeak:
	@bash scripts/ensure_espeak.sh

demo: $(STAMP) espeak
	$(PY) -m emotion_invariant.data.synth --out $(DEMO_DATA) --jobs $(JOBS)

test: $(STAMP) espeak
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(DEMO_DIR)
