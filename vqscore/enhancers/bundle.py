"""Enhancers from trained weights, kind "bundle": a shipped name ("default-se", "vqscore-unet-general",
"NAME@VERSION"), a bundle JSON/.safetensors path, or an official SE checkpoint. What the weights are decides how they
enhance: an SE VQ-VAE by resynthesis (`vqse.py`), a U-Net denoiser by its mask (`unet.py`); a QE model is refused."""

from __future__ import annotations

import os
from pathlib import Path

from ..api import load
from ..bundle import BundleError, BundleInfo, find_shipped, load_bundle, read_info, resolve_json
from ..official import looks_official
from .base import Enhancer, EnhancerError
from .unet import UNetEnhancer
from .vqse import VQSEEnhancer

KIND = "bundle"


def find_info(model: str) -> BundleInfo:
    """The bundle `model` names (a path or a shipped name); `EnhancerError` when there is none."""
    path = Path(os.path.expanduser(model))
    try:
        if path.suffix in (".json", ".safetensors") or path.exists():
            return read_info(resolve_json(path))
        return find_shipped(model)
    except BundleError as exc:
        raise EnhancerError(f"enhancer {KIND!r}: no bundle {model!r} ({exc})") from None


def build(model: str = "default-se", device: str | None = None) -> Enhancer:
    """model: shipped bundle name, bundle path or official SE checkpoint path; device: "cpu" (default), "cuda", ..."""
    model = os.fspath(model)
    if looks_official(model):
        if not Path(model).is_file():
            raise EnhancerError(f"enhancer {KIND!r}: no bundle {model!r} (no such checkpoint file)")
        return VQSEEnhancer(load(model, device))
    info = find_info(model)
    try:
        if info.kind == "se":
            return VQSEEnhancer(load(info.path, device))
        if info.kind == "unet":
            network, info = load_bundle(info.path, device)
            return UNetEnhancer(network, info)
    except BundleError as exc:  # found, but unusable: corrupt weights, a config that does not fit them
        raise EnhancerError(f"enhancer {KIND!r}: cannot use bundle {model!r} ({exc})") from exc
    raise EnhancerError(
        f"enhancer {KIND!r}: {info.name}@{info.version} ({info.path}) is a {info.kind.upper()} model, not an enhancer "
        "(an SE or U-Net bundle is needed)"
    )
