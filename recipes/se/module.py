"""LightningModules of the self-supervised enhancer (METHOD.md section 2): stage 1 (clean-only VQ-VAE) and
stage 2 (self-distillation with adversarial training). They bind the library's losses (`vqscore.distill`);
the library itself never imports Lightning.

Both validate by enhancement (`recipes.common.enhancement.EnhancementValidation`): each noisy file of a held-out
paired set is enhanced and scored by wide-band PESQ and STOI against its clean reference, and by the VQScore of the
output (the label-free alternative).
"""

from __future__ import annotations

import numpy as np
import torch

from vqscore.bundle import load_bundle
from vqscore.distill import (
    adversarial_perturbation,
    distillation_losses,
    freeze,
    make_teacher,
    sample_eps,
    stage1_loss,
    teacher_codes,
)
from vqscore.enhance import enhance_waveform
from vqscore.models import SEVQVAE, SEConfig

from ..common.enhancement import EnhancementValidation


class SEModule(EnhancementValidation):
    """What both stages share: Adam over encoder and decoder, and enhancement by VQ resynthesis for validation."""

    def enhance_numpy(self, wav: np.ndarray) -> np.ndarray:
        return enhance_waveform(self.model, wav)

    def configure_optimizers(self):
        # Encoder and decoder only: the codebook follows EMA (stage 1) or stays frozen (stage 2).
        params = list(self.model.encoder.parameters()) + list(self.model.decoder.parameters())
        return torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))


class SEStage1Module(SEModule):
    """Stage 1: commitment_weight x commitment + spectral_weight x spectral convergence on clean crops; the
    codebook is k-means initialised on the first batch and follows EMA updates."""

    def __init__(
        self,
        widths: tuple[int, int, int] = (200, 150, 128),
        codebook_size: int = 4096,
        codebook_dim: int = 128,
        heads: int = 8,
        feedforward: int = 128,
        dropout: float = 0.4,
        transformer_layers: int = 2,
        commitment_weight: float = 3.0,
        spectral_weight: float = 45.0,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        seed: int = 0,
        score_model: str = "default",
    ):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        config = SEConfig(
            widths=tuple(widths),
            codebook_size=codebook_size,
            codebook_dim=codebook_dim,
            heads=heads,
            feedforward=feedforward,
            dropout=dropout,
            transformer_layers=transformer_layers,
        )
        self.model = SEVQVAE(config)

    def training_step(self, wav: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = stage1_loss(self.model, wav, self.hparams.commitment_weight, self.hparams.spectral_weight)
        self.log_dict(
            {
                "train/loss": loss.total,
                "train/commitment": loss.commitment,
                "train/spectral": loss.spectral,
                "train/codes_used": float(loss.codes_used),
            },
            prog_bar=True,
            on_step=True,
        )
        return loss.total


class SEStage2Module(SEModule):
    """Stage 2, from a stage-1 bundle: a frozen teacher gives the target codes of clean crops; the student's
    codebook is frozen (no gradient, no EMA); each step attacks the waveform (eps ~ U(eps_low, eps_high) per
    utterance) and trains the encoder on the code cross-entropy of perturbed and clean input and the decoder on
    spectral convergence (`vqscore.distill.distillation_losses`)."""

    def __init__(
        self,
        init_bundle: str,
        eps_low: float = 0.03,
        eps_high: float = 0.55,
        spectral_weight: float = 45.0,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        seed: int = 0,
        score_model: str = "default",
    ):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        network, _ = load_bundle(init_bundle)
        if network.config.kind != "se":
            raise ValueError(f"{init_bundle}: stage 2 starts from an SE bundle, not a {network.config.kind} one")
        self.teacher = make_teacher(network)
        self.model = network.train()  # bundles load in eval mode; Lightning keeps the modes it finds
        freeze(self.model.quantizer)
        self.attack_generator = torch.Generator().manual_seed(seed)

    def train(self, mode: bool = True):
        # Lightning puts every submodule in train mode each epoch; the teacher and the frozen codebook stay in eval.
        super().train(mode)
        self.teacher.eval()
        self.model.quantizer.eval()
        return self

    def training_step(self, wav: torch.Tensor, batch_idx: int) -> torch.Tensor:
        targets = teacher_codes(self.teacher, wav)
        eps = sample_eps(wav.shape[0], self.hparams.eps_low, self.hparams.eps_high, self.attack_generator).to(wav.device)
        perturbed = wav + adversarial_perturbation(self.model, wav, targets, eps)
        losses = distillation_losses(self.model, wav, perturbed, targets, self.hparams.spectral_weight)
        self.log_dict(
            {
                "train/loss": losses.total,
                "train/ce_perturbed": losses.ce_perturbed,
                "train/ce_clean": losses.ce_clean,
                "train/spectral": losses.spectral,
            },
            prog_bar=True,
            on_step=True,
        )
        return losses.total
