"""Spectral gating, kind "spectral-gating": a denoiser without weights or extra packages, the floor any trained
enhancer should beat. The noise profile is the per-bin level (mean and spread in dB) of the quietest frames of the
utterance itself, so it suits stationary noise and pauses between words; a bin passes where it stands clearly above
that profile. The gate is soft (a sigmoid in dB); a median over neighbouring bins and frames then drops isolated
surviving bins (the "musical noise" of frame-by-frame gates) while keeping anything at least two bins or frames wide
(a harmonic's main lobe is three bins), and a short moving average in time softens the gate's onsets. A floor limits
how much is removed. (Averaging across frequency instead would dilute narrow harmonics: -14 % on a pure tone.)"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from .checks import utterance

EPS = 1e-10


@dataclass(frozen=True)
class SpectralGating:
    """wav: (samples,) float32 at 16 kHz -> gated (samples,) float32 at 16 kHz.

    quiet_fraction: share of the frames (the lowest-energy ones) that define the noise profile.
    n_std: a bin passes where it is this many standard deviations (in dB) above the profile's mean.
    softness_db: width of the soft gate around that threshold.
    median_bins / median_frames: the median's extent (odd; 1 turns it off along that axis).
    smooth_ms: extent of the moving average in time.
    max_reduction_db: the most any bin is attenuated (the mask's floor).
    """

    n_fft: int = 512
    hop: int = 128
    quiet_fraction: float = 0.1
    n_std: float = 1.5
    softness_db: float = 2.0
    median_bins: int = 3
    median_frames: int = 3
    smooth_ms: float = 40.0
    max_reduction_db: float = 25.0

    def __post_init__(self) -> None:
        if not 0 < self.quiet_fraction <= 1:
            raise ValueError(f"quiet_fraction must be in (0, 1], got {self.quiet_fraction}")
        if self.softness_db <= 0 or self.max_reduction_db < 0:
            raise ValueError("softness_db must be positive and max_reduction_db at least 0")
        if self.median_bins < 1 or self.median_frames < 1 or self.median_bins % 2 == 0 or self.median_frames % 2 == 0:
            raise ValueError(
                f"median_bins and median_frames must be odd and positive, got {self.median_bins}, {self.median_frames}"
            )

    @property
    def name(self) -> str:
        """ "spectral-gating", with the options that differ from the defaults (they change the output)."""
        changed = [f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name) != f.default]
        return "spectral-gating" + (f"({','.join(changed)})" if changed else "")

    @property
    def settings(self) -> dict:
        return asdict(self)

    def mask(self, magnitude: torch.Tensor) -> torch.Tensor:
        """magnitude: (bins, frames) -> gain (bins, frames) in [floor, 1]."""
        level = 20.0 * torch.log10(magnitude + EPS)
        energy = magnitude.square().sum(dim=0)
        count = max(1, int(round(self.quiet_fraction * energy.shape[0])))
        quiet = level[:, torch.argsort(energy, stable=True)[:count]]
        threshold = quiet.mean(dim=1, keepdim=True) + self.n_std * quiet.std(dim=1, unbiased=False, keepdim=True)
        gate = torch.sigmoid((level - threshold) / self.softness_db)
        b, f = self.median_bins // 2, self.median_frames // 2
        patches = F.pad(gate[None, None], (f, f, b, b), mode="replicate")[0, 0].unfold(0, 2 * b + 1, 1).unfold(1, 2 * f + 1, 1)
        gate = patches.flatten(-2).median(dim=-1).values
        frames = 1 + 2 * int(self.smooth_ms / 1000 * 16_000 / self.hop / 2)
        kernel = torch.hann_window(frames + 2, periodic=False, dtype=gate.dtype)[1:-1]
        padded = F.pad(gate[:, None], (frames // 2, frames // 2), mode="replicate")
        smooth = F.conv1d(padded, (kernel / kernel.sum())[None, None])[:, 0]
        floor = 10.0 ** (-self.max_reduction_db / 20.0)
        return floor + (1.0 - floor) * smooth

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        x = utterance(wav, self.name)
        n = x.shape[0]
        if n == 0:
            return x.copy()
        # centred frames reflect n_fft / 2 samples at each end: shorter inputs are zero-padded first
        padded = torch.from_numpy(np.pad(x, (0, max(0, self.n_fft - n))).astype(np.float64))
        window = torch.hann_window(self.n_fft, dtype=torch.float64)
        spec = torch.stft(padded, self.n_fft, self.hop, window=window, center=True, return_complex=True)
        gained = spec * self.mask(spec.abs())
        out = torch.istft(gained, self.n_fft, self.hop, window=window, center=True, length=padded.shape[0])
        return out[:n].numpy().astype(np.float32)
