"""Everything that turns user input into float32 mono 16 kHz audio. The only module that reads files.

Accepted input: a path or an open binary file in any format libsndfile reads, or a numpy array / torch tensor
with its `sr` (a whole number of Hz).
- integer PCM is scaled to [-1, 1] (int16 / 2**15, int32 / 2**31, uint8 centred on 128);
- arrays: the last axis holds the samples and leading axes are a batch (one utterance per row, like torchmetrics'
  functional metrics); `channel_axis` names an axis of channels to average first. Files' channels are averaged;
- any rate is resampled to 16 kHz with soxr (VHQ);
- float samples outside [-1, 1] are kept as they are (the models normalise level themselves) up to `MAX_AMPLITUDE`.
Problems raise `AudioError` (a ValueError) whose message starts with the input's name; inputs of the wrong type
raise `TypeError` naming what is accepted.
"""

from __future__ import annotations

import io
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .features import SAMPLE_RATE

AudioInput = str | os.PathLike | io.IOBase | np.ndarray | torch.Tensor
MAX_CHANNELS = 64
# Float samples beyond this (2**40) are refused: they overflow the float32 power spectrum (|X|^2 > 3.4e38 near
# 1e16) long before, and no audio convention gets anywhere near it (int32 PCM read as float peaks at 2**31).
MAX_AMPLITUDE = float(2**40)
ACCEPTED = "a path, an open binary file, a numpy array or a torch tensor"


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
    if is_file_object(source):
        label = getattr(source, "name", None)
        return label if isinstance(label, str) else f"<{type(source).__name__}>"
    if isinstance(source, (np.ndarray, torch.Tensor)):
        kind = "tensor" if isinstance(source, torch.Tensor) else "array"
        return f"<{kind} of shape {tuple(source.shape)}>"
    return f"<{type(source).__name__}>"


def is_file_object(source) -> bool:
    return hasattr(source, "read") and hasattr(source, "seek") and not isinstance(source, (str, bytes, os.PathLike))


def check_input_type(source, label: str = "audio") -> None:
    """TypeError unless `source` is one utterance's input (or batch of rows) this module reads."""
    if isinstance(source, (str, os.PathLike, np.ndarray, torch.Tensor)) or is_file_object(source):
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError(f"{label}: got {type(source).__name__}; expected {ACCEPTED} (wrap encoded audio in io.BytesIO)")
    in_list = label.endswith("]")
    hint = " (a list is a batch of inputs: pass samples as a numpy array)" if in_list and isinstance(source, numbers.Number) else ""
    raise TypeError(f"{label}: expected {ACCEPTED}, got {type(source).__name__}{hint}")


def check_rate(sr, name: str) -> int:
    """The sample rate as an int: a whole number of Hz (int, numpy integer, or a float like 16000.0)."""
    if isinstance(sr, (bool, np.bool_)) or not isinstance(sr, numbers.Real):
        raise TypeError(f"{name}: sr must be the sample rate in Hz as an int, got {type(sr).__name__} {sr!r}")
    if not float(sr).is_integer():
        raise AudioError(f"{name}: sr must be a whole number of Hz, got {sr!r}")
    return int(sr)


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
        # float64 stays float64 until it has been checked (a float32 cast would turn 1e300 into Inf and 1e-50 into 0)
        return samples if samples.dtype == np.float64 else samples.astype(np.float32, copy=False)
    if samples.dtype == np.bool_:
        raise AudioError(f"{name}: boolean array is not audio")
    raise AudioError(f"{name}: unsupported sample type {samples.dtype}")


def to_rows(samples: np.ndarray, name: str, channel_axis: int | None) -> tuple[np.ndarray, tuple[int, ...], int]:
    """An array -> ((rows, samples) float32, the leading (batch) shape, channels averaged per row).

    `channel_axis` (any axis) is averaged first; then the last axis holds the samples and the leading axes are a
    batch. A 1-D array (or (samples, channels) with channel_axis=-1) is one row with leading shape ()."""
    if samples.ndim == 0:
        raise AudioError(f"{name}: a scalar is not audio; expected (..., samples)")
    if samples.size == 0:
        raise AudioError(f"{name}: empty audio (0 samples)")
    channels = 1
    if channel_axis is not None:
        if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, numbers.Integral):
            raise TypeError(f"{name}: channel_axis must be an int (an axis of the array), got {type(channel_axis).__name__} {channel_axis!r}")
        if not -samples.ndim <= channel_axis < samples.ndim or samples.ndim < 2:
            raise AudioError(f"{name}: channel_axis={channel_axis} is not an axis of a {samples.ndim}-D array with samples")
        channels = samples.shape[channel_axis]
        if channels > MAX_CHANNELS:
            raise AudioError(f"{name}: {channels} channels; at most {MAX_CHANNELS} are accepted (is the array transposed?)")
        samples = samples.mean(axis=channel_axis, dtype=np.float64).astype(samples.dtype)
    if samples.ndim >= 2 and samples.shape[-1] <= MAX_CHANNELS:
        raise AudioError(
            f"{name}: the last axis holds the samples, so this is {int(np.prod(samples.shape[:-1]))} rows of "
            f"{samples.shape[-1]} samples; for (samples, channels) audio pass channel_axis=-1"
        )
    leading = tuple(int(d) for d in samples.shape[:-1])
    return samples.reshape(-1, samples.shape[-1]), leading, channels


