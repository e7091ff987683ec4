"""The SE training objectives (vqscore.distill): the attack really raises the code cross-entropy, the frozen
teacher and codebook receive no update, each loss reaches only the part it should train, and the expanded
Euclidean logits equal cdist's."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import tiny_network
from vqscore.distill import (
    adversarial_perturbation,
    code_cross_entropy,
    distillation_losses,
    freeze,
    make_teacher,
    sample_eps,
    spectral_convergence,
    stage1_loss,
    teacher_codes,
)
from vqscore.quantizer import similarity


def speechlike(batch: int = 2, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    f0 = 100 + 80 * torch.rand(batch, 1, generator=g)
    x = sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.2 * x * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t)) + 0.01 * torch.randn(batch, t.numel(), generator=g)).float()


def test_spectral_convergence_is_relative_l1():
    x = torch.tensor([[[1.0, -2.0], [3.0, 0.0]]])
    assert spectral_convergence(x, x).item() == 0.0
    assert spectral_convergence(x, torch.zeros_like(x)).item() == pytest.approx(1.0)
    assert spectral_convergence(x, x + 0.6).item() == pytest.approx(2.4 / 6.0)


def test_training_logits_equal_cdist_logits():
    quantizer = tiny_network("se").quantizer
    z = torch.randn(3, 7, quantizer.dim)
    expected = similarity(z.reshape(-1, quantizer.dim), quantizer.codebook, "euclidean").reshape(3, 7, -1)
    torch.testing.assert_close(quantizer.training_logits(z), expected, atol=1e-4, rtol=1e-5)
    assert torch.equal(quantizer.training_logits(z).argmax(-1), quantizer.nearest(z))


def test_attack_raises_the_code_cross_entropy():
    student = tiny_network("se")
    teacher = make_teacher(student)
    wav = speechlike()
    targets = teacher_codes(teacher, wav)
    eps = torch.full((2,), 0.05)
    delta = adversarial_perturbation(student, wav, targets, eps)
    with torch.no_grad():
        before = code_cross_entropy(student, wav, targets)
        after = code_cross_entropy(student, wav + delta, targets)
        random = torch.randn_like(delta)
        random = random * (eps[:, None] * wav.norm(dim=-1, keepdim=True) / random.norm(dim=-1, keepdim=True))
        after_random = code_cross_entropy(student, wav + random, targets)
    # The gradient step is a better attack than noise of the same size, and it does raise the loss.
    assert after > before
    assert after > after_random
    torch.testing.assert_close(delta.norm(dim=-1), eps * wav.norm(dim=-1), rtol=1e-4, atol=0)
    assert all(p.grad is None for p in student.parameters())


def test_attack_restores_the_students_mode():
    student = tiny_network("se").train()
    targets = teacher_codes(make_teacher(student), speechlike())
    adversarial_perturbation(student, speechlike(), targets, torch.full((2,), 0.1))
    assert student.training


def test_distillation_step_leaves_frozen_parts_untouched():
    torch.manual_seed(0)
    student = tiny_network("se").train()
    teacher = make_teacher(student)
    freeze(student.quantizer)
    frozen_teacher = {k: v.clone() for k, v in teacher.state_dict().items()}
    frozen_codebook = {k: v.clone() for k, v in student.quantizer.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in student.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in student.decoder.state_dict().items()}
    optimizer = torch.optim.Adam(list(student.encoder.parameters()) + list(student.decoder.parameters()), lr=1e-2)

    wav = speechlike()
    targets = teacher_codes(teacher, wav)
    perturbed = wav + adversarial_perturbation(student, wav, targets, sample_eps(2, 0.03, 0.55, torch.Generator().manual_seed(0)))
    losses = distillation_losses(student, wav, perturbed, targets)
    optimizer.zero_grad()
    losses.total.backward()
    optimizer.step()

    assert all(torch.equal(v, frozen_teacher[k]) for k, v in teacher.state_dict().items())
    assert all(torch.equal(v, frozen_codebook[k]) for k, v in student.quantizer.state_dict().items())
    assert all(p.grad is None for p in teacher.parameters())
    assert any(not torch.equal(v, encoder_before[k]) for k, v in student.encoder.state_dict().items())
    assert any(not torch.equal(v, decoder_before[k]) for k, v in student.decoder.state_dict().items())


def test_each_stage2_loss_reaches_only_its_part():
    student = tiny_network("se").train()
    teacher = make_teacher(student)
    freeze(student.quantizer)
    wav = speechlike()
    targets = teacher_codes(teacher, wav)
    losses = distillation_losses(student, wav, wav + 0.01 * torch.randn_like(wav), targets)

    def grads(loss, module):
        return torch.autograd.grad(loss, list(module.parameters()), retain_graph=True, allow_unused=True)

    # Cross-entropy trains the encoder only; spectral convergence trains the decoder only (codes are detached).
    assert all(g is None for g in grads(losses.ce_perturbed + losses.ce_clean, student.decoder))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(losses.ce_perturbed, student.encoder))
    assert all(g is None for g in grads(losses.spectral, student.encoder))
    assert any(g is not None and g.abs().sum() > 0 for g in grads(losses.spectral, student.decoder))
    assert losses.total.item() == pytest.approx(
        (losses.ce_perturbed + losses.ce_clean + 45.0 * losses.spectral).item(), rel=1e-6
    )


def test_stage1_loss_trains_and_updates_the_codebook():
    student = tiny_network("se").train()
    codebook = student.quantizer.codebook.clone()
    loss = stage1_loss(student, speechlike())
    loss.total.backward()
    assert loss.total.item() == pytest.approx((3.0 * loss.commitment + 45.0 * loss.spectral).item(), rel=1e-6)
    assert not torch.equal(codebook, student.quantizer.codebook)  # EMA step
    assert student.encoder.convs[0].weight.grad is not None and student.decoder.convs[0].weight.grad is not None
    assert 1 <= loss.codes_used <= student.quantizer.size


def test_sample_eps_range():
    eps = sample_eps(1000, 0.03, 0.55, torch.Generator().manual_seed(0))
    assert eps.shape == (1000,) and eps.min() >= 0.03 and eps.max() <= 0.55 and eps.std() > 0.1
