"""LightningModule that trains the library's QE VQ-VAE (the library itself never imports Lightning)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from vqscore.features import spectrum
from vqscore.models import QEVQVAE, QEConfig
from vqscore.scoring import cosine_per_frame, score_batch

from ..common.metrics import pearson, spearman


class QETrainingModule(L.LightningModule):
    """Loss = commitment_weight * commitment + spectral_weight * (-mean_t cos(X_t, Xhat_t)) (METHOD.md section 1).

    The codebook is k-means initialised on the first training batch and then follows EMA updates; only the
    encoder and decoder receive gradients.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (128, 64, 32),
        codebook_size: int = 2048,
        codebook_dim: int = 32,
        ema_decay: float = 0.8,
        commitment_weight: float = 1.0,
        spectral_weight: float = 45.0,
        lr: float = 1e-5,
        betas: tuple[float, float] = (0.5, 0.9),
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        self.model = QEVQVAE(QEConfig(widths=tuple(widths), codebook_size=codebook_size, codebook_dim=codebook_dim, ema_decay=ema_decay))
        self.val_scores: list[float] = []
        self.val_labels: list[float] = []

    def training_step(self, wav: torch.Tensor, batch_idx: int) -> torch.Tensor:
        x = spectrum(wav, self.model.features)
        z = self.model.encode(x)
        q = self.model.quantize(z, update=True)
        xhat = self.model.decode(q.zq)
        spectral = -cosine_per_frame(x, xhat).mean()
        loss = self.hparams.commitment_weight * q.commitment + self.hparams.spectral_weight * spectral
        used = q.indices.unique().numel()
        self.log_dict(
            {"train/loss": loss, "train/commitment": q.commitment, "train/cos_x": -spectral, "train/codes_used": float(used)},
            prog_bar=True,
            on_step=True,
        )
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        wav, label = batch
        score = score_batch(self.model, [wav.cpu().numpy()], with_decoder=False)[0]
        self.val_scores.append(score.cos_z)
        self.val_labels.append(float(label))

    def on_validation_epoch_end(self) -> None:
        if len(self.val_scores) > 2:
            scores, labels = np.array(self.val_scores), np.array(self.val_labels)
            self.log_dict({"val/srcc": spearman(scores, labels), "val/lcc": pearson(scores, labels), "val/mean_score": float(scores.mean())}, prog_bar=True)
        self.val_scores.clear()
        self.val_labels.clear()

    def configure_optimizers(self):
        params = list(self.model.encoder.parameters()) + list(self.model.decoder.parameters())
        return torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
