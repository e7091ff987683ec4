"""Pooling: how the per-frame cos(z_t, zq_t) of an utterance become its VQScore.

The paper takes the mean over frames ("mean"). Listeners judge a recording by more than its average frame, as
perceptual models such as PESQ and POLQA know: `benchmarks/pooling.py` measures the alternatives against human
ratings. Frames that are NaN (none in scored audio) are left out; all-NaN frames pool to NaN.
"""

from __future__ import annotations

import numpy as np

POOLINGS = ("mean", "median", "p25", "p10")


def check_pooling(name: str) -> str:
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; expected one of {list(POOLINGS)}")
    return name


def pool(frames: np.ndarray, name: str) -> float:
    """One number from per-frame scores (frames,): the mean, the median, or the 25th / 10th percentile."""
    values = np.asarray(frames, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    if name == "mean":
        return float(values.mean())
    if name == "median":
        return float(np.median(values))
    if name == "p25":
        return float(np.percentile(values, 25))
    if name == "p10":
        return float(np.percentile(values, 10))
    raise ValueError(f"unknown pooling {name!r}; expected one of {list(POOLINGS)}")
