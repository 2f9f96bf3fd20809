# Tandem — every install step lives here so a fresh clone needs only python3.11, make and the registries.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint typecheck pytest test-slow chaos bench clean

help:
	@echo "make demo   - run emulated trackers and paired nodes on this machine"
	@echo "make test   - ruff, mypy (strict on protocol/ and node/) and the whole pytest suite"
	@echo "make test-slow - the slow suites (chaos, full benchmarks-as-tests)"
	@echo "make chaos  - the chaos suite with many kill -9 rounds (real node and emulator processes)"
	@echo "make bench  - print the benchmark tables"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check protocol node tests scripts
	$(BIN)/ruff format --check protocol node tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy protocol node

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

chaos: $(STAMP)
	$(BIN)/python -m pytest -m slow -s tests/chaos

bench: $(STAMP)
	$(BIN)/python scripts/bench_protocol.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
