"""Training objectives of the self-supervised enhancer (METHOD.md section 2), as functions a trainer binds.

Stage 1 trains a clean-only VQ-VAE (`stage1_loss`). Stage 2 hardens its encoder: a frozen teacher labels clean
speech with codebook indices, a one-step attack on the waveform (`adversarial_perturbation`) finds the
perturbation that most confuses the student, and the student learns to give the teacher's codes for both the
perturbed and the clean input while its decoder learns to rebuild clean speech from them (`distillation_losses`).
Nothing here imports a trainer; `freeze` and `teacher_codes` keep the frozen parts out of every update.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .features import spectrum
from .models.base import VQVAE

NORM_FLOOR = 1e-12


def spectral_convergence(target: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """||X - Xhat||_1 / ||X||_1 over the whole batch. target, estimate: (batch, frames, bins) model features."""
    return (target - estimate).abs().sum() / target.abs().sum().clamp_min(NORM_FLOOR)


@dataclass(frozen=True)
class Stage1Loss:
    total: torch.Tensor
    commitment: torch.Tensor
    spectral: torch.Tensor
    codes_used: int


def stage1_loss(model: VQVAE, wav: torch.Tensor, commitment_weight: float = 3.0, spectral_weight: float = 45.0) -> Stage1Loss:
    """Clean-only VQ-VAE loss: commitment_weight x commitment + spectral_weight x spectral convergence.
    wav: (batch, samples) float32 clean speech at 16 kHz. Updates the codebook (k-means, then EMA) in train mode."""
    x = spectrum(wav, model.features)
    q = model.quantize(model.encode(x), update=True)
    spectral = spectral_convergence(x, model.decode(q.zq))
    total = commitment_weight * q.commitment + spectral_weight * spectral
    return Stage1Loss(total, q.commitment, spectral, int(q.indices.unique().numel()))


def freeze(module: nn.Module) -> nn.Module:
    """No gradient and eval mode (dropout off), for the teacher and the student's codebook."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def make_teacher(student: VQVAE) -> VQVAE:
    """A frozen copy of the stage-1 model: the source of the target codes."""
    return freeze(copy.deepcopy(student))


@torch.no_grad()
def teacher_codes(teacher: VQVAE, wav: torch.Tensor) -> torch.Tensor:
    """The teacher's codebook index per frame of clean speech. wav: (batch, samples) -> (batch, frames) int64."""
    teacher.eval()
    return teacher.quantizer.nearest(teacher.encode(spectrum(wav, teacher.features)))


def code_cross_entropy(model: VQVAE, wav: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's code logits (-distance to each codeword) for `wav` against `targets`
    (batch, frames); differentiable with respect to the waveform and the encoder."""
    return model.quantizer.cross_entropy(model.encode(spectrum(wav, model.features)), targets)


def adversarial_perturbation(student: VQVAE, wav: torch.Tensor, targets: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The one-step attack: delta = (eps ||x|| / ||g||) g, g the gradient of the code cross-entropy against the
    teacher's codes with respect to the waveform, the student in eval mode.

    wav: (batch, samples) float32 at 16 kHz; targets: (batch, frames); eps: (batch,) relative sizes (the paper draws
    U(0.03, 0.55) per utterance). Returns delta (batch, samples), detached; no parameter gradient is touched.
    """
    was_training = student.training
    student.eval()
    try:
        x = wav.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(code_cross_entropy(student, x, targets), x)
    finally:
        student.train(was_training)
    scale = eps.to(wav.dtype) * wav.norm(dim=-1) / grad.norm(dim=-1).clamp_min(NORM_FLOOR)
    return (scale[:, None] * grad).detach()


@dataclass(frozen=True)
class DistillationLosses:
    total: torch.Tensor
    ce_perturbed: torch.Tensor
    ce_clean: torch.Tensor
    spectral: torch.Tensor


def distillation_losses(
    student: VQVAE, clean: torch.Tensor, perturbed: torch.Tensor, targets: torch.Tensor, spectral_weight: float = 45.0
) -> DistillationLosses:
    """Stage-2 update: CE(student codes of perturbed x, teacher codes) + CE(of clean x) trains the encoder;
    spectral_weight x (SC of the decoder output from the perturbed input's codes + SC from the clean input's
    codes), both against clean X, trains the decoder. The codes are looked up in the (frozen) codebook without a
    gradient path, so the decoder loss never reaches the encoder and the CE never reaches the decoder.

    clean, perturbed: (batch, samples) float32 at 16 kHz; targets: (batch, frames) teacher codes."""
    x_clean = spectrum(clean, student.features)
    z_perturbed = student.encode(spectrum(perturbed, student.features))
    z_clean = student.encode(x_clean)
    quantizer = student.quantizer
    ce_perturbed = quantizer.cross_entropy(z_perturbed, targets)
    ce_clean = quantizer.cross_entropy(z_clean, targets)
    spectral = spectral_convergence(x_clean, student.decode(quantizer.lookup(quantizer.nearest(z_perturbed)))) + (
        spectral_convergence(x_clean, student.decode(quantizer.lookup(quantizer.nearest(z_clean))))
    )
    return DistillationLosses(ce_perturbed + ce_clean + spectral_weight * spectral, ce_perturbed, ce_clean, spectral)


def sample_eps(batch: int, low: float, high: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-utterance attack sizes ~ U(low, high): (batch,) float32."""
    return low + (high - low) * torch.rand(batch, generator=generator)
