"""Input conditioning: what the model sees of an utterance before its spectrum is taken.

"paper" scores the waveform exactly as given (the official definition; parity with the official code is tested
in this mode). Its score moves with level, because InstanceNorm's eps and the 1e-7 power floor weigh more as the
signal gets quieter, and with digital silence around the speech, which shifts the utterance-wide InstanceNorm
statistics and adds easily quantised frames (`benchmarks/level_silence.py` measures both). "robust" removes both
effects: it trims leading and trailing digital silence (samples below `SILENCE_BELOW_PEAK` of the peak) and scales
what remains to `target_rms`. Interior gaps are kept: a dropout inside speech is a distortion people hear.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# "Digital silence" relative to the utterance's peak (-120 dB): zero padding and a resampler's ringing into it,
# never a real recording's noise floor (24-bit converters reach about -110 dB). Relative, so that trimming does
# not depend on the level.
SILENCE_BELOW_PEAK = 1e-6
# -26 dBFS, the usual active speech level (ITU-T P.56); any fixed value works since only the eps terms see it.
ROBUST_RMS = 0.05


@dataclass(frozen=True)
class Conditioning:
    """How an utterance (samples,) float32 at 16 kHz is prepared for the model: `trim_silence` drops leading
    and trailing digital silence; `target_rms` (if set) scales the rest to that RMS."""

    name: str
    trim_silence: bool = False
    target_rms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


PAPER = Conditioning("paper")
ROBUST = Conditioning("robust", trim_silence=True, target_rms=ROBUST_RMS)
CONDITIONINGS = {c.name: c for c in (PAPER, ROBUST)}


def get_conditioning(value: str | dict | Conditioning | None, default: Conditioning = PAPER) -> Conditioning:
    """A `Conditioning` from its name ("paper", "robust"), its dict (as stored in a bundle), or itself."""
    if value is None:
        return default
    if isinstance(value, Conditioning):
        return value
    if isinstance(value, str):
        if value not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {value!r}; expected one of {sorted(CONDITIONINGS)}")
        return CONDITIONINGS[value]
    if isinstance(value, dict):
        return Conditioning(**value)
    raise TypeError(f"conditioning must be a name, a dict or a Conditioning, got {type(value).__name__}")


def speech_span(wav: np.ndarray, min_samples: int) -> tuple[int, int]:
    """[start, stop) of `wav` without its leading and trailing digital silence, widened (within the utterance)
    to at least `min_samples`. An all-zero utterance keeps its whole span."""
    magnitude = np.abs(wav)
    peak = float(magnitude.max()) if wav.size else 0.0
    if peak == 0.0:
        return 0, wav.shape[0]
    loud = np.flatnonzero(magnitude > peak * SILENCE_BELOW_PEAK)
    start, stop = int(loud[0]), int(loud[-1]) + 1
    missing = min_samples - (stop - start)
    if missing > 0:
        start = max(0, start - (missing + 1) // 2)
        stop = min(wav.shape[0], start + min_samples)
        start = max(0, stop - min_samples)
    return start, stop


def condition(wav: np.ndarray, conditioning: Conditioning, min_samples: int) -> tuple[np.ndarray, int]:
    """(samples,) float32 at 16 kHz -> (the conditioned utterance, how many samples were trimmed at its start)."""
    start = 0
    if conditioning.trim_silence:
        start, stop = speech_span(wav, min_samples)
        wav = wav[start:stop]
    if conditioning.target_rms is not None:
        rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
        if rms > 0:
            wav = (wav.astype(np.float64) * (conditioning.target_rms / rms)).astype(np.float32)
    return np.ascontiguousarray(wav, dtype=np.float32), start
