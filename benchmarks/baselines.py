"""Baselines that VQScore must beat on the quality benchmark.

- `wada_snr`: blind waveform-amplitude-distribution SNR (Kim & Stern, Interspeech 2008), computed from the
  paper's model (speech amplitude ~ Gamma(shape 0.4), additive Gaussian noise); the G(SNR) table is integrated
  numerically here, not copied from the authors' code. Higher = cleaner.
- `energy_snr`: frame-energy percentile SNR (90th vs 10th percentile of 20 ms frame powers). Higher = cleaner.
- DNSMOS OVRL: read from the manifest (the builder computed it).
- `untrained_model`: the QE architecture with random weights (torch.manual_seed(0)) and a codebook k-means
  initialised by one training-mode forward over ~60 s of clean speech of the 'train' speakers, exactly like the
  official recipe's first step; it shows how much of VQScore's correlation comes from architecture and features
  alone.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
LIBRISPEECH = "librispeech-train-clean-100"

# --------------------------------------------------------------------------- WADA-SNR

WADA_ALPHA = 0.4  # shape of the Gamma amplitude distribution of clean speech (Kim & Stern 2008)
WADA_SNRS = np.arange(-20.0, 101.0, 1.0)
WADA_EPS = 1e-10


@lru_cache(maxsize=1)
def wada_table(grid: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """(SNR dB, G(SNR)) where G = log E|z| - E log|z| for z = x + n, |x| ~ Gamma(alpha), n ~ N(0, 1).

    Expectations over a deterministic quantile grid of both distributions (the sign of x does not matter since n
    is symmetric). G is scale-free, so only the SNR = 10 log10(E x^2 / E n^2) matters; E x^2 = a(a+1) theta^2.
    """
    q = (np.arange(grid) + 0.5) / grid
    g = stats.gamma.ppf(q, WADA_ALPHA)  # unit scale: E g^2 = a (a + 1)
    n = stats.norm.ppf(q)
    values = np.empty_like(WADA_SNRS)
    for i, snr in enumerate(WADA_SNRS):
        theta = np.sqrt(10.0 ** (snr / 10.0) / (WADA_ALPHA * (WADA_ALPHA + 1.0)))
        z = np.abs(theta * g[:, None] + n[None, :])
        values[i] = np.log(z.mean()) - np.log(np.maximum(z, 1e-300)).mean()
    return WADA_SNRS.copy(), values


def wada_snr(x: np.ndarray) -> float:
    """Blind SNR estimate (dB, clamped to [-20, 100]) of a speech signal from its amplitude distribution."""
    x = np.asarray(x, dtype=np.float64)
    peak = np.abs(x).max()
    if peak == 0:
        return float("nan")
    a = np.maximum(np.abs(x / peak), WADA_EPS)
    g = np.log(max(a.mean(), WADA_EPS)) - np.log(a).mean()
    snrs, table = wada_table()
    order = np.argsort(table)  # G grows with the SNR
    return float(np.interp(g, table[order], snrs[order]))


def energy_snr(x: np.ndarray, sr: int = 16000, frame_ms: float = 20.0, low: float = 10.0, high: float = 90.0) -> float:
    """SNR (dB) from the spread of frame powers: noise = `low` percentile, speech + noise = `high` percentile."""
    x = np.asarray(x, dtype=np.float64)
    size = int(sr * frame_ms / 1000)
    count = x.shape[0] // size
    if count < 2:
        return float("nan")
    powers = np.square(x[: count * size].reshape(count, size)).mean(axis=1)
    noise, loud = np.percentile(powers, low), np.percentile(powers, high)
    return float(10.0 * np.log10(max(loud - noise, 1e-20) / max(noise, 1e-20)))


# --------------------------------------------------------------------------- untrained VQ-VAE


def train_speech(data: Path, seconds: float = 60.0) -> list[np.ndarray]:
    """The first `seconds` of clean speech of the 'train' LibriSpeech speakers, in split order (whole files,
    the last one cut), 16 kHz float32."""
    from vqscore.audio import load_audio

    speakers = json.loads((REPO / "splits" / "speakers.json").read_text())[LIBRISPEECH]["train"]
    folder = Path(data) / "clean" / LIBRISPEECH
    files = {f.name.split("-")[0]: f for f in sorted(folder.glob("*.flac"))}
    need = int(seconds * 16000)
    out: list[np.ndarray] = []
    for spk in speakers:
        if spk not in files:
            continue
        x = load_audio(files[spk]).samples
        out.append(x[:need])
        need -= out[-1].shape[0]
        if need <= 0:
            break
    if need > 0:
        raise FileNotFoundError(f"less than {seconds} s of train-speaker speech under {folder}")
    return out


def untrained_model(data: Path, seconds: float = 60.0, seed: int = 0):
    """vqscore.api.Model of a randomly initialised QE VQ-VAE whose codebook is k-means-fitted (10 iterations, then
    one EMA step) on the latents of ~60 s of train-speaker clean speech in one training-mode forward."""
    from vqscore.api import Model
    from vqscore.features import batch_spectrum
    from vqscore.models import QEConfig, build_model

    torch.manual_seed(seed)
    network = build_model(QEConfig())
    wavs = [torch.from_numpy(w) for w in train_speech(data, seconds)]
    network.train()
    with torch.no_grad():
        spec, frames = batch_spectrum(wavs, network.features)
        z = network.encode(spec, frames)
        network.quantize(z, frames, update=True)
    network.eval()
    return Model(network, name=f"untrained-qe-seed{seed}")
