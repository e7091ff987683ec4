"""The self-supervised VQ enhancer (METHOD.md section 2) as an enhancer: VQ-VAE resynthesis of the noisy magnitude
with the noisy phase (`vqscore.enhance`), whole up to 30 s and in cross-faded windows beyond (`vqscore.enhance_long`),
so an hours-long input costs the memory of one window."""

from __future__ import annotations

import numpy as np

from ..api import Model
from ..audio import AudioError
from ..enhance_long import enhance_long
from .base import EnhancerError
from .checks import utterance


class VQSEEnhancer:
    """wav: (samples,) float32 at 16 kHz -> enhanced (samples,) float32 at 16 kHz, by a loaded SE `vqscore.Model`."""

    def __init__(self, model: Model):
        if model.kind != "se":
            raise EnhancerError(f"{model.name} is a {model.kind.upper()} model, not an SE (enhancement) model")
        self.model = model
        self.name = f"{model.name}@{model.info.version}" if model.info is not None else model.name
        self.tag = model.tag  # name@version#sha256-prefix: which weights made an output
        self.weights_sha256 = model.weights_sha256

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        x = utterance(wav, self.name)
        try:
            return enhance_long(self.model.network, x, self.model.enhance_policy, self.name)
        except AudioError as exc:
            raise EnhancerError(str(exc)) from exc
