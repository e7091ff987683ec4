# The README's two commands for a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to a CPU build: on Linux, PyPI's torch pulls several GB of CUDA (nvidia-*) packages. PyTorch's CPU
# wheel index serves `torch-2.13.0+cpu`, which `torch==2.13.0` matches (PEP 440: a pin without a local label accepts
# any) and which pip prefers to PyPI's `2.13.0` (a local label sorts higher). `make install TORCH_INDEX=` leaves the
# index out (a CUDA machine); `TORCH=...` changes the pin.
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
AUDIO ?= ../shared/data/real-noisy/voicebank
OUT ?= out/scores.csv

.PHONY: venv install-torch install install-dev run test test-slow lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)

# torch on its own, with the CPU index; the project and its other dependencies then come from the usual indexes only.
# The index is passed only if it answers within 5 s: an unreachable extra index is not an error to pip, but each
# package it looks up there costs it retries (about 9 s each where the name does not resolve, up to minutes where
# connections hang), and offline machines that install from a local wheel house through pip.conf never need it.
install-torch: $(PY)
	@index=; \
	if [ -n "$(TORCH_INDEX)" ]; then \
		if $(PY) -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$(TORCH_INDEX)/" 2>/dev/null; \
		then index=" --extra-index-url $(TORCH_INDEX)"; \
		else echo "$(TORCH_INDEX) is unreachable: $(TORCH) comes from pip's configured indexes (PyPI's is a CUDA build on Linux)"; fi; \
	fi; \
	echo "$(PY) -m pip install -q$$index \"$(TORCH)\""; \
	$(PY) -m pip install -q$$index "$(TORCH)"

install: install-torch
	$(PY) -m pip install -q "$(TORCH)" -e .

install-dev: install-torch
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