def row_name(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(str(i) for i in index)}]" if index else name


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
    peak = float(np.max(np.abs(samples)))
    if peak > MAX_AMPLITUDE:
        raise AudioError(
            f"{name}: samples reach {peak:.3g}; float audio is expected in [-1, 1] and at most {MAX_AMPLITUDE:.3g} is "
            "accepted (larger values overflow the float32 spectrum)"
        )


def check_readable(path: str | os.PathLike) -> None:
    """A clear error for a path that is not a readable file (libsndfile only says "System error")."""
    if not os.path.lexists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        try:
            with os.scandir(path):
                pass
        except OSError as exc:
            raise AudioError(f"{path}: cannot read folder ({exc.strerror})") from None
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):  # a broken symbolic link
            raise AudioError(f"{path}: no such file") from None
        raise AudioError(f"{path}: cannot read file ({exc.strerror})") from None


def read_file(path: str | os.PathLike | io.IOBase, name: str | None = None) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the file's rate, from a path or an open binary file; errors name it."""
    label = name or describe(path)
    if not is_file_object(path):
        check_readable(path)
        path = os.fspath(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioError(f"{label}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(f"{label}: cannot read audio ({exc})") from exc
    return data, int(sr)


def load_audio(source: AudioInput, sr: int | None = None, name: str | None = None, channel_axis: int | None = None) -> Audio:
    """One utterance -> `Audio` (float32 mono 16 kHz). `sr` is required for arrays and tensors, which must hold one
    row: (samples,), or several channels with `channel_axis`. Batches of rows: `load_rows`."""
    rows, leading = load_rows(source, sr, name, channel_axis)
    if leading:
        label = describe(source, name)
        raise AudioError(
            f"{label}: one utterance was expected, got a batch of shape {leading} (the last axis holds the samples; "
            "pass channel_axis= to average channels)"
        )
    return rows[0]


def load_rows(
    source: AudioInput, sr: int | None = None, name: str | None = None, channel_axis: int | None = None
) -> tuple[list[Audio], tuple[int, ...]]:
    """Any accepted input -> its utterances as `Audio` (float32 mono 16 kHz) and their leading (batch) shape:
    a path or file gives one utterance and shape (); an array (..., samples) one per row, in row-major order."""
    check_input_type(source)
    label = describe(source, name)
    if isinstance(source, (str, os.PathLike)) or is_file_object(source):
        if sr is not None:
            kind = "path" if isinstance(source, (str, os.PathLike)) else "file object"
            raise AudioError(f"{label}: sr is read from the file; do not pass sr with a {kind}")
        data, rate = read_file(source, label)
        channels = data.shape[1]
        samples = data.T.mean(axis=0, dtype=np.float64).astype(np.float32) if channels > 1 else data[:, 0]
        return [finish(samples, rate, channels, label)], ()
    if sr is None:
        raise AudioError(f"{label}: sr (the sample rate in Hz) is required with an array or tensor")
    rate = check_rate(sr, label)
    if isinstance(source, torch.Tensor):
        source = tensor_to_numpy(source, label)
    rows, leading, channels = to_rows(to_float(np.asarray(source), label), label, channel_axis)
    indices = list(np.ndindex(*leading)) if leading else [()]
    return [finish(row, rate, channels, row_name(label, idx)) for row, idx in zip(rows, indices, strict=True)], leading


def tensor_to_numpy(tensor: torch.Tensor, label: str) -> np.ndarray:
    if tensor.device.type == "meta":
        raise AudioError(f"{label}: a meta tensor holds no samples")
    tensor = tensor.detach().cpu()
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # bfloat16, float16, float8: numpy has no such types (float16 it has, but this is exact)
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError):
        raise AudioError(f"{label}: unsupported sample type {tensor.dtype}") from None


def finish(samples: np.ndarray, rate: int, channels: int, label: str) -> Audio:
    check_finite(samples, label)
    samples = np.ascontiguousarray(resample(samples.astype(np.float32, copy=False), rate, label), dtype=np.float32)
    return Audio(samples=samples, name=label, source_rate=rate, source_channels=channels)


def write_audio(path: str | os.PathLike, samples: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fspath(path), np.asarray(samples, dtype=np.float32), sr, subtype="FLOAT" if path.suffix.lower() == ".wav" else None)
    return path
