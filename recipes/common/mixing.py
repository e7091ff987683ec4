"""Signal-level mixing shared by the noisy-data builders (benchmarks/build_quality_set.py, build_noisy_set.py) and
the on-the-fly training mixtures (`mixtures.py`): SNR scaling, looping noise to length, babble, reverberation,
filters. Pure numpy/scipy functions on (samples,) float signals at 16 kHz; every random choice comes from the
`numpy.random.Generator` passed in, so an output is a function of (inputs, generator state) only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

RATE = 16_000
EPS = 1e-12
# Real noise recordings are high-passed at 50 Hz before mixing: some soundscapes hold most of their power in DC and
# sub-audio rumble, which would make the nominal SNR meaningless.
NOISE_HIGHPASS_HZ = 50.0


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(power(x)))


def fit_length(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Loop (tile) `x` when it is shorter than `length`, then crop `length` samples at a random offset."""
    if x.shape[0] == 0:
        raise ValueError("cannot fit an empty signal")
    if x.shape[0] < length:
        x = np.tile(x, int(np.ceil(length / x.shape[0])) + 1)
    offset = int(rng.integers(0, x.shape[0] - length + 1))
    return x[offset : offset + length]


def scale_to_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` scaled so that 10 log10(P_clean / P_noise) = snr_db (powers over the whole signal)."""
    p_noise = power(noise)
    if p_noise <= 0:
        raise ValueError("noise segment is digital silence")
    return noise * np.sqrt(power(clean) / (p_noise * 10.0 ** (snr_db / 10.0)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """clean + noise at `snr_db`; the noise is looped/cropped to the clean's length at a random offset and its
    mean removed before scaling, so that the SNR counts audible power only."""
    segment = fit_length(np.asarray(noise, dtype=np.float64), clean.shape[0], rng)
    segment = segment - segment.mean()  # a DC offset is inaudible power (some soundscapes are mostly DC)
    return (clean + scale_to_snr(clean, segment, snr_db)).astype(np.float32)


def babble_noise(talkers: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of several talkers' speech, each looped/cropped to `length` at a random offset and set to unit RMS."""
    if not talkers:
        raise ValueError("babble needs at least one talker")
    total = np.zeros(length, dtype=np.float64)
    for speech in talkers:
        segment = fit_length(np.asarray(speech, dtype=np.float64), length, rng)
        segment = segment - segment.mean()
        total += segment / max(rms(segment), EPS)
    return total


def babble(clean: np.ndarray, talkers: Sequence[np.ndarray], snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """clean + babble of `talkers` (other speakers' utterances, 3-5 of them) at `snr_db`."""
    noise = babble_noise(talkers, clean.shape[0], rng)
    return (clean + scale_to_snr(clean, noise, snr_db)).astype(np.float32)


def prepare_rir(rir: np.ndarray, sr: int) -> np.ndarray:
    """An RIR (first channel if several) resampled to 16 kHz with soxr, peak-normalised."""
    rir = np.asarray(rir, dtype=np.float64)
    if rir.ndim == 2:
        rir = rir[:, 0] if rir.shape[0] > rir.shape[1] else rir[0]
    if sr != RATE:
        rir = soxr.resample(rir, sr, RATE, quality="VHQ")
    return rir / max(np.abs(rir).max(), EPS)


def read_rir(path: str | os.PathLike) -> np.ndarray:
    """An RIR file's first channel, prepared (`prepare_rir`)."""
    raw, sr = sf.read(os.fspath(path), dtype="float64", always_2d=True)
    return prepare_rir(raw[:, 0], sr)


def reverb(clean: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """clean convolved with a 16 kHz RIR, advanced by the direct path (the RIR's peak) so that it stays aligned
    with the clean, cut to the clean's length and scaled to the clean's RMS level."""
    direct = int(np.argmax(np.abs(rir)))
    wet = signal.fftconvolve(np.asarray(clean, dtype=np.float64), rir)[direct : direct + clean.shape[0]]
    if wet.shape[0] < clean.shape[0]:
        wet = np.pad(wet, (0, clean.shape[0] - wet.shape[0]))
    return (wet * rms(clean) / max(rms(wet), EPS)).astype(np.float32)


def band_limit(clean: np.ndarray, cutoff_hz: float, kind: str = "lowpass", order: int = 8, sr: int = RATE) -> np.ndarray:
    """Zero-phase Butterworth low-pass (e.g. 2-4 kHz) or high-pass filter."""
    if kind not in ("lowpass", "highpass"):
        raise ValueError(f"kind must be 'lowpass' or 'highpass', got {kind!r}")
    sos = signal.butter(order, cutoff_hz, btype=kind, fs=sr, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(clean, dtype=np.float64)).astype(np.float32)


def highpass_noise(noise: np.ndarray) -> np.ndarray:
    """A noise recording as it is mixed: high-passed at `NOISE_HIGHPASS_HZ` (4th-order, zero-phase)."""
    return band_limit(noise, NOISE_HIGHPASS_HZ, "highpass", order=4)
