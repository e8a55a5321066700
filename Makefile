# Set-up is part of every target: a fresh machine needs only python3 (3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,parity,hub,keras_hub,export,bench,search

.PHONY: venv train test lint test-fast bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

# The main job: train GhostNet-D on the embedded digits (rerun to resume; `keras-tinynet models` prints the model table).
train: venv
	$(BIN)/keras-tinynet train

# Lint and format check, then the whole test suite, slow tests included (CI runs this through .ci/run).
test: venv lint
	$(BIN)/python -m pytest -q -ra --durations=15 tests

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Everything but the tests marked slow.
test-fast: venv
	$(BIN)/python -m pytest -q -ra -m "not slow" tests

# The benchmarks (not part of the tests): inference (~20 min on 2 cores), oneDNN (~8 min) and training steps;
# results in benchmarks/results/.
bench: venv
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/onednn.py
	$(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
