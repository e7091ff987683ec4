"""Enhancing utterances in memory with the SE model: padded, masked batches, and the waveform synthesis.

    enhanced = enhance_batch(network, [wav1, wav2])  # each (samples,) float32 at 16 kHz -> the same lengths

Each utterance's output equals enhancing it alone (METHOD.md section 2) up to float32 summation order: the
encoder's mean removal and both Transformers see only its own frames (`vqscore.nn` masks), and its waveform is
synthesised on its own (magnitude from the decoder, phase from the noisy input's Hamming STFT, hop 128).
Recordings too long to enhance whole are cut into windows by `vqscore.enhance_long`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .engine import plan_batches
from .features import POWER_FLOOR, batch_spectrum, complex_stft, make_window
from .models.base import VQVAE
from .nn import sdpa_attention

# The official resynthesis takes phase from a Hamming-window STFT with zero padding, whatever the analysis window.
PHASE_WINDOW = "hamming"
# Frames per batch, padding included. Memory grows linearly with the frames (attention runs in fused kernels,
# `nn.sdpa_attention`), ~48 KB a frame with the full-size model. On CPU (one thread, torch 2.13, 100 utterances of
# 1.4-2.6 s): one by one 3.8 CPU-s; batches of 2,048 frames (~16 s of audio) 2.8 CPU-s, +200 MB peak RSS; of 8,192
# frames 3.2 CPU-s, +430 MB (larger batches leave the cache). On a GPU larger batches keep it busy (~1.5 GB; not
# measured here).
CPU_BATCH_FRAMES = 2_048
GPU_BATCH_FRAMES = 32_768


def resynthesize(magnitude: torch.Tensor, noisy: torch.Tensor, model: VQVAE, analysis: torch.Tensor | None = None) -> torch.Tensor:
    """magnitude: (batch, frames, bins) linear, the decoder's; noisy: (batch, samples) at 16 kHz -> (batch, samples).

    The model's config says how (`SEConfig.resynthesis`): "decoder" puts the noisy phase under the decoded
    magnitude (METHOD.md); "mask" multiplies the noisy STFT by min(1, magnitude / analysis) ** mask_exponent, where
    analysis is the linear magnitude the encoder saw ((batch, frames, bins); required for "mask")."""
    features = model.features
    phase_spec = complex_stft(noisy, features, window=PHASE_WINDOW, pad_mode="constant")[:, : magnitude.shape[1]]
    if getattr(model.config, "resynthesis", "decoder") == "mask":
        if analysis is None:
            raise ValueError("mask resynthesis needs the analysis magnitude")
        gain = (magnitude / analysis.clamp_min(POWER_FLOOR**0.5)).clamp(max=1.0) ** model.config.mask_exponent
        spec = (phase_spec * gain).transpose(1, 2)
    else:
        phase = torch.atan2(phase_spec.imag, phase_spec.real)
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


def plan_enhance_batches(model: VQVAE, lengths: Sequence[int], batch_frames: int | None = None) -> list[list[int]]:
    """Indices of utterances of `lengths` samples in length-sorted batches of at most `batch_frames` padded frames
    (default: `CPU_BATCH_FRAMES` or `GPU_BATCH_FRAMES` by the model's device); a longer utterance goes alone."""
    if batch_frames is None:
        batch_frames = CPU_BATCH_FRAMES if next(model.parameters()).device.type == "cpu" else GPU_BATCH_FRAMES
    return plan_batches(lengths, model.features.hop_length, batch_frames)


@torch.inference_mode()
def enhance_batch(model: VQVAE, wavs: Sequence[np.ndarray], batch_frames: int | None = None) -> list[np.ndarray]:
    """wavs: (samples,) float32 at 16 kHz each -> enhanced (samples,) float32 at 16 kHz each, in the same order.

    Utterances are enhanced in length-sorted, padded batches of at most `batch_frames` frames
    (`plan_enhance_batches`); each output equals enhancing that utterance alone. Digital silence (every sample 0)
    stays silence. Every utterance needs at least `model.features.min_samples` samples (`scoring.check_length`)."""
    out: list[np.ndarray | None] = [None] * len(wavs)
    active = []
    for i, wav in enumerate(wavs):
        if np.any(wav):
            active.append(i)
        else:  # the model would turn the power floor's flat spectrum into noise
            out[i] = np.zeros(wav.shape[0], dtype=np.float32)
    for batch in plan_enhance_batches(model, [wavs[i].shape[0] for i in active], batch_frames):
        chosen = [active[k] for k in batch]
        for i, y in zip(chosen, enhance_padded(model, [wavs[i] for i in chosen]), strict=True):
            out[i] = y
    return out  # type: ignore[return-value]


@torch.inference_mode()
def enhance_padded(model: VQVAE, wavs: list[np.ndarray]) -> list[np.ndarray]:
    """One padded batch through encoder, codebook and decoder; each waveform synthesised at its own length."""
    device = next(model.parameters()).device
    noisy = [torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)).to(device) for w in wavs]
    spec, frames = batch_spectrum(noisy, model.features)
    with sdpa_attention():
        zq = model.quantize(model.encode(spec, frames), frames, update=False).zq
        out = model.decode(zq, frames)
    magnitude, analysis = (torch.expm1(out), torch.expm1(spec)) if model.features.transform == "log1p" else (out, spec)
    # one inverse STFT per utterance: in a padded batch the window-sum normalisation of an utterance's last samples
    # would count the (empty) frames of its neighbours' extra length
    return [
        resynthesize(magnitude[i : i + 1, : int(n)], x[None], model, analysis[i : i + 1, : int(n)])[0].float().cpu().numpy()
        for i, (x, n) in enumerate(zip(noisy, frames, strict=True))
    ]


def enhance_waveform(model: VQVAE, wav: np.ndarray) -> np.ndarray:
    """wav: (samples,) float32 at 16 kHz -> enhanced (samples,) float32 at 16 kHz."""
    return enhance_batch(model, [wav])[0]
