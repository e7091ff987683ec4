"""Data for the SE recipe: clean-speech crops for training (the shared `CleanSpeechDataModule`) and a held-out
paired noisy/clean set for validation by enhancement (a manifest made by `benchmarks/build_noisy_set.py`)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from vqscore.audio import load_audio

from ..common.data import CleanSpeechDataModule, first_item


class NoisyPairs(Dataset):
    """(noisy, clean) waveforms at 16 kHz from a CSV manifest with `noisy` and `clean` columns (paths relative to
    the manifest); the first `max_files` rows, or all."""

    def __init__(self, manifest: str, max_files: int | None = None):
        base = Path(manifest).parent
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        self.items = [(base / r["noisy"], base / r["clean"]) for r in rows][:max_files]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        noisy, clean = self.items[index]
        return torch.from_numpy(load_audio(noisy).samples), torch.from_numpy(load_audio(clean).samples)


class EnhancementDataModule(CleanSpeechDataModule):
    """Clean crops for training (every `CleanSpeechDataModule` option) and `noisy_manifest` for validation."""

    def __init__(self, *args, noisy_manifest: str | None = None, max_val_files: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()

    def validation_names(self) -> list[str]:
        return ["noisy"] if self.hparams.noisy_manifest else []

    def val_dataloader(self):
        if not self.hparams.noisy_manifest:
            return []
        pairs = NoisyPairs(self.hparams.noisy_manifest, self.hparams.max_val_files)
        return DataLoader(pairs, batch_size=1, collate_fn=first_item, num_workers=0)
