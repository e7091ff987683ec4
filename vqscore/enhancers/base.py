"""The one contract every enhancer keeps, so that an ensemble, the CLI and the benchmarks treat a trained bundle, a
DSP method, a third-party package and the unprocessed input alike.

An enhancer maps one mono utterance, `wav: (samples,) float32 at 16 kHz`, to its enhanced version of the same
length, float32 at 16 kHz. It raises `EnhancerError` (naming itself) when it cannot be built or run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

RATE = 16_000


class EnhancerError(RuntimeError):
    """An enhancer could not be built (missing bundle, missing package) or failed on an input."""


@runtime_checkable
class Enhancer(Protocol):
    name: str  # what it is, for tables: "noisy", "vqscore-unet-general@1.0.0", "noisereduce-3.0.3"

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        """wav: (samples,) float32 at 16 kHz -> (samples,) float32 at 16 kHz."""
        ...


@dataclass(frozen=True)
class EnhancerSpec:
    """An enhancer as data: `kind` names a builder in `vqscore.enhancers.BUILDERS`; `options` are its keyword
    arguments (e.g. {"model": "vqscore-unet-general"} for kind "bundle")."""

    kind: str
    options: dict = field(default_factory=dict)
