"""Which files a `vqscore score` run covers: paths named on the command line, and folders walked for audio.

Nothing is skipped silently: every path returned gets a row, and the decoder says what is wrong with a path it
cannot read. So a folder that cannot be listed is returned itself, and so is a broken link with an audio suffix.
Symlinked folders are followed, each real folder once (by device and inode), so link loops end and two links to
one folder do not score it twice. A link into a folder the walk reaches anyway is not followed: those files are
listed under their real path. Files are told apart by path: a file link beside its target gets its own row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path


def walk(paths: Sequence[str], extensions: frozenset[str]) -> Iterator[str]:
    """Files named on the command line are always tried; folders are walked for audio suffixes, sorted, each
    folder's files before its subfolders. Unreadable folders are yielded as they are, for an error row."""
    for path, _ in walk_sources(paths, extensions):
        yield path


def walk_sources(paths: Sequence[str], extensions: frozenset[str]) -> Iterator[tuple[str, str | None]]:
    """`walk`, each path with the named folder it was found in (None for a path named itself): `vqscore enhance`
    mirrors each folder's tree under its output folder."""
    # the real paths of the named folders: a link into one of them is left for the walk of its real path
    tops = [os.path.join(os.path.realpath(p), "") for p in paths if os.path.isdir(p)]
    seen: set[tuple[int, int]] = set()
    for p in paths:
        if os.path.isdir(p):
            for found in walk_folder(p, extensions, tops, seen):
                yield found, p
        else:
            yield p, None


def walk_folder(top: str, extensions: frozenset[str], tops: list[str], seen: set[tuple[int, int]]) -> Iterator[str]:
    unreadable: list[str] = []  # os.walk reports a folder it cannot list to onerror and goes on without it
    for root, dirs, files in os.walk(top, onerror=lambda exc: unreadable.append(exc.filename), followlinks=True):
        yield from unreadable  # folders that failed just before this one: in sorted walk order
        unreadable.clear()
        try:
            st = os.stat(root)
        except OSError:  # gone or closed since it was listed
            yield root
            dirs.clear()
            continue
        if (st.st_dev, st.st_ino) in seen:  # a loop, a second link, or a folder named twice
            dirs.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not links_inside(os.path.join(root, d), tops))
        for f in sorted(files):
            if Path(f).suffix.lower() in extensions:
                yield os.path.join(root, f)
    yield from unreadable


def links_inside(path: str, tops: list[str]) -> bool:
    """Whether `path` is a symlink to a folder within one of the walked folders (listed there, under its own path)."""
    return os.path.islink(path) and os.path.join(os.path.realpath(path), "").startswith(tuple(tops))


def unique(paths: Iterator[str]) -> list[str]:
    """Each path once, first occurrence kept."""
    return list(dict.fromkeys(paths))


def find_audio_files(paths: Sequence[str], extensions: frozenset[str]) -> list[str]:
    """Every path a run covers, each once, in walk order."""
    return unique(walk(paths, extensions))
