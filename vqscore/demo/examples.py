"""Example clips for the demo page, so that it works with no file at hand.

Nothing here is recorded data: every clip is synthesised at first use (deterministic, seeded) by source-filter
synthesis, a vowel-like voice made of the harmonics of a gliding pitch shaped by moving formants, with
syllable-rate loudness and short fricative-like noise between syllables, then degraded the way the quality
benchmark degrades speech (noise at a set SNR over the whole clip or a burst of it, clipping, telephone band).
The clips are held in memory; nothing is written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf

RATE = 16_000

# formant frequencies (Hz) and bandwidths of five vowels, roughly a male voice
VOWELS = {
    "a": ((730, 1090, 2440), (90, 110, 170)),
    "e": ((530, 1840, 2480), (70, 100, 160)),
    "i": ((270, 2290, 3010), (60, 100, 170)),
    "o": ((570, 840, 2410), (80, 100, 160)),
    "u": ((300, 870, 2240), (60, 90, 150)),
}


def synthetic_voice(seconds: float = 10.0, seed: int = 0, f0: float = 120.0, rate: int = RATE) -> np.ndarray:
    """A vowel-like voice: (samples,) float32 at `rate`, peak 0.5. Syllables of about 0.25 s, each on a vowel of
    VOWELS, formants gliding between them, pitch wandering around `f0`, pauses every few syllables."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    syllable = 0.25
    count = int(np.ceil(seconds / syllable)) + 1
    names = list(VOWELS)
    order = [names[k] for k in rng.integers(0, len(names), count)]
    # formant tracks: piecewise-linear between syllable centres
    centres = (np.arange(count) + 0.5) * syllable
    formants = np.array([VOWELS[v][0] for v in order], dtype=np.float64)  # (count, 3)
    widths = np.array([VOWELS[v][1] for v in order], dtype=np.float64)
    track_f = np.stack([np.interp(t, centres, formants[:, j]) for j in range(3)])  # (3, n)
    track_b = np.stack([np.interp(t, centres, widths[:, j]) for j in range(3)])
    pitch = f0 * (1.0 + 0.12 * np.sin(2 * np.pi * 0.31 * t + rng.uniform(0, 6.3)) + 0.05 * np.sin(2 * np.pi * 1.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = np.zeros(n)
    for k in range(1, int(7600 / (f0 * 0.85))):
        freq = k * pitch
        gain = np.zeros(n)
        for j in range(3):  # resonance magnitude of each formant at this harmonic
            gain += 1.0 / np.sqrt(1.0 + ((freq - track_f[j]) / (track_b[j] / 2.0)) ** 2) * (0.9**j)
        tilt = 1.0 / k  # glottal source roll-off, about -6 dB per octave
        voiced += np.where(freq < 7800, gain * tilt * np.sin(k * phase), 0.0)
    # syllable loudness: a raised cosine per syllable, with a pause after every 3 to 6 syllables
    envelope = np.zeros(n)
    pause_every = rng.integers(3, 7, count)
    position = 0
    for s in range(count):
        start = s * syllable
        if position >= pause_every[s]:
            position = 0
            continue
        position += 1
        inside = (t >= start) & (t < start + syllable)
        envelope[inside] = np.sin(np.pi * (t[inside] - start) / syllable) ** 1.5 * rng.uniform(0.6, 1.0)
    # a short fricative-like burst (high-passed noise) at some syllable onsets
    noise = rng.standard_normal(n)
    hiss = noise - np.convolve(noise, np.ones(4) / 4, mode="same")
    onsets = np.zeros(n)
    for s in range(count):
        if rng.uniform() < 0.35:
            start = s * syllable
            inside = (t >= start) & (t < start + 0.06)
            onsets[inside] = np.hanning(max(int(inside.sum()), 1))[: int(inside.sum())]
    x = voiced * envelope + 0.35 * np.max(np.abs(voiced)) * hiss * onsets * 0.3
    x += 1e-4 * rng.standard_normal(n)  # a faint floor, as any microphone has
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, seed: int = 1, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
    """White-ish noise (pink-tilted) at `snr_db` against the clip's speech level, over [start_s, end_s) or all."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(x.shape[0])
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 50.0) / 50.0)  # pink: -3 dB per octave
    noise = np.fft.irfft(spectrum, n=x.shape[0])
    level = np.sqrt(np.mean(x[np.abs(x) > 0.01 * np.max(np.abs(x))] ** 2))
    noise *= level / np.sqrt(np.mean(noise**2)) * 10 ** (-snr_db / 20.0)
    mask = np.ones(x.shape[0])
    if start_s is not None:
        a, b = int(start_s * RATE), int((end_s if end_s is not None else x.shape[0] / RATE) * RATE)
        mask[:] = 0.0
        ramp = int(0.02 * RATE)
        mask[a:b] = 1.0
        mask[a : a + ramp] = np.linspace(0, 1, ramp)
        mask[b - ramp : b] = np.linspace(1, 0, ramp)
    y = x + noise * mask
    return (y / max(1.0, np.max(np.abs(y)) / 0.99)).astype(np.float32)


def clip(x: np.ndarray, fraction: float) -> np.ndarray:
    limit = fraction * np.max(np.abs(x))
    return (np.clip(x, -limit, limit) / fraction).astype(np.float32) * 0.5


def telephone(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz band (an FFT mask), as narrow-band telephone speech."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(spectrum, n=x.shape[0]).astype(np.float32)


@dataclass(frozen=True)
class Example:
    key: str
    title: str
    make: Callable[[], np.ndarray]  # -> (samples,) float32 at 16 kHz


EXAMPLES: tuple[Example, ...] = (
    Example("voice-clean", "Synthetic voice, clean (10 s)", lambda: synthetic_voice()),
    Example(
        "voice-noise-burst",
        "Synthetic voice, 0 dB noise burst from 4 s to 7 s (10 s)",
        lambda: add_noise(synthetic_voice(), 0.0, start_s=4.0, end_s=7.0),
    ),
    Example("voice-noisy-5db", "Synthetic voice in steady noise, 5 dB SNR (10 s)", lambda: add_noise(synthetic_voice(), 5.0)),
    Example("voice-clipped", "Synthetic voice, clipped at 10 % of its peak (10 s)", lambda: clip(synthetic_voice(), 0.1)),
    Example("voice-telephone", "Synthetic voice, telephone band 300-3400 Hz (10 s)", lambda: telephone(synthetic_voice())),
)


def titles() -> dict[str, str]:
    return {e.key: e.title for e in EXAMPLES}


@lru_cache(maxsize=len(EXAMPLES))
def example_wav(key: str) -> bytes:
    """The example clip `key` as WAV bytes (16-bit, 16 kHz), made on first use."""
    example = next((e for e in EXAMPLES if e.key == key), None)
    if example is None:
        raise KeyError(f"no example clip {key!r}; examples: {', '.join(e.key for e in EXAMPLES)}")
    buffer = io.BytesIO()
    sf.write(buffer, example.make(), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
