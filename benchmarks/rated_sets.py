"""The real sets the human-rating benchmarks share: where they are, how their labels are read, and the rank
correlation they are judged by (the recipes' numpy Spearman, average ranks for ties)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recipes.common.metrics import spearman  # noqa: E402

DATA = REPO.parent / "shared" / "data"
VOICEBANK = DATA / "real-noisy" / "voicebank"
TCD = DATA / "human-rated" / "tcd-voip-dev"
MUSHRA = DATA / "human-rated" / "mushra-codecs"

__all__ = ["DATA", "MUSHRA", "TCD", "VOICEBANK", "read_rated", "spearman", "voicebank_pairs"]


def read_rated(folder: Path, label: str) -> tuple[list[Path], np.ndarray, list[dict]]:
    """A rated set's files, their ratings (`label` column of labels.csv) and its rows."""
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [folder / r["file"] for r in rows], np.asarray([float(r[label]) for r in rows]), rows


def voicebank_pairs() -> tuple[list[Path], list[Path]]:
    """The real VoiceBank-DEMAND recordings: clean files and their noisy versions, in the same order."""
    names = sorted(p.name for p in (VOICEBANK / "clean").glob("*.flac"))
    return [VOICEBANK / "clean" / n for n in names], [VOICEBANK / "noisy" / n for n in names]
