"""LightningModule that trains the library's QE VQ-VAE (the library itself never imports Lightning)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from vqscore.conditioning import get_conditioning
from vqscore.features import spectrum
from vqscore.models import QEVQVAE, QEConfig
from vqscore.pooling import POOLINGS, check_pooling, pool
from vqscore.scoring import cosine_per_frame, score_batch

from ..common.metrics import pearson, spearman


class QETrainingModule(L.LightningModule):
    """Loss = commitment_weight * commitment + spectral_weight * (-mean_t cos(X_t, Xhat_t)) (METHOD.md section 1).

    The codebook is k-means initialised on the first training batch and then follows EMA updates; only the
    encoder and decoder receive gradients. Validation scores each labelled set with `val_conditioning` and logs the
    Spearman correlation of every pooling (`val/<set>/srcc_<pooling>`); `val/srcc`, which picks the best
    checkpoint, is the first set's with `val_pooling`.
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
        val_conditioning: str = "paper",
        val_pooling: str = "mean",
    ):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        self.model = QEVQVAE(QEConfig(widths=tuple(widths), codebook_size=codebook_size, codebook_dim=codebook_dim, ema_decay=ema_decay))
        self.conditioning = get_conditioning(val_conditioning)
        check_pooling(val_pooling)
        self.val_frames: dict[int, list[np.ndarray]] = {}
        self.val_labels: dict[int, list[float]] = {}

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

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        wav, label = batch
        score = score_batch(self.model, [wav.cpu().numpy()], with_decoder=False, conditioning=self.conditioning)[0]
        self.val_frames.setdefault(dataloader_idx, []).append(score.frames)
        self.val_labels.setdefault(dataloader_idx, []).append(float(label))

    def on_validation_epoch_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        names = datamodule.validation_names() if hasattr(datamodule, "validation_names") else []
        logged = {}
        for k in sorted(self.val_frames):
            labels = np.array(self.val_labels[k])
            if len(labels) <= 2:
                continue
            name = names[k] if k < len(names) else f"set{k}"
            for pooling in POOLINGS:
                scores = np.array([pool(f, pooling) for f in self.val_frames[k]])
                logged[f"val/{name}/srcc_{pooling}"] = spearman(scores, labels)
                if k == 0 and pooling == self.hparams.val_pooling:
                    logged.update({"val/srcc": spearman(scores, labels), "val/lcc": pearson(scores, labels), "val/mean_score": float(np.nanmean(scores))})
        if logged:
            self.log_dict(logged)
        self.val_frames.clear()
        self.val_labels.clear()

    def configure_optimizers(self):
        params = list(self.model.encoder.parameters()) + list(self.model.decoder.parameters())
        return torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
