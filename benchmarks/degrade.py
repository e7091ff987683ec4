"""Degradations for the quality benchmark: pure numpy/scipy functions on (samples,) float 16 kHz signals. The mixing
functions (SNR, babble, reverb, filters) live in `recipes/common/mixing.py`, shared with the training mixtures, and
are re-exported here under their names.

Every random choice comes from the `numpy.random.Generator` passed in, so a degraded file is a function of
(inputs, generator state) only. Outputs keep the clean signal's length and time alignment (reverb is advanced
by the RIR's direct-path delay; filters are zero-phase), so intrusive labels (PESQ, STOI, SI-SDR) compare
like with like.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

from recipes.common.mixing import (  # noqa: F401  (re-exported: the builders and tests call them as degrade.*)
    EPS,
    RATE,
    babble,
    babble_noise,
    band_limit,
    fit_length,
    mix_at_snr,
    power,
    prepare_rir,
    reverb,
    rms,
    scale_to_snr,
)


def clip(clean: np.ndarray, fraction: float) -> np.ndarray:
    """Hard clipping at `fraction` of the signal's peak (0 < fraction <= 1)."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    threshold = fraction * float(np.abs(clean).max())
    return np.clip(clean, -threshold, threshold).astype(np.float32)


MU = 255.0


def mu_law_encode(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> 8-bit codes 0..255 (G.711-style continuous mu-law, mu = 255)."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return np.clip(np.round((y + 1.0) / 2.0 * MU), 0, 255).astype(np.uint8)


def mu_law_decode(codes: np.ndarray) -> np.ndarray:
    y = codes.astype(np.float64) / MU * 2.0 - 1.0
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU


def telephone(clean: np.ndarray, sr: int = RATE) -> np.ndarray:
    """Narrow-band telephone channel: resample to 8 kHz, 300-3400 Hz band-pass, 8-bit mu-law encode/decode,
    back to 16 kHz. The signal is peak-normalised into the codec's range and the level restored after."""
    x = np.asarray(clean, dtype=np.float64)
    peak = max(float(np.abs(x).max()), EPS)
    narrow = soxr.resample(x / peak * 0.95, sr, 8000, quality="VHQ")
    sos = signal.butter(6, [300.0, 3400.0], btype="bandpass", fs=8000, output="sos")
    narrow = signal.sosfiltfilt(sos, narrow)
    narrow = mu_law_decode(mu_law_encode(narrow))
    wide = soxr.resample(narrow, 8000, sr, quality="VHQ")
    wide = wide[: x.shape[0]]
    if wide.shape[0] < x.shape[0]:
        wide = np.pad(wide, (0, x.shape[0] - wide.shape[0]))
    return (wide * peak / 0.95).astype(np.float32)


def spectral_subtraction(
    noisy: np.ndarray,
    alpha: float = 2.0,
    floor: float = 0.01,
    noise_quantile: float = 0.1,
    n_fft: int = 512,
    hop: int = 128,
    sr: int = RATE,
) -> np.ndarray:
    """A deliberately simple magnitude spectral-subtraction enhancer (it leaves musical noise).

    The noise magnitude per bin is the mean over the `noise_quantile` lowest-energy frames; each frame's
    magnitude becomes max(|X| - alpha * N, floor * |X|), resynthesised with the noisy phase.
    """
    x = np.asarray(noisy, dtype=np.float64)
    _, _, spec = signal.stft(x, fs=sr, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary="even")
    mag = np.abs(spec)
    energy = (mag**2).sum(axis=0)
    quiet = np.argsort(energy, kind="stable")[: max(1, int(round(noise_quantile * energy.shape[0])))]
    noise_mag = mag[:, quiet].mean(axis=1, keepdims=True)
    cleaned = np.maximum(mag - alpha * noise_mag, floor * mag)
    _, out = signal.istft(
        cleaned * np.exp(1j * np.angle(spec)), fs=sr, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary=True
    )
    out = out[: x.shape[0]]
    if out.shape[0] < x.shape[0]:
        out = np.pad(out, (0, x.shape[0] - out.shape[0]))
    return out.astype(np.float32)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (both zero-meaned; Le Roux et al. 2019). Identical signals give ~+200 dB."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    n = min(ref.shape[0], est.shape[0])
    ref, est = ref[:n] - ref[:n].mean(), est[:n] - est[:n].mean()
    target = ref * (np.dot(est, ref) / max(np.dot(ref, ref), EPS))
    residual = est - target
    return float(10.0 * np.log10((np.dot(target, target) + EPS) / (np.dot(residual, residual) + EPS)))


def band_energy_ratio(x: np.ndarray, above_hz: float, sr: int = RATE) -> float:
    """Fraction of the signal's energy above `above_hz` (from its FFT)."""
    spec = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / sr)
    return float(spec[freqs > above_hz].sum() / max(spec.sum(), EPS))
