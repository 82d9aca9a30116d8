# Two commands set up a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.oculi-installed

.PHONY: demo test install bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/oculi demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=25

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/transfer_hymenoptera.py
	$(BIN)/python bench/detection_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples

clean:
	rm -rf $(VENV) build src/*.egg-info
