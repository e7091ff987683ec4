"""Score-gated specialists (issue 11): K U-Nets trained as a hard mixture of experts whose gate is the selector.

Each training mixture is enhanced by every member in inference mode, the selector (the VQScore bag, as
`Ensemble.enhance` will use it) picks the output it prefers, and only that member learns from the mixture. Members
thus specialise on the inputs the score hands them: the split is one the selector can see, where specialists
defined by conditions (SNR band, noise type, voice pitch) differ in ways VQScore barely resolves per file.

    python -m recipes.unet.gated fit --config recipes/unet/general.yaml --config recipes/unet/gated.yaml

Validation enhances each file with every member, keeps the output the selector prefers (`val/pesq`, which picks
the checkpoint) and logs each member's own PESQ (`val/pesq_member_K`) and how often it was chosen (`val/chosen_K`).
At the end of fit every member is exported as its own U-Net bundle (`ExportMembers`).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from lightning.pytorch.cli import LightningCLI
from torch import nn

from vqscore.features import SAMPLE_RATE
from vqscore.models import UNetConfig, UNetDenoiser
from vqscore.selectors import pick

from ..common.enhancement import EnhancementValidation
from ..common.export import ExportBundle, export
from ..common.metrics import intrusive_quality
from .data import MixtureDataModule
from .module import compressed_losses, unet_from_bundle


def preferred(values: np.ndarray) -> np.ndarray:
    """(members, items) selector values -> (items,) index of the member `Ensemble.enhance` would keep per item
    (`vqscore.selectors.pick` per column: the highest finite value, the first on a tie, 0 where none is finite)."""
    return np.array([pick(column) for column in values.T], dtype=np.int64)


class ScoreGatedUNets(EnhancementValidation):
    """K U-Nets, from the U-Net bundles `init_bundles` (their own architectures) or, without them, `members` random
    ones of `channels`; the gate is the VQScore of `gate_model` pooled by `gate_pooling`. Loss and optimiser as
    `UNetModule`; each member's loss is weighted by its share of the batch, so the sum is the batch mean."""

    def __init__(
        self,
        init_bundles: list[str] | None = None,
        members: int = 2,
        channels: tuple[int, ...] = (8, 16, 32, 64),
        kernel_size: int = 3,
        leaky_slope: float = 0.1,
        exponent: float = 0.3,
        complex_weight: float = 0.3,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        seed: int = 0,
        score_model: str = "default",
        gate_model: str = "vqscore-qe-seeds",
        gate_pooling: str = "mean",
    ):
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        if init_bundles:
            nets = [unet_from_bundle(path).train() for path in init_bundles]  # bundles load in eval mode
        else:
            config = UNetConfig(channels=tuple(channels), kernel_size=kernel_size, leaky_slope=leaky_slope)
            nets = [UNetDenoiser(config) for _ in range(members)]
        if len(nets) < 2:
            raise ValueError(f"a gated ensemble needs at least 2 members, got {len(nets)}")
        if len({net.features for net in nets}) != 1:
            raise ValueError("the members' STFT features differ: they must share one spectrum")
        self.members = nn.ModuleList(nets)
        self._gate = None

    @property
    def gate(self):
        if self._gate is None:  # loaded on first use: a score model is not part of the checkpoint
            from vqscore.bag import load_scorer

            self._gate = load_scorer(self.hparams.gate_model).with_pooling(self.hparams.gate_pooling)
        return self._gate

    def member_outputs(self, noisy: torch.Tensor) -> list[torch.Tensor]:
        """noisy (batch, samples) at 16 kHz -> each member's output (batch, samples), in inference mode (batch norm
        by its running statistics, as the shipped member will run)."""
        modes = [m.training for m in self.members]
        try:
            with torch.no_grad():
                return [m.eval().denoise(noisy) for m in self.members]
        finally:
            for m, mode in zip(self.members, modes, strict=True):
                m.train(mode)

    def choose(self, outputs: list[np.ndarray]) -> int:
        return pick(np.asarray(self.gate.vqscore(outputs, sr=SAMPLE_RATE), dtype=np.float64))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        noisy, clean = batch  # (batch, samples) each, at 16 kHz
        outputs = [y.cpu().numpy() for y in self.member_outputs(noisy)]
        values = np.asarray([self.gate.vqscore(list(y), sr=SAMPLE_RATE) for y in outputs], dtype=np.float64)
        choice = torch.from_numpy(preferred(values)).to(noisy.device)
        first = self.members[0]
        noisy_stft, clean_stft = first.stft(noisy), first.stft(clean)
        spectrum = first.spectrum(noisy_stft)
        total = noisy.new_zeros(())
        logged = {}
        for k, member in enumerate(self.members):
            rows = (choice == k).nonzero().flatten()
            share = rows.numel() / noisy.shape[0]
            logged[f"train/share_{k}"] = share
            if rows.numel() == 0:
                continue
            estimate = member(spectrum[rows]) * noisy_stft[rows]
            losses = compressed_losses(estimate, clean_stft[rows], self.hparams.exponent, self.hparams.complex_weight)
            total = total + share * losses.total
        logged["train/loss"] = total
        self.log_dict(logged, prog_bar=True, on_step=True)
        return total

    def enhance_numpy(self, wav: np.ndarray) -> np.ndarray:
        outputs = [m.enhance(torch.from_numpy(wav)).cpu().numpy() for m in self.members]
        self._chosen = self.choose(outputs)
        self._outputs = outputs
        return outputs[self._chosen]

    def validation_step(self, batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        clean = batch[1].cpu().numpy()
        row = self.val_rows[-1]
        for k, y in enumerate(self._outputs):
            row[f"pesq_member_{k}"] = intrusive_quality(clean, y)["pesq"]
            row[f"chosen_{k}"] = float(k == self._chosen)

    def on_validation_epoch_end(self) -> None:
        if getattr(self, "val_rows", None):
            keys = [k for k in self.val_rows[0] if k.startswith(("pesq_member_", "chosen_"))]
            self.log_dict({f"val/{k}": float(np.nanmean([r[k] for r in self.val_rows])) for k in keys})
        super().on_validation_epoch_end()

    def configure_optimizers(self):
        return torch.optim.Adam(self.members.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))


class ExportMembers(ExportBundle):
    """`ExportBundle` for a gated ensemble: member K of the best checkpoint becomes the bundle `names[K]`."""

    def __init__(self, directory: str, names: list[str], version: str = "1.0.0", notes: str = ""):
        super().__init__(directory, names[0], version, notes)
        self.names = list(names)

    def write(self, pl_module, training: dict) -> None:
        if len(self.names) != len(pl_module.members):
            raise ValueError(f"{len(self.names)} bundle names for {len(pl_module.members)} members")
        for name, member in zip(self.names, pl_module.members, strict=True):
            export(SimpleNamespace(model=member, hparams={}), self.directory, name, self.version, training)


def main(args=None) -> None:
    LightningCLI(ScoreGatedUNets, MixtureDataModule, args=args, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
