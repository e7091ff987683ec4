"""What the enhancement recipes (recipes/se, recipes/unet) share: the held-out paired noisy/clean validation set
(a manifest made by `benchmarks/build_noisy_set.py`) and validation by enhancement. Each noisy file is enhanced and
scored by wide-band PESQ (`val/pesq`, which picks the checkpoint) and STOI against its clean reference, their gains
over the noisy input, and the VQScore of the output (`val/vqscore`, the label-free alternative).
"""

from __future__ import annotations

import csv
from fnmatch import fnmatchcase
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import vqscore
from vqscore.audio import load_audio

from .data import CleanSpeechDataModule, first_item
from .metrics import intrusive_quality


class NoisyPairs(Dataset):
    """(noisy, clean) waveforms at 16 kHz from a CSV manifest with `noisy` and `clean` columns (paths relative to
    the manifest); the first `max_files` rows, or all. `snr_range` [low, high] dB keeps the rows whose `snr_db` lies
    in it, `conditions` those whose `condition` matches one of its patterns ("noise:*", "babble"): a specialist is
    validated on its own cluster."""

    def __init__(
        self,
        manifest: str,
        max_files: int | None = None,
        snr_range: tuple[float, float] | None = None,
        conditions: list[str] | None = None,
    ):
        base = Path(manifest).parent
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        if snr_range is not None:
            low, high = snr_range
            rows = [r for r in rows if r.get("snr_db") and low <= float(r["snr_db"]) <= high]
        if conditions is not None:
            rows = [r for r in rows if any(fnmatchcase(r["condition"], c) for c in conditions)]
        if not rows:
            raise ValueError(f"{manifest}: no pair within snr_range={snr_range} and conditions={conditions}")
        self.items = [(base / r["noisy"], base / r["clean"]) for r in rows][:max_files]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        noisy, clean = self.items[index]
        return torch.from_numpy(load_audio(noisy).samples), torch.from_numpy(load_audio(clean).samples)


class EnhancementDataModule(CleanSpeechDataModule):
    """Clean crops for training (every `CleanSpeechDataModule` option) and `noisy_manifest` for validation, its pairs
    optionally restricted to `val_snr_range` and `val_conditions` (`NoisyPairs`)."""

    def __init__(
        self,
        *args,
        noisy_manifest: str | None = None,
        max_val_files: int | None = None,
        val_snr_range: tuple[float, float] | None = None,
        val_conditions: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()

    def validation_names(self) -> list[str]:
        return ["noisy"] if self.hparams.noisy_manifest else []

    def val_dataloader(self):
        if not self.hparams.noisy_manifest:
            return []
        hp = self.hparams
        pairs = NoisyPairs(hp.noisy_manifest, hp.max_val_files, hp.val_snr_range, hp.val_conditions)
        return DataLoader(pairs, batch_size=1, collate_fn=first_item, num_workers=0)


class EnhancementValidation(L.LightningModule):
    """Validation by enhancement on `NoisyPairs` batches (one pair each): mean PESQ / STOI of the enhanced files,
    their gain over the noisy input, and the mean VQScore of the output by the `score_model` hyper-parameter.
    Subclasses say how they enhance (`enhance_numpy`) and keep `score_model` among their hyper-parameters."""

    def enhance_numpy(self, wav: np.ndarray) -> np.ndarray:
        """wav: (samples,) float32 at 16 kHz -> enhanced (samples,) float32 at 16 kHz."""
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self.val_rows: list[dict[str, float]] = []
        if not hasattr(self, "noisy_quality"):
            self.noisy_quality: dict[int, dict[str, float]] = {}

    def validation_step(self, batch, batch_idx: int) -> None:
        noisy, clean = (t.cpu().numpy() for t in batch)
        enhanced = self.enhance_numpy(noisy)
        row = dict(intrusive_quality(clean, enhanced))
        if batch_idx not in self.noisy_quality:  # the input's quality never changes: measured once per run
            self.noisy_quality[batch_idx] = {f"{k}_noisy": v for k, v in intrusive_quality(clean, noisy).items()}
        row.update(self.noisy_quality[batch_idx])
        row["vqscore"] = float(vqscore.score(enhanced, 16_000, model=self.hparams.score_model))
        self.val_rows.append(row)

    def on_validation_epoch_end(self) -> None:
        if not getattr(self, "val_rows", None):
            return
        keys = self.val_rows[0].keys()
        means = {k: float(np.nanmean([r[k] for r in self.val_rows])) for k in keys}
        logged = {f"val/{k}": means[k] for k in ("pesq", "stoi", "vqscore")}
        logged["val/pesq_gain"] = means["pesq"] - means["pesq_noisy"]
        logged["val/stoi_gain"] = means["stoi"] - means["stoi_noisy"]
        self.log_dict(logged)
        self.val_rows = []
