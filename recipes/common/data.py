"""LightningDataModule over clean speech: random crops with random gain for training, and a labelled quality set
(audio + a quality label such as PESQ) for validation by correlation."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
import numpy as np
import soxr
import torch
from torch.utils.data import DataLoader, Dataset

from vqscore.audio import AudioError, load_audio
from vqscore.features import SAMPLE_RATE

from .corpus import collect, heldout_speakers

log = logging.getLogger(__name__)


def random_gain(wav: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Gain ~ U(low, high), capped so the peak stays <= 1 (METHOD.md section 1)."""
    peak = float(np.abs(wav).max())
    gain = rng.uniform(low, high)
    if peak > 0:
        gain = min(gain, 1.0 / peak)
    return (wav * gain).astype(np.float32)


def tilt(wav: np.ndarray, coefficient: float) -> np.ndarray:
    """First-order spectral tilt y[n] = x[n] - c x[n-1] (c > 0 brightens, c < 0 darkens; |c| <= 0.5 is about
    +-9 dB across the band), at the input's RMS: a different microphone or voice, still clean speech."""
    out = wav.astype(np.float64)
    out[1:] -= coefficient * wav[:-1]
    rms_in, rms_out = np.sqrt(np.mean(wav.astype(np.float64) ** 2)), np.sqrt(np.mean(out**2))
    return (out * (rms_in / rms_out if rms_out > 0 else 1.0)).astype(np.float32)


class RandomCrops(Dataset):
    """Item i is a crop of `crop` samples from a file drawn in proportion to its length, seeded by (seed, i).

    The dataset is as long as the whole run (`length` items), so every step sees fresh crops without relying on
    epochs, and a resumed run sees the same crops it would have seen. Files shorter than a crop are tiled.
    Clean-preserving augmentation, never noise: `speed` (low, high) plays the crop at a random speed (pitch and
    tempo together, like Kaldi's speed perturbation: more "speakers" from the same hours); `tilt` draws a spectral
    tilt coefficient from U(-tilt, tilt).
    """

    def __init__(
        self,
        waves: list[np.ndarray],
        crop: int,
        gain_range: tuple[float, float],
        length: int,
        seed: int,
        speed: tuple[float, float] | None = None,
        tilt: float = 0.0,
    ):
        self.waves, self.crop, self.gain_range, self.length, self.seed = waves, crop, gain_range, length, seed
        self.speed, self.tilt = speed, tilt
        sizes = np.array([w.shape[0] for w in waves], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        wav = self.waves[rng.choice(len(self.waves), p=self.weights)]
        factor = rng.uniform(*self.speed) if self.speed else 1.0
        span = self.crop if factor == 1.0 else int(np.ceil(self.crop * factor)) + 1
        if wav.shape[0] < span:
            wav = np.tile(wav, -(-span // wav.shape[0]))
        start = rng.integers(0, wav.shape[0] - span + 1)
        piece = wav[start : start + span]
        if factor != 1.0:  # `factor` times as fast: span samples become span / factor
            piece = soxr.resample(piece, SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ")
        piece = piece[: self.crop]
        if self.tilt:
            piece = tilt(piece, rng.uniform(-self.tilt, self.tilt))
        return torch.from_numpy(random_gain(np.ascontiguousarray(piece, dtype=np.float32), rng, *self.gain_range))


class QualitySet(Dataset):
    """Whole files with a quality label, from a CSV manifest (a path column relative to the manifest, a label
    column): a labelled benchmark set (`path`, `pesq`) or a human-rated set (`file`, `mos`)."""

    def __init__(self, manifest: str, label: str, path_column: str = "path"):
        base = Path(manifest).parent
        with open(manifest, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get(label) not in (None, "")]
        self.items = [(str(base / r[path_column]), float(r[label])) for r in rows]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label = self.items[index]
        return torch.from_numpy(load_audio(path).samples), torch.tensor(label)


def first_item(batch):
    return batch[0]


class CleanSpeechDataModule(L.LightningDataModule):
    """Clean speech for the VQ-VAE recipes.

    sources: folders and/or CSV/JSONL manifests of clean audio (any format and rate; resampled to 16 kHz).
    speaker_split: JSON of held-out speakers (splits/speakers.json); their files are never trained on.
    quality_manifest / quality_label: labelled validation set; the score's correlation with it picks the best model.
    speed / tilt: clean-preserving augmentation of the crops (`RandomCrops`); off by default (the paper has none).
    validation_sets: more labelled sets, each {"name", "manifest", "label", "path_column"}; when given, the first
    one is the set that picks the best model (`val/srcc`) and `quality_manifest` is left out.
    """

    def __init__(
        self,
        sources: list[str],
        speaker_split: str | None = None,
        quality_manifest: str | None = None,
        quality_label: str = "pesq",
        crop_seconds: float = 3.0,
        gain_low: float = 0.05,
        gain_high: float = 2.0,
        batch_size: int = 16,
        num_workers: int = 2,
        total_samples: int = 10_000_000,
        seed: int = 0,
        max_files: int | None = None,
        validation_sets: list[dict] | None = None,
        speed: tuple[float, float] | None = None,
        tilt: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.waves: list[np.ndarray] = []
        self.speakers: list[str] = []  # speakers[i] spoke waves[i]
        self.summary: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.waves:
            return
        hp = self.hparams
        held = heldout_speakers(hp.speaker_split)
        utterances = [u for u in collect(hp.sources) if u.speaker not in held]
        if hp.max_files:
            utterances = utterances[: hp.max_files]
        skipped = 0
        for u in utterances:
            try:
                self.waves.append(load_audio(u.path).samples)
                self.speakers.append(u.speaker)
            except AudioError as exc:
                log.warning("skipping %s", exc)
                skipped += 1
        if not self.waves:
            raise ValueError(f"no readable training audio in {hp.sources}")
        seconds = sum(w.shape[0] for w in self.waves) / SAMPLE_RATE
        self.summary = {
            "sources": list(hp.sources),
            "files": len(self.waves),
            "skipped_files": skipped,
            "speakers": len({u.speaker for u in utterances}),
            "heldout_speakers_excluded": len(held),
            "hours": round(seconds / 3600, 3),
        }
        log.info("training data: %s", self.summary)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        crops = RandomCrops(
            self.waves,
            int(hp.crop_seconds * SAMPLE_RATE),
            (hp.gain_low, hp.gain_high),
            hp.total_samples,
            hp.seed,
            speed=tuple(hp.speed) if hp.speed else None,
            tilt=hp.tilt,
        )
        return DataLoader(
            crops,
            batch_size=hp.batch_size,
            shuffle=False,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            drop_last=True,
        )

    def validation_names(self) -> list[str]:
        if self.hparams.validation_sets:
            return [s["name"] for s in self.hparams.validation_sets]
        return ["quality"] if self.hparams.quality_manifest else []

    def val_dataloader(self):
        sets = self.hparams.validation_sets
        if sets:
            loaders = [
                QualitySet(s["manifest"], s.get("label", "pesq"), s.get("path_column", "path")) for s in sets
            ]
            return [DataLoader(q, batch_size=1, collate_fn=first_item, num_workers=0) for q in loaders]
        if not self.hparams.quality_manifest:
            return []
        quality = QualitySet(self.hparams.quality_manifest, self.hparams.quality_label)
        return DataLoader(quality, batch_size=1, collate_fn=first_item, num_workers=0)
