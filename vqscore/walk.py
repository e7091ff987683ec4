"""Which files a `vqscore score` run covers: paths named on the command line, and folders walked for audio."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path


def walk(paths: Sequence[str], extensions: frozenset[str]) -> Iterator[str]:
    """Files named on the command line are always tried; folders are walked for audio suffixes, sorted."""
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if Path(f).suffix.lower() in extensions:
                        yield os.path.join(root, f)
        else:
            yield p


def unique(paths: Iterator[str]) -> list[str]:
    """Each file once, first occurrence kept."""
    return list(dict.fromkeys(paths))



def find_audio_files(paths: Sequence[str], extensions: frozenset[str]) -> list[str]:
    """Every file a run covers, each once, in walk order."""
    return unique(walk(paths, extensions))
