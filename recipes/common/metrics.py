"""Validation metrics of the recipes: correlations (numpy only, so QE training does not need scipy) and the
intrusive enhancement measures (PESQ, STOI) the SE recipe selects checkpoints by."""

from __future__ import annotations

import numpy as np


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def ranks(x) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho needs."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=r)
    return sums[inverse] / counts[inverse]


def spearman(x, y) -> float:
    return pearson(ranks(x), ranks(y))


def intrusive_quality(clean: np.ndarray, estimate: np.ndarray, rate: int = 16_000) -> dict[str, float]:
    """Wide-band PESQ and STOI of `estimate` against `clean` ((samples,) at `rate`, cut to the shorter);
    PESQ is NaN where it finds no speech. Needs the `eval` extra (pesq, pystoi)."""
    from pesq import pesq
    from pystoi import stoi

    n = min(clean.shape[0], estimate.shape[0])
    clean, estimate = clean[:n].astype(np.float64), estimate[:n].astype(np.float64)
    try:
        value = float(pesq(rate, clean, estimate, "wb"))
    except Exception:  # pesq raises on inputs it finds no speech in
        value = float("nan")
    return {"pesq": value, "stoi": float(stoi(clean, estimate, rate, extended=False))}
