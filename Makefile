# The README's two commands for a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A local CPU build of torch; an unpinned torch would pull several GB of CUDA packages.
TORCH ?= torch==2.13.0
AUDIO ?= ../shared/data/real-noisy/voicebank
OUT ?= out/scores.csv

.PHONY: venv install install-dev run test test-slow lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)

install: $(PY)
	$(PY) -m pip install -q "$(TORCH)" -e .

install-dev: $(PY)
	$(PY) -m pip install -q "$(TORCH)" -e ".[dev,train,eval]"

# The main job: score audio with the shipped default model.
run: install
	$(VENV)/bin/vqscore models
	$(VENV)/bin/vqscore score $(AUDIO) -o $(OUT)
	@echo "scores written to $(OUT)"

test: install-dev
	$(PY) -m pytest -q

test-slow: install-dev
	$(PY) -m pytest -q -m "slow or training"

lint: install-dev
	$(VENV)/bin/ruff check vqscore tests recipes benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
