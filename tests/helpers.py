"""Small helpers shared by the tests: synthetic speech-like audio and tiny random models."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqscore.api import Model
from vqscore.features import spectrum
from vqscore.models import QEConfig, SEConfig, build_model

SR = 16_000


def speech_like(seconds: float, sr: int = SR, seed: int = 0, f0: float = 140.0, noise: float = 0.01) -> np.ndarray:
    """Harmonic tones with a gliding pitch and syllable-rate amplitude modulation, plus a little noise.

    Returns (samples,) float32 with peak about 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    pitch = f0 * (1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voiced = sum((0.8**k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 12))
    envelope = 0.5 * (1.0 + np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi))) ** 2 / 4.0
    x = voiced * envelope + noise * rng.standard_normal(n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def write_speech(
    path: Path,
    seconds: float = 1.0,
    sr: int = SR,
    channels: int = 1,
    seed: int = 0,
    subtype: str | None = None,
) -> Path:
    """Write speech_like audio to `path` (format from the suffix); several channels get slightly different gains."""
    x = speech_like(seconds, sr=sr, seed=seed)
    if channels > 1:
        x = np.stack([x * (1.0 - 0.05 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def tiny_network(kind: str, seed: int = 0):
    """A small random QE or SE network whose codebook was k-means initialised on random audio."""
    torch.manual_seed(seed)
    common = dict(widths=(16, 16, 8), codebook_size=64, codebook_dim=8)
    config = QEConfig(**common) if kind == "qe" else SEConfig(**common, heads=2, feedforward=16)
    network = build_model(config)
    network.train()
    audio = 0.1 * torch.randn(2, 2 * SR, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        spec = spectrum(audio, network.features)
        network.quantize(network.encode(spec))
    assert bool(network.quantizer.initialized)
    return network.eval()


def tiny_model(kind: str, seed: int = 0) -> Model:
    return Model(tiny_network(kind, seed), name="tiny")


def read_rows(path: Path, columns: tuple[str, ...] | None = None) -> list[dict]:
    """Rows of a `vqscore score` table (CSV with exactly `columns`, by default the CLI's, or JSONL)."""
    from vqscore.cli import COLUMNS

    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == (columns or COLUMNS)
        return list(reader)


def score_command(folder: Path, out: Path, bundle: Path, *extra: str) -> list[str]:
    """`python -m vqscore score FOLDER -o OUT --model BUNDLE ...` for subprocess tests."""
    return [sys.executable, "-m", "vqscore", "score", str(folder), "-o", str(out), "--model", str(bundle), *extra]
