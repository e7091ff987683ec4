"""Clean-speech corpora for training: folders or CSV/JSONL manifests of audio in any format and rate.

A manifest has a `path` column (absolute, or relative to the manifest) and optionally `speaker`. For folders,
the speaker is read from the file name when it looks like LibriSpeech (`<speaker>-<chapter>-<utt>`), else it is
the parent folder's name (AN4, VCTK and most corpora keep one folder per speaker).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vqscore.audio import audio_extensions

LIBRISPEECH_NAME = re.compile(r"^(\d+)-\d+-\d+$")


@dataclass(frozen=True)
class Utterance:
    path: str
    speaker: str


def speaker_of(path: str) -> str:
    p = Path(path)
    match = LIBRISPEECH_NAME.match(p.stem)
    return match[1] if match else p.parent.name


def read_manifest(path: Path) -> list[Utterance]:
    rows: list[dict]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        audio = Path(row["path"])
        audio = audio if audio.is_absolute() else path.parent / audio
        out.append(Utterance(str(audio), row.get("speaker") or speaker_of(str(audio))))
    return out


def walk_folder(folder: Path) -> list[Utterance]:
    exts = audio_extensions()
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts and p.is_file())
    return [Utterance(str(p), speaker_of(str(p))) for p in files]


def collect(sources: list[str]) -> list[Utterance]:
    utterances: list[Utterance] = []
    for source in sources:
        path = Path(os.path.expanduser(source))
        if path.is_dir():
            utterances += walk_folder(path)
        elif path.is_file():
            utterances += read_manifest(path)
        else:
            raise FileNotFoundError(f"{source}: neither a folder nor a manifest file")
    if not utterances:
        raise ValueError(f"no audio found in {sources}")
    return utterances


def heldout_speakers(split_file: str | None) -> set[str]:
    """Every speaker a split file reserves for validation or test (never trained on)."""
    if not split_file:
        return set()
    data = json.loads(Path(split_file).read_text())
    held = set()
    for corpus, parts in data.items():
        if corpus.startswith("_"):
            continue
        for part in ("val", "test"):
            held.update(parts.get(part, []))
    return held
