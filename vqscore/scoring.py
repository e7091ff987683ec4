"""The scoring engine: utterances of any lengths in, one `Score` per utterance out.

Utterances are sorted by length and packed into batches under a frame budget; padding is masked out of every
statistic, so a score does not depend on what it was batched with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from .audio import AudioError
from .features import batch_spectrum
from .models.base import VQVAE

# Added to each norm (cosine) and to the per-frame energy (normalised L2), as the official code does.
SCORE_EPS = 1e-5
# Frames per batch (summed over its padded utterances): about 8 minutes of audio at hop 256, ~35 MB of input.
DEFAULT_BATCH_FRAMES = 32_768


@dataclass(frozen=True)
class Score:
    """Quality scores of one utterance. Higher `cos_z` / `cos_x` and lower `l2_z` / `l2_x` mean cleaner speech.

    cos_z: the VQScore, mean over frames of cos(z_t, zq_t).
    l2_z: mean of (z - zq)^2 normalised by each frame's mean z^2.
    cos_x, l2_x: the same between the input spectrum and the decoder's reconstruction.
    frames: (frames,) per-frame cos(z_t, zq_t); frame_times: (frames,) their centres in seconds.
    Digital silence (every sample exactly 0) has no speech to judge: every field is NaN.
    """

    cos_z: float
    l2_z: float
    cos_x: float
    l2_x: float
    frames: np.ndarray
    frame_times: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {"cos_z": self.cos_z, "l2_z": self.l2_z, "cos_x": self.cos_x, "l2_x": self.l2_x}


def cosine_per_frame(a: torch.Tensor, b: torch.Tensor, eps: float = SCORE_EPS) -> torch.Tensor:
    """(batch, frames, dim) x2 -> (batch, frames)."""
    a_n = a / (a.norm(dim=-1, keepdim=True) + eps)
    b_n = b / (b.norm(dim=-1, keepdim=True) + eps)
    return (a_n * b_n).sum(dim=-1)


def normalized_l2_per_frame(a: torch.Tensor, b: torch.Tensor, eps: float = SCORE_EPS) -> torch.Tensor:
    """(batch, frames, dim) x2 -> (batch, frames): mean_D (a - b)^2 / (mean_D a^2 + eps)."""
    return ((a - b).square() / (a.square().mean(dim=-1, keepdim=True) + eps)).mean(dim=-1)


def masked_mean(values: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(batch, max_frames), (batch,) -> (batch,) mean over each utterance's own frames."""
    valid = torch.arange(values.shape[1], device=values.device)[None, :] < frames.to(values.device)[:, None]
    return (values * valid).sum(dim=1) / frames.to(values.device, values.dtype)


def silent_score(num_frames: int, hop: int, rate: int) -> Score:
    nan = float("nan")
    times = np.arange(num_frames, dtype=np.float64) * hop / rate
    return Score(nan, nan, nan, nan, np.full(num_frames, np.nan, dtype=np.float32), times)


def check_length(samples: np.ndarray, min_samples: int, name: str) -> None:
    if samples.shape[0] < min_samples:
        raise AudioError(
            f"{name}: too short ({samples.shape[0]} samples at 16 kHz); at least {min_samples} samples "
            f"({1000 * min_samples / 16000:.0f} ms, one STFT window) are needed"
        )


@torch.inference_mode()
def score_batch(model: VQVAE, wavs: Sequence[np.ndarray], with_decoder: bool = True) -> list[Score]:
    """Score equal-or-different-length utterances in one forward pass.

    wavs: (samples,) float32 at 16 kHz each, none silent or shorter than one window.
    Without the decoder, cos_x and l2_x are NaN.
    """
    device = next(model.parameters()).device
    features = model.features
    spec, frames = batch_spectrum([torch.from_numpy(w).to(device) for w in wavs], features)
    lengths = None if len(wavs) == 1 else frames
    z = model.encode(spec, lengths)
    zq = model.quantize(z, lengths, update=False).zq
    per_frame = cosine_per_frame(z, zq)
    cos_z = masked_mean(per_frame, frames)
    l2_z = masked_mean(normalized_l2_per_frame(z, zq), frames)
    if with_decoder:
        xhat = model.decode(zq, lengths)
        cos_x = masked_mean(cosine_per_frame(spec, xhat), frames).tolist()
        l2_x = masked_mean(normalized_l2_per_frame(spec, xhat), frames).tolist()
    else:
        cos_x = l2_x = [float("nan")] * len(wavs)
    per_frame = per_frame.float().cpu().numpy()
    out = []
    for i, n in enumerate(frames.tolist()):
        times = features.frame_times(n).numpy()
        out.append(Score(float(cos_z[i]), float(l2_z[i]), cos_x[i], l2_x[i], per_frame[i, :n].copy(), times))
    return out


def plan_batches(lengths: Sequence[int], hop: int, max_batch_frames: int) -> list[list[int]]:
    """Group indices of utterances, shortest first, so that (batch size x longest frames) stays in budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        frames = 1 + lengths[i] // hop
        if current and (len(current) + 1) * frames > max_batch_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def score_utterances(
    model: VQVAE,
    wavs: Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    with_decoder: bool = True,
    max_batch_frames: int = DEFAULT_BATCH_FRAMES,
) -> list[Score]:
    """Score many utterances (each (samples,) float32 at 16 kHz), batched by length; results in input order."""
    names = names or [f"<utterance {i}>" for i in range(len(wavs))]
    features = model.features
    results: list[Score | None] = [None] * len(wavs)
    active = []
    for i, (w, name) in enumerate(zip(wavs, names)):
        check_length(w, features.min_samples, name)
        if not np.any(w):
            results[i] = silent_score(features.num_frames(w.shape[0]), features.hop_length, features.sample_rate)
        else:
            active.append(i)
    for batch in plan_batches([wavs[i].shape[0] for i in active], features.hop_length, max_batch_frames):
        chosen = [active[j] for j in batch]
        for i, score in zip(chosen, score_batch(model, [wavs[i] for i in chosen], with_decoder)):
            results[i] = score
    return results  # type: ignore[return-value]


def iter_chunks(items: Iterable, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
