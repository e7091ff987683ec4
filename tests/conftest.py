from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_model, write_speech

import vqscore

# The test machine's few cores are shared with other work: one intra-op thread avoids OpenMP spin-waits that make
# tiny forwards 10-20x slower under load (the reference notes 1 vs 2 threads give identical indices and scores).
torch.set_num_threads(1)

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
REFERENCE_FILES = (
    "qe_seed0.pkl",
    "se_seed0.pkl",
    "clean_p232_005.wav",
    "noisy_p232_005.wav",
    "expected.json",
    "reference_arrays.npz",
)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference beside the repository; tests that need it are skipped when it is absent."""
    if not all((REFERENCE_DIR / f).is_file() for f in REFERENCE_FILES):
        pytest.skip(f"reference fixture not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def expected(reference_dir) -> dict:
    return json.loads((reference_dir / "expected.json").read_text())


@pytest.fixture(scope="session")
def ref_arrays(reference_dir):
    with np.load(reference_dir / "reference_arrays.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def ref_qe(reference_dir) -> vqscore.Model:
    return vqscore.load(reference_dir / "qe_seed0.pkl")


@pytest.fixture(scope="session")
def ref_se(reference_dir) -> vqscore.Model:
    return vqscore.load(reference_dir / "se_seed0.pkl")


@pytest.fixture
def tiny_qe() -> vqscore.Model:
    return tiny_model("qe")


@pytest.fixture
def tiny_se() -> vqscore.Model:
    return tiny_model("se")


@pytest.fixture
def make_wav(tmp_path):
    """make_wav(name, seconds=1.0, sr=16000, channels=1, seed=0, subtype=None) -> Path under tmp_path."""

    def make(name: str, **kwargs) -> Path:
        return write_speech(tmp_path / name, **kwargs)

    return make
