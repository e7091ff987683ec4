"""The self-supervised enhancement VQ-VAE (METHOD.md section 2): mean-removal CNN + Transformer encoder,
Euclidean codebook, Transformer + CNN decoder, log1p spectrum at hop 128."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..features import SE_FEATURES, StftConfig
from ..nn import (
    apply_mask,
    decoder_convs,
    encoder_convs,
    masked_mean_removal,
    run_decoder_convs,
    run_encoder_convs,
    run_transformer,
    transformer_stack,
)
from .base import VQVAE, VQVAEConfig

RESYNTHESES = ("decoder", "mask")


@dataclass(frozen=True)
class SEConfig(VQVAEConfig):
    kind: str = "se"
    num_bins: int = 257
    widths: tuple[int, int, int] = (200, 150, 128)
    codebook_size: int = 4096
    codebook_dim: int = 128
    distance: str = "euclidean"
    heads: int = 8
    feedforward: int = 128
    dropout: float = 0.4
    transformer_layers: int = 2
    # How enhancing turns the decoder's magnitude into a waveform (`vqscore.enhance.resynthesize`): "decoder" is
    # METHOD.md's (the decoder's magnitude, the noisy phase); "mask" uses it as a gain on the noisy STFT,
    # min(1, decoded / noisy magnitude) ** mask_exponent, which keeps what the noisy input already has right.
    resynthesis: str = "decoder"
    mask_exponent: float = 1.0

    def __post_init__(self) -> None:
        if self.resynthesis not in RESYNTHESES:
            raise ValueError(f"unknown resynthesis {self.resynthesis!r}; expected one of {RESYNTHESES}")
        if not 0.0 < self.mask_exponent <= 4.0:
            raise ValueError(f"mask_exponent {self.mask_exponent} must be in (0, 4]")


def make_transformer(config: SEConfig) -> nn.TransformerEncoder:
    return transformer_stack(config.codebook_dim, config.heads, config.feedforward, config.dropout, config.transformer_layers)


class SEEncoder(nn.Module):
    def __init__(self, config: SEConfig):
        super().__init__()
        if config.widths[2] != config.codebook_dim:
            raise ValueError(f"encoder output width {config.widths[2]} must equal codebook_dim {config.codebook_dim}")
        self.slope = config.leaky_slope
        self.convs = encoder_convs(config.num_bins, config.widths, config.kernel_size)
        self.transformer = make_transformer(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, bins, frames) -> z: (batch, dim, frames)."""

        def block(_: int, y: torch.Tensor) -> torch.Tensor:
            return masked_mean_removal(F.leaky_relu(y, self.slope), mask)

        x = masked_mean_removal(apply_mask(x, mask), mask)
        enc5, enc6 = run_encoder_convs(self.convs, x, block)
        return masked_mean_removal(run_transformer(self.transformer, enc5 + enc6, mask), mask)


class SEDecoder(nn.Module):
    def __init__(self, config: SEConfig):
        super().__init__()
        self.slope = config.leaky_slope
        self.transformer = make_transformer(config)
        self.convs = decoder_convs(config.num_bins, config.widths, config.kernel_size)

    def forward(self, zq: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        y = run_transformer(self.transformer, apply_mask(zq, mask), mask)
        return run_decoder_convs(self.convs, y, self.slope, mask)


class SEVQVAE(VQVAE):
    """The enhancer: 16 kHz audio -> log1p |STFT| (hop 128) -> z (dim 128) -> Euclidean codebook -> decoder."""

    def __init__(self, config: SEConfig | None = None, features: StftConfig = SE_FEATURES):
        config = config or SEConfig()
        super().__init__(config, features, SEEncoder(config), SEDecoder(config))
