"""Data for the U-Net recipe: on-the-fly (noisy, clean) mixtures of the training speakers' clean speech with real
noise or babble (`recipes.common.mixtures`) for training, and the held-out paired noisy set for validation by
enhancement (`recipes.common.enhancement`)."""

from __future__ import annotations

from torch.utils.data import DataLoader

from vqscore.features import SAMPLE_RATE

from ..common.enhancement import EnhancementDataModule
from ..common.mixtures import Mixtures, MixtureSpec, expand_conditions, load_noise, load_rirs


class MixtureDataModule(EnhancementDataModule):
    """Every `EnhancementDataModule` option (clean sources, speaker split, crop, gains, batch, workers, seed, the
    noisy validation manifest), and the mixtures:

    noise_root: folder of noise folders (`../shared/data/noise`); rir_root: folder of room impulse responses.
    conditions: "noise:<folder>", "noise:*" (every folder), "babble"; drawn uniformly per pair.
    snr_range: [low, high] dB, uniform. rir_prob: chance that a clean crop is reverberated first (it is then the
    target). talkers: [min, max] babble talkers. `speed` and `tilt` of the clean-only recipes do not apply here.
    """

    def __init__(
        self,
        *args,
        noise_root: str = "../shared/data/noise",
        rir_root: str | None = "../shared/data/rir",
        conditions: list[str] | None = None,
        snr_range: tuple[float, float] = (-5.0, 20.0),
        rir_prob: float = 0.0,
        talkers: tuple[int, int] = (3, 5),
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()
        self.noise: dict = {}
        self.rirs: list = []
        self.spec: MixtureSpec | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.spec is not None:
            return
        hp = self.hparams
        conditions = expand_conditions(list(hp.conditions or ["noise:*", "babble"]), hp.noise_root)
        self.spec = MixtureSpec(
            conditions=tuple(conditions),
            snr_range=(float(hp.snr_range[0]), float(hp.snr_range[1])),
            crop=int(hp.crop_seconds * SAMPLE_RATE),
            rir_prob=float(hp.rir_prob),
            talkers=(int(hp.talkers[0]), int(hp.talkers[1])),
            gain_range=(hp.gain_low, hp.gain_high),
        )
        self.noise = load_noise(hp.noise_root, conditions)
        if hp.rir_prob > 0:
            if not hp.rir_root:
                raise ValueError("rir_prob > 0 needs rir_root")
            self.rirs = load_rirs(hp.rir_root)
        self.summary.update(
            conditions=conditions,
            snr_range=list(self.spec.snr_range),
            rir_prob=self.spec.rir_prob,
            noise_files={folder: len(recordings) for folder, recordings in self.noise.items()},
            noise_minutes=round(sum(x.shape[0] for r in self.noise.values() for x in r) / SAMPLE_RATE / 60, 2),
            rirs=len(self.rirs),
        )

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        # Lightning restores a resumed run's step before it asks for the data: continue the sequence of pairs
        done = self.trainer.global_step * hp.batch_size if self.trainer is not None else 0
        pairs = Mixtures(self.waves, self.speakers, self.noise, self.rirs, self.spec, hp.total_samples, hp.seed, start=done)
        return DataLoader(
            pairs,
            batch_size=hp.batch_size,
            shuffle=False,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            drop_last=True,
        )
