"""A speaker-aware enhancer, kind "pitch-routed": two enhancers, one for low voices and one for high voices, and the
input's own pitch decides which runs.

The SSEMS paper's specialists split by gender; the U-Net pair vqscore-unet-pitch-low/-high is trained on the training
speakers below and above 165 Hz (recipes/unet/pitch_split.py), and each beats the other by 0.06-0.07 PESQ on its own
half of the voices, on the validation and the test set (benchmarks/results/pitch). The route is
`vqscore.pitch.median_f0` of the noisy input: no label, no reference. An input with no voiced frame (noise only,
silence, too short to tell) goes to the `unvoiced` side.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from ..pitch import SPLIT_HZ, median_f0
from . import bundle
from .base import Enhancer
from .checks import utterance

SIDES = ("low", "high")


def check_route(threshold_hz: float, unvoiced: str) -> None:
    """ValueError for a threshold that is not a positive frequency or an `unvoiced` side that does not exist."""
    if unvoiced not in SIDES:
        raise ValueError(f"unvoiced must be one of {', '.join(SIDES)}, got {unvoiced!r}")
    if not 0 < threshold_hz < math.inf:
        raise ValueError(f"threshold_hz must be a positive number of Hz, got {threshold_hz!r}")


class PitchRouted:
    """wav: (samples,) float32 at 16 kHz -> the `low` enhancer's output when its median F0 is below `threshold_hz`,
    else the `high` one's (`unvoiced` when it has no voiced frame)."""

    def __init__(self, low: Enhancer, high: Enhancer, threshold_hz: float = SPLIT_HZ, unvoiced: str = "high"):
        check_route(threshold_hz, unvoiced)
        self.low, self.high = low, high
        self.threshold_hz = float(threshold_hz)
        self.unvoiced = unvoiced
        self.name = f"pitch-routed({low.name} < {self.threshold_hz:g} Hz <= {high.name})"
        # both sides' weights, in order: what a cache of this enhancer's outputs must be keyed by
        sides = [getattr(e, "weights_sha256", e.name) for e in (low, high)]
        self.weights_sha256 = hashlib.sha256("\n".join(sides).encode()).hexdigest()

    def route(self, wav: np.ndarray) -> str:
        """Which side enhances `wav`: "low" or "high"."""
        f0 = median_f0(wav)
        if math.isnan(f0):
            return self.unvoiced
        return "low" if f0 < self.threshold_hz else "high"

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        x = utterance(wav, self.name)
        return (self.low if self.route(x) == "low" else self.high).enhance(x)


def build(
    low: str = "vqscore-unet-pitch-low",
    high: str = "vqscore-unet-pitch-high",
    threshold_hz: float = SPLIT_HZ,
    unvoiced: str = "high",
    device: str | None = None,
) -> PitchRouted:
    """low, high: enhancer bundles (as kind "bundle" takes them); threshold_hz: the median F0 that separates them;
    unvoiced: the side for inputs without a voiced frame; device: where both run."""
    check_route(threshold_hz, unvoiced)  # before loading any weights
    return PitchRouted(bundle.build(low, device), bundle.build(high, device), threshold_hz, unvoiced)
