"""Split a paired noisy set (a `build_noisy_set.py` output) into two halves by speaker, for cross-fitted choices:
pick members on one half (`selection.py --prune`), measure them on the other, so that no file both chooses and
judges (README, issue 11, seventh round).

    python benchmarks/split_set.py --set out/noisy-test        # -> out/noisy-test-A, out/noisy-test-B
    python benchmarks/split_set.py --set out/noisy-val-wide --by source   # -> one part per corpus

Speakers sorted by id go alternately to A and B; `--by source` makes one part per value of the manifest's source
column instead (e.g. the LibriSpeech and the MUSHRA-reference pairs of a `--rated-references` set). Each half is a folder with its own manifest.csv, links to the set's
noisy/ and clean/ folders, and a copy of its enhanced/ cache (outputs and labels keyed by file, so `selection.py`
reruns from cache; a copy, because a run rewrites its cache files with the rows it saw).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
from pathlib import Path


def halves(rows: list[dict]) -> dict[str, list[dict]]:
    """Manifest rows -> {"A": rows, "B": rows}: the speakers, sorted, alternately; row order kept."""
    speakers = sorted({r["speaker"] for r in rows})
    side = {s: "AB"[i % 2] for i, s in enumerate(speakers)}
    return {h: [r for r in rows if side[r["speaker"]] == h] for h in "AB"}


def sources(rows: list[dict]) -> dict[str, list[dict]]:
    """Manifest rows -> {source: rows}, row order kept."""
    parts: dict[str, list[dict]] = {}
    for r in rows:
        parts.setdefault(r["source"], []).append(r)
    return parts


def write_half(root: Path, name: str, rows: list[dict], fields: list[str]) -> Path:
    out = root.parent / f"{root.name}-{name}"
    out.mkdir(exist_ok=True)
    for sub in ("noisy", "clean"):
        if not (out / sub).exists():
            os.symlink(Path("..") / root.name / sub, out / sub)
    if (root / "enhanced").is_dir() and not (out / "enhanced").exists():
        shutil.copytree(root / "enhanced", out / "enhanced")
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", required=True, help="a build_noisy_set.py output folder (manifest.csv)")
    parser.add_argument(
        "--by", choices=("speaker", "source"), default="speaker", help="halves by speaker (default) or a part per source"
    )
    args = parser.parse_args(argv)
    root = Path(args.set).resolve()
    with open(root / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), list(reader.fieldnames or [])
    for name, part in (halves(rows) if args.by == "speaker" else sources(rows)).items():
        out = write_half(root, name, part, fields)
        print(f"{out}: {len(part)} pairs, {len({r['speaker'] for r in part})} speakers")


if __name__ == "__main__":
    main()
