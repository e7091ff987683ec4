"""Waveform synthesis for the SE model: enhanced magnitude + the noisy input's phase -> audio."""

from __future__ import annotations

import numpy as np
import torch

from .features import batch_spectrum, complex_stft, make_window
from .models.base import VQVAE

# The official resynthesis takes phase from a Hamming-window STFT with zero padding, whatever the analysis window.
PHASE_WINDOW = "hamming"


def resynthesize(magnitude: torch.Tensor, noisy: torch.Tensor, model: VQVAE) -> torch.Tensor:
    """magnitude: (batch, frames, bins) linear; noisy: (batch, samples) at 16 kHz -> (batch, samples)."""
    features = model.features
    phase_spec = complex_stft(noisy, features, window=PHASE_WINDOW, pad_mode="constant")
    phase = torch.atan2(phase_spec.imag, phase_spec.real)[:, : magnitude.shape[1]]
    spec = torch.polar(magnitude, phase).transpose(1, 2)
    return torch.istft(
        spec,
        features.n_fft,
        hop_length=features.hop_length,
        win_length=features.win_length,
        window=make_window(PHASE_WINDOW, features.win_length, noisy.device),
        center=True,
        onesided=True,
        length=noisy.shape[-1],
    )


@torch.inference_mode()
def enhance_waveform(model: VQVAE, wav: np.ndarray) -> np.ndarray:
    """wav: (samples,) float32 at 16 kHz -> enhanced (samples,) float32 at 16 kHz."""
    device = next(model.parameters()).device
    noisy = torch.from_numpy(wav).to(device)[None]
    spec, _ = batch_spectrum([noisy[0]], model.features)
    zq = model.quantize(model.encode(spec), update=False).zq
    out = model.decode(zq)
    magnitude = torch.expm1(out) if model.features.transform == "log1p" else out
    return resynthesize(magnitude, noisy, model)[0].float().cpu().numpy()
