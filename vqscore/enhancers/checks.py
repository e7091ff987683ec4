"""What every enhancer checks of its input and output, so that the contract of `base.py` holds whatever runs inside:
(samples,) float32 at 16 kHz in, the same length out."""

from __future__ import annotations

import numpy as np

from .base import EnhancerError


def utterance(wav: np.ndarray, name: str) -> np.ndarray:
    """`wav` as a contiguous (samples,) float32 array; `EnhancerError` naming the enhancer if it is not one
    utterance of finite samples."""
    x = np.ascontiguousarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise EnhancerError(f"{name}: expected one utterance (samples,) at 16 kHz, got an array of shape {x.shape}")
    if not np.isfinite(x).all():
        raise EnhancerError(f"{name}: the input has NaN or infinite samples")
    return x


def same_length(y: np.ndarray, n: int) -> np.ndarray:
    """An output cut or zero-padded to the input's `n` samples, as float32: some packages return a few samples more
    or fewer than they were given (their frame grid), which would misalign any comparison with the input."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    return y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))
