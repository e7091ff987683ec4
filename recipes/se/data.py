"""Data for the SE recipe: clean-speech crops for training and a held-out paired noisy/clean set for validation by
enhancement. Both are shared with the other enhancement recipes and live in `recipes/common/enhancement.py`."""

from __future__ import annotations

from ..common.enhancement import EnhancementDataModule, NoisyPairs

__all__ = ["EnhancementDataModule", "NoisyPairs"]
