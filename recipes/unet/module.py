"""LightningModule of the U-Net spectrogram denoiser (METHOD.md section 5): supervised on (noisy, clean) pairs, loss
on power-law compressed spectra, validation by enhancement like the SE recipe (`EnhancementValidation`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from vqscore.bundle import load_bundle
from vqscore.models import UNetConfig, UNetDenoiser
from vqscore.models.unet import UNET_FEATURES

from ..common.enhancement import EnhancementValidation

# Keeps the compressed magnitude's gradient finite where a bin is (nearly) zero.
POWER_FLOOR = 1e-8


@dataclass
class Losses:
    total: torch.Tensor
    magnitude: torch.Tensor
    complex: torch.Tensor


def compressed_losses(estimate: torch.Tensor, clean: torch.Tensor, exponent: float, complex_weight: float) -> Losses:
    """Complex STFTs (batch, frames, bins) -> L1 of |S_hat|^c against |S|^c, plus `complex_weight` x the mean
    distance of the compressed complex spectra |S|^c e^(j phase) (Braun & Tashev's compressed complex loss): the
    magnitude term weighs quiet bins about as much as loud ones; the complex term also counts the noisy phase
    the mask keeps, so it lowers the mask where the noise dominates the phase."""

    def compress(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        power = spec.real.square() + spec.imag.square() + POWER_FLOOR
        magnitude = power ** (exponent / 2)
        return magnitude, spec * (magnitude / power.sqrt())

    mag_hat, cplx_hat = compress(estimate)
    mag, cplx = compress(clean)
    magnitude = (mag_hat - mag).abs().mean()
    complex_term = (cplx_hat - cplx).abs().mean()
    return Losses(magnitude + complex_weight * complex_term, magnitude, complex_term)


def unet_from_bundle(path: str) -> UNetDenoiser:
    """The U-Net of a bundle, to start training from; a bundle of another kind is an error naming it."""
    network, _ = load_bundle(path)
    if network.config.kind != "unet":
        raise ValueError(f"{path}: a U-Net starts from a U-Net bundle, not a {network.config.kind} one")
    return network


class UNetModule(EnhancementValidation):
    """The U-Net (`channels`, `kernel_size`, `leaky_slope`: `UNetConfig`) trained with Adam on `compressed_losses`;
    from random weights, or from the weights of the U-Net bundle `init_bundle` (a specialist fine-tuned from the
    general model: the architecture then comes from the bundle and must equal the one configured here). `n_fft`
    (the Hann window too) and `hop_length` set its STFT, 512 and 128 by default (`UNET_FEATURES`)."""

    def __init__(
        self,
        channels: tuple[int, ...] = (8, 16, 32, 64),
        kernel_size: int = 3,
        leaky_slope: float = 0.1,
        exponent: float = 0.3,
        complex_weight: float = 0.3,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        seed: int = 0,
        score_model: str = "default",
        init_bundle: str | None = None,
        n_fft: int = UNET_FEATURES.n_fft,
        hop_length: int = UNET_FEATURES.hop_length,
    ):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        features = replace(UNET_FEATURES, n_fft=n_fft, win_length=n_fft, hop_length=hop_length)
        config = UNetConfig(
            num_bins=features.num_bins, channels=tuple(channels), kernel_size=kernel_size, leaky_slope=leaky_slope
        )
        self.model = UNetDenoiser(config, features)
        if init_bundle is not None:
            network = unet_from_bundle(init_bundle)
            if network.config != config or network.features != features:
                raise ValueError(
                    f"{init_bundle}: bundle U-Net {network.config}, {network.features} differs from the configured "
                    f"{config}, {features}"
                )
            self.model.load_state_dict(network.state_dict())

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        noisy, clean = batch  # (batch, samples) each, at 16 kHz
        noisy_stft = self.model.stft(noisy)
        estimate = self.model(self.model.spectrum(noisy_stft)) * noisy_stft
        losses = compressed_losses(estimate, self.model.stft(clean), self.hparams.exponent, self.hparams.complex_weight)
        self.log_dict(
            {"train/loss": losses.total, "train/magnitude": losses.magnitude, "train/complex": losses.complex},
            prog_bar=True,
            on_step=True,
        )
        return losses.total

    def enhance_numpy(self, wav: np.ndarray) -> np.ndarray:
        return self.model.enhance(torch.from_numpy(wav)).cpu().numpy()

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))
