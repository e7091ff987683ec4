"""STFT front ends: the frozen feature configs of the QE and SE models and the transforms they name.

Every model owns one `StftConfig`; nothing else in the library decides hop, window or scaling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

SAMPLE_RATE = 16_000
# The official code clamps the power before the square root so that log1p/division never see exact zeros.
POWER_FLOOR = 1e-7


@dataclass(frozen=True)
class StftConfig:
    """How a model turns 16 kHz audio into its input spectrum."""

    n_fft: int = 512
    win_length: int = 512
    hop_length: int = 256
    window: str = "hann"  # periodic
    transform: str = "linear"  # "linear" |STFT| or "log1p" log(1 + |STFT|)
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.transform not in ("linear", "log1p"):
            raise ValueError(f"unknown spectrum transform {self.transform!r}; expected 'linear' or 'log1p'")
        if self.window not in ("hann", "hamming"):
            raise ValueError(f"unknown window {self.window!r}; expected 'hann' or 'hamming'")

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def min_samples(self) -> int:
        """Shortest input that fills one analysis window; reflect padding also needs more than n_fft // 2."""
        return self.n_fft

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


QE_FEATURES = StftConfig(hop_length=256, transform="linear")
SE_FEATURES = StftConfig(hop_length=128, transform="log1p")


@lru_cache(maxsize=32)
def make_window(kind: str, length: int, device: torch.device | None = None) -> torch.Tensor:
    """Periodic window, cached per (kind, length, device): it is rebuilt for every STFT otherwise. Never mutate it."""
    if kind == "hann":
        return torch.hann_window(length, device=device)
    return torch.hamming_window(length, device=device)


def reflect_pad_batch(wavs: list[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflect-pad each utterance on its own, then zero-pad to a common length.

    `torch.stft(center=True)` on a zero-padded batch would reflect the padding zeros instead of each
    utterance's own end, changing its last frames; padding one by one keeps every valid frame identical
    to scoring that utterance alone.
    Returns (batch, max_len + 2 * pad) and the per-utterance sample counts.
    """
    lengths = torch.tensor([w.shape[-1] for w in wavs], dtype=torch.long)
    total = int(lengths.max()) + 2 * pad
    out = wavs[0].new_zeros(len(wavs), total)
    for i, w in enumerate(wavs):
        out[i, : w.shape[-1] + 2 * pad] = torch.nn.functional.pad(w[None, None], (pad, pad), mode="reflect")[0, 0]
    return out, lengths


def complex_stft(
    wav: torch.Tensor, config: StftConfig, *, window: str | None = None, pad_mode: str = "reflect", center: bool = True
) -> torch.Tensor:
    """wav: (batch, samples) float32 -> complex (batch, frames, bins); centred frames unless `center` is False."""
    win = make_window(window or config.window, config.win_length, wav.device)
    spec = torch.stft(
        wav,
        config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=win,
        center=center,
        pad_mode=pad_mode,
        onesided=True,
        return_complex=True,
    )
    return spec.transpose(1, 2)


def magnitude_from_complex(spec: torch.Tensor) -> torch.Tensor:
    power = spec.real.square() + spec.imag.square()
    return torch.sqrt(torch.clamp(power, min=POWER_FLOOR))


def apply_transform(magnitude: torch.Tensor, config: StftConfig) -> torch.Tensor:
    return torch.log1p(magnitude) if config.transform == "log1p" else magnitude


def spectrum(wav: torch.Tensor, config: StftConfig) -> torch.Tensor:
    """Model input of equal-length audio. wav: (batch, samples) float32 at 16 kHz -> (batch, frames, bins)."""
    return apply_transform(magnitude_from_complex(complex_stft(wav, config)), config)


def batch_spectrum(wavs: list[torch.Tensor], config: StftConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Model input of utterances of different lengths.

    wavs: list of (samples,) float32 at 16 kHz. Returns the spectrum (batch, max_frames, bins), zero beyond each
    utterance's frames, and the frame counts (batch,).
    """
    pad = config.n_fft // 2
    padded, lengths = reflect_pad_batch(wavs, pad)
    spec = complex_stft(padded, config, center=False)
    frames = 1 + lengths // config.hop_length
    spec = apply_transform(magnitude_from_complex(spec), config)[:, : int(frames.max())]
    mask = frame_mask(frames, spec.shape[1]).to(spec.device)
    return spec * mask[:, :, None], frames


def frame_mask(frames: torch.Tensor, max_frames: int) -> torch.Tensor:
    """(batch,) frame counts -> (batch, max_frames) bool, True on valid frames."""
    return torch.arange(max_frames)[None, :] < frames[:, None]
