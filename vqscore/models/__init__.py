"""Model kinds, built from their config records."""

from __future__ import annotations

from .base import VQVAE, VQVAEConfig
from .qe import QEVQVAE, QEConfig
from .se import SEVQVAE, SEConfig

CONFIGS: dict[str, type[VQVAEConfig]] = {"qe": QEConfig, "se": SEConfig}
MODELS: dict[str, type[VQVAE]] = {"qe": QEVQVAE, "se": SEVQVAE}


def config_from_dict(data: dict) -> VQVAEConfig:
    kind = data.get("kind")
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(CONFIGS)}")
    return CONFIGS[kind].from_dict(data)


def build_model(config: dict | VQVAEConfig, features=None) -> VQVAE:
    """A model of the kind named by `config` ('qe' or 'se'), with its own feature config unless one is given."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    model_cls = MODELS[config.kind]
    return model_cls(config) if features is None else model_cls(config, features)


__all__ = ["VQVAE", "VQVAEConfig", "QEConfig", "QEVQVAE", "SEConfig", "SEVQVAE", "build_model", "config_from_dict", "CONFIGS", "MODELS"]
