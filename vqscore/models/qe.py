"""The quality-estimation VQ-VAE (METHOD.md section 1): InstanceNorm CNN encoder, cosine codebook."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..features import QE_FEATURES, StftConfig
from ..nn import apply_mask, decoder_convs, encoder_convs, masked_instance_norm, run_decoder_convs, run_encoder_convs
from .base import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class QEConfig(VQVAEConfig):
    kind: str = "qe"
    num_bins: int = 257
    widths: tuple[int, int, int] = (128, 64, 32)
    codebook_size: int = 2048
    codebook_dim: int = 32
    distance: str = "cosine"


class QEEncoder(nn.Module):
    """IN on the input, then six convs; layers 1-5 are IN(LeakyReLU(conv)), layer 6 is IN(conv)."""

    def __init__(self, config: QEConfig):
        super().__init__()
        if config.widths[2] != config.codebook_dim:
            raise ValueError(f"encoder output width {config.widths[2]} must equal codebook_dim {config.codebook_dim}")
        self.slope = config.leaky_slope
        self.convs = encoder_convs(config.num_bins, config.widths, config.kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, bins, frames) -> z: (batch, dim, frames)."""

        def block(i: int, y: torch.Tensor) -> torch.Tensor:
            if i < 5:
                y = F.leaky_relu(y, self.slope)
            return apply_mask(masked_instance_norm(y, mask), mask)

        x = apply_mask(masked_instance_norm(x, mask), mask)
        return run_encoder_convs(self.convs, x, block)[1]


class QEDecoder(nn.Module):
    def __init__(self, config: QEConfig):
        super().__init__()
        self.slope = config.leaky_slope
        self.convs = decoder_convs(config.num_bins, config.widths, config.kernel_size)

    def forward(self, zq: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return run_decoder_convs(self.convs, apply_mask(zq, mask), self.slope, mask)


class QEVQVAE(VQVAE):
    """The VQScore model: 16 kHz audio -> linear |STFT| (hop 256) -> z (dim 32) -> cosine codebook."""

    def __init__(self, config: QEConfig | None = None, features: StftConfig = QE_FEATURES):
        config = config or QEConfig()
        super().__init__(config, features, QEEncoder(config), QEDecoder(config))
