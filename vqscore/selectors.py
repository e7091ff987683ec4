"""Selectors: how an ensemble picks one output per utterance (SSEMS, METHOD.md section 3).

A selector gives each candidate output a number, higher meaning better, and the ensemble keeps the argmax (ties:
the first member listed), or, given a temperature, mixes the outputs with softmax weights of those numbers (a soft
pick: `weights`). All candidates are `(samples,) float32 at 16 kHz` of one utterance.

- "vqscore" (the default): the VQScore of each output; no labels, no reference. `model` is a QE model or a bag of
  them (`vqscore.bag`: the mean of the members' VQScores). `pooling` overrides how the model pools its frames
  (the shipped ensemble uses "mean": candidates of one utterance differ in every frame a little, which the mean
  sees and a low percentile does not; benchmarks/results/selection).
- "ae-error": the paper's baseline, the autoencoder's reconstruction error (the QE VQ-VAE's decoder, `Score.l2_x`,
  reported negated so that higher is better).
- "dnsmos": DNSMOS P.835 OVRL, a supervised peer (the `eval` extra).
- "oracle-pesq": wide-band PESQ against the clean reference; for benchmarks only (a reference is required).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

RATE = 16_000


class Selector(Protocol):
    name: str  # what the number is, for tables: "vqscore (vqscore-qe-cleanspeech@2.0.0)"
    needs_reference: bool

    def scores(self, outputs: Sequence[np.ndarray], reference: np.ndarray | None = None) -> np.ndarray:
        """outputs: K candidates (samples,) float32 at 16 kHz -> (K,) float64, higher is better."""
        ...


class VQScoreSelector:
    needs_reference = False

    def __init__(self, model: str = "default", pooling: str | None = None, device: str | None = None):
        from .bag import load_scorer  # the score path, only when a VQScore selector is built

        self.model = load_scorer(model, device=device)
        if pooling is not None:
            self.model = self.model.with_pooling(pooling)
        self.name = f"vqscore ({self.model.tag}, pooling {self.model.pooling})"

    def scores(self, outputs: Sequence[np.ndarray], reference: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.model.vqscore(list(outputs), sr=RATE), dtype=np.float64)


class AEErrorSelector:
    needs_reference = False

    def __init__(self, model: str = "default", device: str | None = None):
        from .api import load

        self.model = load(model, device=device)
        self.name = f"-reconstruction error ({self.model.tag})"

    def scores(self, outputs: Sequence[np.ndarray], reference: np.ndarray | None = None) -> np.ndarray:
        return -np.asarray([s.l2_x for s in self.model.score(list(outputs), sr=RATE)], dtype=np.float64)


class DnsmosSelector:
    needs_reference = False
    name = "dnsmos ovrl"

    def __init__(self):
        from .dnsmos import Dnsmos

        self.dnsmos = Dnsmos()

    def scores(self, outputs: Sequence[np.ndarray], reference: np.ndarray | None = None) -> np.ndarray:
        return np.asarray([self.dnsmos(y)["dnsmos_ovrl"] for y in outputs], dtype=np.float64)


class OraclePesqSelector:
    needs_reference = True
    name = "oracle: pesq wb against the clean reference"

    def __init__(self):
        try:
            from pesq import pesq
        except ImportError as exc:
            raise ImportError(f"the PESQ oracle needs the pesq package ({exc}); pip install 'vqscore[eval]'") from exc
        self.pesq = pesq

    def scores(self, outputs: Sequence[np.ndarray], reference: np.ndarray | None = None) -> np.ndarray:
        if reference is None:
            raise ValueError("the oracle selector needs the clean reference of the utterance")
        values = []
        for y in outputs:
            n = min(len(y), len(reference))
            try:
                values.append(self.pesq(RATE, reference[:n].astype(np.float64), y[:n].astype(np.float64), "wb"))
            except Exception:  # pesq raises where it finds no speech: never the pick
                values.append(-np.inf)
        return np.asarray(values, dtype=np.float64)


SELECTORS: dict[str, Callable[..., Selector]] = {
    "vqscore": VQScoreSelector,
    "ae-error": AEErrorSelector,
    "dnsmos": DnsmosSelector,
    "oracle-pesq": OraclePesqSelector,
}


def build_selector(kind: str, **options) -> Selector:
    if kind not in SELECTORS:
        raise ValueError(f"unknown selector {kind!r}; expected one of {sorted(SELECTORS)}")
    return SELECTORS[kind](**options)


def pick(values: np.ndarray) -> int:
    """The index of the best candidate: the highest finite value, the first on a tie; 0 if none is finite."""
    values = np.where(np.isfinite(values), values, -np.inf)
    return int(np.argmax(values))


def weights(values: np.ndarray, temperature: float | None = None) -> np.ndarray:
    """(K,) float64 weights summing to 1. Without a temperature, 1 for `pick(values)` and 0 elsewhere; with one,
    softmax(values / temperature) over the finite values (a non-finite one gets 0; none finite: 1 for the first).
    The temperature is in the selector's units: for VQScore, whose outputs of one utterance differ by a few
    thousandths, 0.003 mixes near-ties about evenly and lets a clear winner dominate."""
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(values.shape[0], dtype=np.float64)
    finite = np.isfinite(values)
    if temperature is None or not finite.any():
        out[pick(values)] = 1.0
        return out
    z = (values[finite] - values[finite].max()) / temperature
    out[finite] = np.exp(z) / np.exp(z).sum()
    return out


def mix(outputs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The kept audio of a soft pick: sum of weights[k] * outputs[k], accumulated in float64 -> (samples,) float32."""
    return np.sum([w * y.astype(np.float64) for w, y in zip(weights, outputs, strict=True)], axis=0).astype(np.float32)
