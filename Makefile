# The two commands of the README, and what CI runs. Everything the project needs
# is installed here, into .venv, from this repository's own files.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lint bench clean browser

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

## Install, then run the sample flows end to end against a stand-in vendor.
demo: $(STAMP)
	$(BIN)/platypus run --demo --once

## Install, then run the whole test suite.
test: $(STAMP) browser
	$(BIN)/python -m pytest

## Debian's Chromium for the dashboard's browser tests (Playwright never downloads one).
## Quick when it is there; without apt-get or rights to use it, those tests are skipped.
browser:
	@test -x $(CHROMIUM) || { \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || echo "could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "no apt-get: the browser tests will be skipped (PLATYPUS_CHROMIUM=/path/to/chromium)"; \
	  fi; }

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
