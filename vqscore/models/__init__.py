"""Model kinds, built from their config records: the VQ-VAEs ("qe", "se") and the U-Net denoiser ("unet")."""

from __future__ import annotations

from .base import VQVAE, VQVAEConfig
from .qe import QEVQVAE, QEConfig
from .se import SEVQVAE, SEConfig
from .unet import UNetConfig, UNetDenoiser

# What a bundle can hold. Only the VQ-VAEs score (`vqscore.load`); a U-Net is an enhancer (`vqscore.enhancers`).
ModelConfig = VQVAEConfig | UNetConfig
Network = VQVAE | UNetDenoiser

CONFIGS: dict[str, type[VQVAEConfig] | type[UNetConfig]] = {"qe": QEConfig, "se": SEConfig, "unet": UNetConfig}
MODELS: dict[str, type[VQVAE] | type[UNetDenoiser]] = {"qe": QEVQVAE, "se": SEVQVAE, "unet": UNetDenoiser}
VQVAE_KINDS = ("qe", "se")


def config_from_dict(data: dict) -> ModelConfig:
    kind = data.get("kind")
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(CONFIGS)}")
    return CONFIGS[kind].from_dict(data)


def build_model(config: dict | ModelConfig, features=None) -> Network:
    """A model of the kind named by `config` ('qe', 'se' or 'unet'), with its own feature config unless one is given."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    model_cls = MODELS[config.kind]
    return model_cls(config) if features is None else model_cls(config, features)


__all__ = [
    "VQVAE",
    "VQVAEConfig",
    "QEConfig",
    "QEVQVAE",
    "SEConfig",
    "SEVQVAE",
    "UNetConfig",
    "UNetDenoiser",
    "ModelConfig",
    "Network",
    "build_model",
    "config_from_dict",
    "CONFIGS",
    "MODELS",
    "VQVAE_KINDS",
]
