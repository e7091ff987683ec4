"""An optional 1-5 scale for the raw VQScore: a monotone piecewise-linear map fitted on human ratings.

The raw cosine lives in a narrow band that means nothing to a reader; users of DNSMOS and NISQA expect a MOS-like
number. A bundle may carry a `MosScale` fitted on listeners' ratings (`benchmarks/fit_mos_scale.py`) for the
conditioning and pooling it declares; `Model.mos` applies it. Being monotone, it changes no ranking (SRCC); it only
puts the numbers on the listeners' scale. `Score.cos_z` stays the raw value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MosScale:
    """knots_x (raw VQScores, increasing) -> knots_y (MOS, non-decreasing, within 1-5); linear between knots,
    constant beyond. `conditioning` and `pooling` are those of the scores it was fitted on; `fitted_on` says which
    ratings."""

    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]
    conditioning: str
    pooling: str
    fitted_on: str = ""

    def __post_init__(self) -> None:
        x, y = np.asarray(self.knots_x), np.asarray(self.knots_y)
        if x.shape != y.shape or x.size < 2:
            raise ValueError("a MosScale needs at least two knots, as many x as y")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("MosScale knots must increase in x and not decrease in y")
        if y.min() < 1 or y.max() > 5:
            raise ValueError("MosScale values must lie within 1-5")

    def __call__(self, raw):
        """MOS of raw VQScores (a float or an array; NaN stays NaN)."""
        values = np.asarray(raw, dtype=np.float64)
        out = np.interp(values, self.knots_x, self.knots_y)
        out = np.where(np.isnan(values), np.nan, out)
        return float(out) if out.ndim == 0 else out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MosScale:
        return cls(
            tuple(float(v) for v in data["knots_x"]),
            tuple(float(v) for v in data["knots_y"]),
            str(data["conditioning"]),
            str(data["pooling"]),
            str(data.get("fitted_on", "")),
        )


def pool_adjacent_violators(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to `y` in weighted least squares (isotonic regression)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(y.astype(np.float64), weights.astype(np.float64), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(c, m) for m, _, c in blocks])


def fit_mos_scale(
    scores: np.ndarray, ratings: np.ndarray, conditioning: str, pooling: str, fitted_on: str, bins: int = 8
) -> MosScale:
    """A monotone map from raw scores to ratings: the files sorted by score are cut into `bins` groups of equal
    size, each group gives a knot (mean score, mean rating), and the knots' ratings are made non-decreasing by
    isotonic regression (weighted by group size). Few knots keep it smooth on a small rated set."""
    scores, ratings = np.asarray(scores, dtype=np.float64), np.asarray(ratings, dtype=np.float64)
    keep = np.isfinite(scores) & np.isfinite(ratings)
    scores, ratings = scores[keep], ratings[keep]
    order = np.argsort(scores, kind="mergesort")
    groups = [g for g in np.array_split(order, min(bins, len(order))) if g.size]
    x = np.array([scores[g].mean() for g in groups])
    y = pool_adjacent_violators(np.array([ratings[g].mean() for g in groups]), np.array([g.size for g in groups]))
    x, unique = np.unique(x, return_index=True)  # equal group means (ties) become one knot
    y = np.clip(y[unique], 1.0, 5.0)
    return MosScale(tuple(x.tolist()), tuple(y.tolist()), conditioning, pooling, fitted_on)
