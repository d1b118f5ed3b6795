# Two entry points, both idempotent: the first run builds .venv, later runs reuse it.
#   make train   install npxception and train a small Xception on the built-in dataset
#   make test    install the test dependencies and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: train test gradcheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# A stamp per extra: reinstalled only when pyproject.toml changes.
$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@ $(VENV)/.run-deps

train: $(VENV)/.run-deps
	$(BIN)/npxception train $(ARGS)

gradcheck: $(VENV)/.run-deps
	$(BIN)/npxception gradcheck

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.test-deps
	$(BIN)/python benchmarks/bench_ops.py
	$(BIN)/python benchmarks/bench_model.py

clean:
	rm -rf $(VENV)
