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

.PHONY: venv install-torch install install-dev browser run demo test test-slow lint clean

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
	$(PY) -m pip install -q "$(TORCH)" -e ".[dev,train,eval,demo]"

# Chromium for the web demo's browser test (tests/test_demo_browser.py): Debian's package, installed with apt-get
# where it is missing and we are root (as CI is); elsewhere the test says why it skips.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "apt-get install chromium (for the demo's browser test)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
			|| echo "could not install chromium: the demo's browser test will skip"; \
	else echo "chromium is not installed and apt-get needs root: the demo's browser test will skip"; fi

# The main job: score audio with the shipped default model.
run: install
	$(VENV)/bin/vqscore models
	$(VENV)/bin/vqscore score $(AUDIO) -o $(OUT)
	@echo "scores written to $(OUT)"

# The web demo on http://127.0.0.1:8501 (DEMO_ARGS: e.g. --port 8600 --ensemble my-ensemble.json).
demo: install-torch
	$(PY) -m pip install -q "$(TORCH)" -e ".[demo]"
	$(VENV)/bin/vqscore demo $(DEMO_ARGS)

test: install-dev browser
	$(PY) -m pytest -q

test-slow: install-dev
	$(PY) -m pytest -q -m "slow or training"

lint: install-dev
	$(VENV)/bin/ruff check vqscore tests recipes benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
