"""What the QE and SE VQ-VAEs share: a config record, masks from frame counts, and the encode/quantize/decode
contract the scoring engine and the trainers use.

Public tensors are frames-major: spectra (batch, frames, bins), latents (batch, frames, dim).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..features import StftConfig
from ..quantizer import Quantized, VectorQuantizer


def config_record(cls, data: dict, tuples: tuple[str, ...] = ()):
    """A frozen config dataclass from its JSON dict: unknown fields refused by name, JSON lists back to tuples."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    values = dict(data)
    for name in tuples:
        if name in values:
            values[name] = tuple(values[name])
    return cls(**values)


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyper-parameters shared by both model kinds; each kind's subclass fixes its defaults."""

    kind: str
    num_bins: int
    widths: tuple[int, int, int]
    codebook_size: int
    codebook_dim: int
    distance: str
    kernel_size: int = 7
    leaky_slope: float = 0.3
    ema_decay: float = 0.8
    kmeans_iters: int = 10

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VQVAEConfig:
        return config_record(cls, data, tuples=("widths",))


def padding_mask(frames: torch.Tensor | None, max_frames: int, device: torch.device) -> torch.Tensor | None:
    """(batch,) frame counts -> (batch, 1, max_frames) float mask, or None when no utterance is padded."""
    if frames is None or bool((frames == max_frames).all()):
        return None
    valid = torch.arange(max_frames, device=device)[None, :] < frames.to(device)[:, None]
    return valid[:, None, :].float()


def make_quantizer(config: VQVAEConfig) -> VectorQuantizer:
    return VectorQuantizer(
        config.codebook_size, config.codebook_dim, config.distance, decay=config.ema_decay, kmeans_iters=config.kmeans_iters
    )


class VQVAE(nn.Module):
    """Encoder -> vector quantizer -> decoder over a magnitude spectrum.

    Subclasses build their encoder and decoder (in that order, which fixes how a seeded build draws its weights)
    and hand them here; the codebook follows from the config.
    """

    def __init__(self, config: VQVAEConfig, features: StftConfig, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.config = config
        self.features = features
        self.encoder = encoder
        self.quantizer = make_quantizer(config)
        self.decoder = decoder

    def encode(self, spec: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """spec: (batch, frames, bins) -> z: (batch, frames, dim)."""
        mask = padding_mask(frames, spec.shape[1], spec.device)
        return self.encoder(spec.transpose(1, 2), mask).transpose(1, 2)

    def quantize(self, z: torch.Tensor, frames: torch.Tensor | None = None, update: bool = True) -> Quantized:
        mask = padding_mask(frames, z.shape[1], z.device)
        return self.quantizer(z, None if mask is None else mask[:, 0].bool(), update=update)

    def decode(self, zq: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """zq: (batch, frames, dim) -> spectrum estimate (batch, frames, bins)."""
        mask = padding_mask(frames, zq.shape[1], zq.device)
        return self.decoder(zq.transpose(1, 2), mask).transpose(1, 2)

    def num_parameters(self, part: str | None = None) -> int:
        module = self if part is None else getattr(self, part)
        return sum(p.numel() for p in module.parameters()) + (
            self.quantizer.codebook.numel() if part in (None, "quantizer") else 0
        )
