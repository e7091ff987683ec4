"""The U-Net spectrogram denoiser (METHOD.md section 5): a small 2-D U-Net over (frequency, time) of the noisy
log1p |STFT| that predicts a mask in [0, 1]; the masked noisy STFT (so the noisy phase) is inverted to exactly the
input's length. Trained supervised on (noisy, clean) pairs (`recipes/unet`); sized for CPU training.

Public tensors are frames-major like the VQ-VAEs': spectra and masks (batch, frames, bins), waveforms
(batch, samples) or (samples,) float32 at 16 kHz. Any length: the spectrum is padded inside to the down-sampling
multiple and the mask cropped back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..features import StftConfig, apply_transform, complex_stft, magnitude_from_complex, make_window
from .base import config_record

UNET_FEATURES = StftConfig(n_fft=512, win_length=512, hop_length=128, window="hann", transform="log1p")


@dataclass(frozen=True)
class UNetConfig:
    """`channels[i]` is the width of level i + 1: a strided stem halves frequency and time before the first level and
    each further level halves them again (max-pool 2x2), so the spectrum is padded to a multiple of
    2 ** len(channels) frames and bins. Full resolution holds only the stem and the output convolution: on a CPU
    the cost of a level is its pixels x width^2, and halving both axes first is what makes the network cheap."""

    kind: str = "unet"
    num_bins: int = 257
    channels: tuple[int, ...] = (8, 16, 32, 64)
    kernel_size: int = 3
    leaky_slope: float = 0.1

    def __post_init__(self) -> None:
        if self.kind != "unet":
            raise ValueError(f"UNetConfig.kind must be 'unet', got {self.kind!r}")
        if len(self.channels) < 1 or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be one or more positive widths, got {self.channels}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-size convolutions), got {self.kernel_size}")

    @property
    def multiple(self) -> int:
        """Frames and bins are padded to a multiple of this before the U-Net."""
        return 2 ** len(self.channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        return config_record(cls, data, tuples=("channels",))


class ConvBlock(nn.Sequential):
    """Two same-size convolutions, each with batch norm and a leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, slope: float):
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers += [
                nn.Conv2d(c, c_out, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(slope),
            ]
        super().__init__(*layers)


class UNetDenoiser(nn.Module):
    """16 kHz audio -> log1p |STFT| (hann 512, hop 128) -> U-Net -> mask in [0, 1] x noisy STFT -> inverse STFT."""

    def __init__(self, config: UNetConfig | None = None, features: StftConfig = UNET_FEATURES):
        super().__init__()
        config = config or UNetConfig()
        if features.num_bins != config.num_bins:
            raise ValueError(f"features give {features.num_bins} bins, the config expects {config.num_bins}")
        self.config = config
        self.features = features
        widths, k, slope = config.channels, config.kernel_size, config.leaky_slope
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], k, stride=2, padding=k // 2), nn.LeakyReLU(slope))
        self.down = nn.ModuleList(
            ConvBlock(c_in, c_out, k, slope) for c_in, c_out in zip((widths[0], *widths[:-1]), widths, strict=True)
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(len(widths) - 1))
        self.merge = nn.ModuleList(ConvBlock(2 * widths[i], widths[i], k, slope) for i in range(len(widths) - 1))
        # back to full resolution, where the input spectrum itself (a skip from the stem's input) gives the mask its
        # fine detail: harmonics are a few bins apart
        self.unstem = nn.ConvTranspose2d(widths[0], widths[0], 2, stride=2)
        self.head = nn.Conv2d(widths[0] + 1, 1, k, padding=k // 2)
        # channels-last convolutions run ~2x faster on CPU (oneDNN) at these small widths; weights keep the layout
        # through load_state_dict, bundles store plain contiguous tensors
        self.to(memory_format=torch.channels_last)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ spectra

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: (batch, samples) float32 at 16 kHz, samples >= `features.min_samples` -> complex (batch, frames, bins)."""
        return complex_stft(wav, self.features)

    def spectrum(self, stft: torch.Tensor) -> torch.Tensor:
        """Complex (batch, frames, bins) -> the U-Net's input log1p |STFT| (batch, frames, bins)."""
        return apply_transform(magnitude_from_complex(stft), self.features)

    def istft(self, stft: torch.Tensor, length: int) -> torch.Tensor:
        """Complex (batch, frames, bins) -> (batch, length) at 16 kHz (exact inverse of `stft` when unmodified)."""
        f = self.features
        return torch.istft(
            stft.transpose(1, 2),
            f.n_fft,
            hop_length=f.hop_length,
            win_length=f.win_length,
            window=make_window(f.window, f.win_length, stft.device),
            center=True,
            onesided=True,
            length=length,
        )

    # ------------------------------------------------------------------ network

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: (batch, frames, bins) log1p |STFT| -> mask (batch, frames, bins) in [0, 1]."""
        frames, bins = spec.shape[1], spec.shape[2]
        m = self.config.multiple
        # zeros are silence in the log1p domain; padded frames and bins are cropped from the mask below
        full = F.pad(spec.transpose(1, 2)[:, None], (0, -frames % m, 0, -bins % m))
        full = full.contiguous(memory_format=torch.channels_last)
        x = self.stem(full)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for level in reversed(range(len(self.up))):
            x = self.merge[level](torch.cat([self.up[level](x), skips[level]], dim=1))
        x = torch.cat([self.unstem(x), full], dim=1)
        mask = torch.sigmoid(self.head(x))[:, 0, :bins, :frames]
        return mask.transpose(1, 2)

    def denoise(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: (batch, samples) float32 at 16 kHz (samples >= `features.min_samples`) -> (batch, samples)."""
        stft = self.stft(wav)
        return self.istft(self(self.spectrum(stft)) * stft, wav.shape[-1])

    @torch.inference_mode()
    def enhance(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: (samples,) float32 at 16 kHz, any length -> enhanced (samples,) float32 at 16 kHz (the whole
        utterance at once: memory grows with its length; `vqscore.enhancers.unet` windows long recordings)."""
        n = wav.shape[-1]
        short = self.features.min_samples - n
        x = F.pad(wav, (0, short)) if short > 0 else wav  # reflect padding needs more than n_fft / 2 samples
        device = next(self.parameters()).device
        return self.denoise(x.to(device, torch.float32)[None])[0, :n]
