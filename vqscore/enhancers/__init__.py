"""Enhancers behind one contract (`base.py`): each kind is built from data, `EnhancerSpec(kind, options)`, by the
builder `BUILDERS[kind]`, so an ensemble, the CLI and the benchmarks name enhancers in YAML/JSON and never branch on
kinds. A kind is added by adding its module and a line here.

    enhancer = build_enhancer(EnhancerSpec("bundle", {"model": "vqscore-unet-general"}))
    enhanced = enhancer.enhance(wav)         # (samples,) float32 at 16 kHz -> (samples,) float32 at 16 kHz

Kinds: "passthrough" (the input, "noisy"), "bundle" (an SE or U-Net bundle, or an official SE checkpoint; options
model, device), "pitch-routed" (two bundles, low and high, and the input's voice pitch picks one: `routed.py`;
options low, high, threshold_hz, unvoiced, device), "spectral-gating" (no weights; options: the `SpectralGating`
fields), "noisereduce" and "nsnet2" (third-party packages, imported when built; nsnet2 option threads).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from . import bundle, external, passthrough, routed
from .base import RATE, Enhancer, EnhancerError, EnhancerSpec
from .dsp import SpectralGating

BUILDERS: dict[str, Callable[..., Enhancer]] = {
    "passthrough": passthrough.build,
    "bundle": bundle.build,
    "pitch-routed": routed.build,
    "spectral-gating": SpectralGating,
    "noisereduce": external.NoiseReduce,
    "nsnet2": external.NSNet2,
}


def build_enhancer(spec: EnhancerSpec) -> Enhancer:
    """The enhancer `spec` describes; `EnhancerError` for an unknown kind, an option its builder does not take,
    a bundle that does not exist or cannot be used, or a missing package."""
    builder = BUILDERS.get(spec.kind)
    if builder is None:
        raise EnhancerError(f"unknown enhancer kind {spec.kind!r}; known kinds: {', '.join(sorted(BUILDERS))}")
    accepted = set(inspect.signature(builder).parameters)
    unknown = sorted(set(spec.options) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "no options"
        raise EnhancerError(f"enhancer {spec.kind!r}: unknown option(s) {', '.join(unknown)}; it takes {takes}")
    try:
        return builder(**spec.options)
    except (TypeError, ValueError) as exc:  # an option of the wrong type or out of range
        raise EnhancerError(f"enhancer {spec.kind!r}: {exc}") from exc


__all__ = ["BUILDERS", "RATE", "Enhancer", "EnhancerError", "EnhancerSpec", "SpectralGating", "build_enhancer"]
