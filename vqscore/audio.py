"""Everything that turns user input into float32 mono 16 kHz audio. The only module that reads files.

Accepted input: a path in any format libsndfile reads, or a numpy array / torch tensor with its `sr`.
- integer PCM is scaled to [-1, 1] (int16 / 2**15, int32 / 2**31, uint8 centred on 128);
- several channels are averaged; a 2-D array is (channels, samples) or (samples, channels), the shorter axis
  being the channels (no real recording has more channels than samples);
- any rate is resampled to 16 kHz with soxr (VHQ);
- float samples outside [-1, 1] are kept as they are (the models normalise level themselves).
Problems raise `AudioError` (a ValueError) whose message starts with the input's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .features import SAMPLE_RATE

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor
MAX_CHANNELS = 64


class AudioError(ValueError):
    """Input audio that cannot be scored; the message names the input and the problem."""


@dataclass(frozen=True)
class Audio:
    """Audio ready for a model: (samples,) float32 mono at 16 kHz, with where it came from."""

    samples: np.ndarray
    name: str
    source_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / SAMPLE_RATE


def describe(source: AudioInput, name: str | None = None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    kind = "tensor" if isinstance(source, torch.Tensor) else "array"
    return f"<{kind} of shape {tuple(source.shape)}>"


def audio_extensions() -> frozenset[str]:
    """File suffixes (lower case, with dot) of every format this libsndfile build reads."""
    extra = {".wave", ".aif", ".oga", ".opus", ".snd"}
    return frozenset({f".{fmt.lower()}" for fmt in sf.available_formats()} | extra)


def to_float(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.signedinteger):
        return samples.astype(np.float32) / float(2 ** (8 * samples.dtype.itemsize - 1))
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    if samples.dtype == np.bool_:
        raise AudioError(f"{name}: boolean array is not audio")
    raise AudioError(f"{name}: unsupported sample type {samples.dtype}")


def to_mono(samples: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """(samples,), (channels, samples) or (samples, channels) -> ((samples,), channel count)."""
    if samples.ndim == 1:
        return samples, 1
    if samples.ndim != 2:
        raise AudioError(f"{name}: expected 1-D or 2-D audio, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    channel_axis = 0 if samples.shape[0] <= samples.shape[1] else 1
    channels = samples.shape[channel_axis]
    if channels > MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels; at most {MAX_CHANNELS} are accepted (is the array transposed?)")
    return samples.mean(axis=channel_axis, dtype=np.float64).astype(np.float32), channels


def resample(samples: np.ndarray, sr: int, name: str) -> np.ndarray:
    if sr == SAMPLE_RATE:
        return samples
    if sr < 1000 or sr > 768_000:
        raise AudioError(f"{name}: sample rate {sr} Hz is outside the supported 1000-768000 Hz")
    return soxr.resample(samples, sr, SAMPLE_RATE, quality="VHQ").astype(np.float32, copy=False)


def check_finite(samples: np.ndarray, name: str) -> None:
    if samples.size == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioError(f"{name}: {bad} NaN or Inf samples")


def read_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the file's rate; any libsndfile error names the file."""
    # libsndfile reports a missing file as a generic "System error", so look first
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    try:
        data, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    return data, int(sr)


def load_audio(source: AudioInput, sr: int | None = None, name: str | None = None) -> Audio:
    """Any accepted input -> `Audio` (float32 mono 16 kHz). `sr` is required for arrays and tensors."""
    label = describe(source, name)
    if isinstance(source, (str, os.PathLike)):
        if sr is not None:
            raise AudioError(f"{label}: sr is read from the file; do not pass sr with a path")
        data, rate = read_file(source)
        samples, channels = data.T, data.shape[1]
        samples = samples.mean(axis=0, dtype=np.float64).astype(np.float32) if channels > 1 else samples[0]
    else:
        if sr is None:
            raise AudioError(f"{label}: sr (the sample rate in Hz) is required with an array or tensor")
        if isinstance(source, torch.Tensor):
            source = source.detach().cpu().numpy()
        elif not isinstance(source, np.ndarray):
            raise AudioError(f"{label}: expected a path, numpy array or torch tensor, got {type(source).__name__}")
        rate = int(sr)
        samples, channels = to_mono(to_float(np.asarray(source), label), label)
    check_finite(samples, label)
    samples = np.ascontiguousarray(resample(samples, rate, label), dtype=np.float32)
    return Audio(samples=samples, name=label, source_rate=rate, source_channels=channels)


def write_audio(path: str | os.PathLike, samples: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fspath(path), np.asarray(samples, dtype=np.float32), sr, subtype="FLOAT" if path.suffix.lower() == ".wav" else None)
    return path
