"""Pooling: how the per-frame cos(z_t, zq_t) of an utterance become its VQScore.

The paper takes the mean over frames ("mean"). Listeners judge a recording by more than its average frame, as
perceptual models such as PESQ and POLQA know: `benchmarks/pooling.py` measures the alternatives against human
ratings. Frames that are NaN (none in scored audio) are left out; all-NaN frames pool to NaN.
"""

from __future__ import annotations

import numpy as np

_POOL = {
    "mean": np.mean,
    "median": np.median,
    "p25": lambda v: np.percentile(v, 25),
    "p10": lambda v: np.percentile(v, 10),
}
POOLINGS = tuple(_POOL)


def check_pooling(name: str) -> str:
    if name not in _POOL:
        raise ValueError(f"unknown pooling {name!r}; expected one of {list(POOLINGS)}")
    return name


def pool(frames: np.ndarray, name: str) -> float:
    """One number from per-frame scores (frames,): the mean, the median, or the 25th / 10th percentile."""
    reduce = _POOL[check_pooling(name)]
    values = np.asarray(frames, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(reduce(values)) if values.size else float("nan")
