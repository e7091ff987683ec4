"""The unprocessed input as an enhancer ("noisy"): the baseline every other enhancer is compared with, and the
choice a selector makes when no enhancer helps."""

from __future__ import annotations

import numpy as np

from .checks import utterance


class Passthrough:
    """wav: (samples,) float32 at 16 kHz -> a copy of it."""

    name = "noisy"

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        return utterance(wav, self.name).copy()


def build() -> Passthrough:
    return Passthrough()
