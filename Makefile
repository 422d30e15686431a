# The two commands of the README, and what CI runs. Everything the project needs
# is installed here, into .venv, from this repository's own files.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

## Install, then run the sample flows end to end against a stand-in vendor.
demo: $(STAMP)
	$(BIN)/platypus run --demo --once

## Install, then run the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest

## ruff and mypy, as CI runs them.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy platypus adapters schemas bench

## Throughput benchmark (on demand; prints figures).
bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .platypus .mypy_cache .ruff_cache .pytest_cache
