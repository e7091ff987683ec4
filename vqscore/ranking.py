"""Ranking enhancement systems without references: folders of outputs of the same inputs, matched by relative path.

    ranking = rank_systems(["out/sys_a", "out/sys_b"], model_scorer(vqscore.load("default")))
    ranking.systems[0]                  # SystemRank(name, path, mean, ci_low, ci_high, files): the best system
    ranking.wins                        # (systems, systems): fraction of files where the row's system beats the column's

Only files present in every folder and scored in every system are used (the paired comparison needs one score per
system for each file); the others are reported (`missing`, `extra`, `failed`). The score of a file comes from any
`Scorer` (paths -> a score or an error message each), so the same code ranks by PESQ or DNSMOS in a benchmark.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import audio_extensions
from .walk import find_audio_files

# paths -> one entry per path, in order: its score (higher is better), or the error that stopped it (a message
# starting with the path, like `corpus.FileResult.error`)
Scorer = Callable[[Sequence[str]], Sequence[float | str]]

RESAMPLES = 1000
LEVEL = 0.95
# bootstrap resamples drawn at once: bounds the (resamples, files) index array to a few MB
CHUNK_CELLS = 1 << 22


class RankingError(ValueError):
    """The systems cannot be ranked as given (fewer than two, not folders, or no file common to all)."""


@dataclass(frozen=True)
class SystemRank:
    """One system's result over the common files: mean score, its bootstrap interval, how many files."""

    name: str
    path: str
    mean: float
    ci_low: float
    ci_high: float
    files: int


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Ranking:
    """Systems best first; `wins` and `scores` follow that order.

    wins: (systems, systems) read-only; wins[a, b] is the fraction of the common files on which system a scores above
    system b, ties counting half, so wins[a, b] + wins[b, a] == 1 (the diagonal is 0.5).
    files: the relative paths used (present and scored in every system); scores: (systems, files) read-only.
    missing: system -> relative paths another system has and it lacks; extra: system -> its relative paths that some
    other system lacks (not used); failed: system -> (relative path, error) of its files that could not be scored
    (those files are dropped from every system). Systems with nothing to report are left out of the three."""

    systems: tuple[SystemRank, ...]
    wins: np.ndarray
    files: tuple[str, ...]
    scores: np.ndarray
    missing: dict[str, tuple[str, ...]]
    extra: dict[str, tuple[str, ...]]
    failed: dict[str, tuple[tuple[str, str], ...]]
    resamples: int
    seed: int
    level: float

    @property
    def common(self) -> int:
        """How many files the means, intervals and wins are computed over."""
        return len(self.files)


def system_names(folders: Sequence[str | os.PathLike]) -> list[str]:
    """Each folder's own name, or its path as given where two folders share a name."""
    paths = [os.path.normpath(os.fspath(f)) for f in folders]
    names = [os.path.basename(p) or p for p in paths]
    return names if len(set(names)) == len(names) else paths


def check_folders(folders: Sequence[str | os.PathLike]) -> None:
    """`RankingError` unless there are at least two distinct, existing folders."""
    if len(folders) < 2:
        raise RankingError(f"need at least 2 system folders to rank, got {len(folders)}")
    seen: dict[str, str] = {}
    for folder in map(os.fspath, folders):
        if not os.path.exists(folder):
            raise RankingError(f"{folder}: no such folder")
        if not os.path.isdir(folder):
            raise RankingError(f"{folder}: not a folder (a system is a folder of its output files)")
        real = os.path.realpath(folder)
        if real in seen:
            raise RankingError(f"{seen[real]} and {folder} are the same folder")
        seen[real] = folder


def system_files(folder: str | os.PathLike, extensions: frozenset[str]) -> dict[str, str]:
    """relative path -> path of every audio file under a system's folder (the walk of `vqscore score`)."""
    top = os.fspath(folder)
    return {Path(os.path.relpath(p, top)).as_posix(): p for p in find_audio_files([top], extensions)}


def presence_report(found: dict[str, dict[str, str]]) -> tuple[list[str], dict, dict]:
    """(relative paths in every system, sorted; missing; extra) of the systems' relative path -> path maps."""
    sets = {name: set(files) for name, files in found.items()}
    union = set().union(*sets.values())
    common = set.intersection(*sets.values())
    missing = {name: tuple(sorted(union - s)) for name, s in sets.items() if union - s}
    extra = {name: tuple(sorted(s - common)) for name, s in sets.items() if s - common}
    return sorted(common), missing, extra


def bootstrap_interval(scores: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL):
    """Paired percentile bootstrap of each system's mean: every resample draws the same files (with replacement)
    for all systems. scores: (systems, files) -> (low, high), each (systems,)."""
    systems, n = scores.shape
    rng = np.random.default_rng(seed)
    means = np.empty((systems, resamples))
    step = max(1, CHUNK_CELLS // n)
    for start in range(0, resamples, step):
        k = min(step, resamples - start)
        picks = rng.integers(0, n, size=(k, n))
        # how often each file was drawn in each resample: the means are then one matrix product
        counts = np.bincount((picks + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n)
        means[:, start : start + k] = scores @ counts.T / n
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=1)
    return low, high


def win_matrix(scores: np.ndarray) -> np.ndarray:
    """scores: (systems, files) -> (systems, systems): fraction of files where row > column, ties half."""
    a, b = scores[:, None, :], scores[None, :, :]
    return (a > b).mean(axis=2) + 0.5 * (a == b).mean(axis=2)


def as_score(value) -> float | str:
    """A scorer's entry as a finite float, or an error message (NaN: the file had nothing to judge)."""
    if isinstance(value, str):
        return value
    value = float(value)
    return value if math.isfinite(value) else "no score (NaN: digital silence or nothing to judge)"


def rank_systems(
    folders: Sequence[str | os.PathLike],
    scorer: Scorer,
    *,
    names: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    extensions: frozenset[str] | None = None,
) -> Ranking:
    """Rank systems by their mean score over the files every one of them has and could score.

    folders: one per system, holding outputs named alike (matched by path relative to the folder); walked like
    `vqscore score` for audio suffixes (`extensions`, default: every format libsndfile reads). scorer: called once,
    on every system's common files together (one batched run). names: default `system_names(folders)`.
    `RankingError` if fewer than two folders, no file is common to all, or none of those could be scored in all."""
    check_folders(folders)
    if resamples < 1:
        raise RankingError(f"need at least 1 bootstrap resample, got {resamples}")
    if not 0.0 < level < 1.0:
        raise RankingError(f"confidence level must be between 0 and 1, got {level}")
    names = list(names) if names is not None else system_names(folders)
    if len(set(names)) != len(names) or len(names) != len(folders):
        raise RankingError(f"need one distinct name per system, got {names}")
    extensions = audio_extensions() if extensions is None else extensions
    found = {name: system_files(folder, extensions) for name, folder in zip(names, folders, strict=True)}
    present, missing, extra = presence_report(found)
    if not present:
        counts = ", ".join(f"{name}: {len(files)} files" for name, files in found.items())
        raise RankingError(f"no common files: no relative path is present in every system folder ({counts})")

    paths = [found[name][rel] for name in names for rel in present]
    values = list(scorer(paths))
    if len(values) != len(paths):
        raise ValueError(f"the scorer returned {len(values)} scores for {len(paths)} files")
    table = [[as_score(v) for v in values[i * len(present) : (i + 1) * len(present)]] for i in range(len(names))]
    failed = {
        name: tuple((rel, v) for rel, v in zip(present, row, strict=True) if isinstance(v, str))
        for name, row in zip(names, table, strict=True)
    }
    failed = {name: entries for name, entries in failed.items() if entries}
    bad = {rel for entries in failed.values() for rel, _ in entries}
    keep = [j for j, rel in enumerate(present) if rel not in bad]
    if not keep:
        raise RankingError(
            f"no common files could be scored: each of the {len(present)} files present in every system failed in at least one"
        )
    scores = np.array([[row[j] for j in keep] for row in table], dtype=np.float64)

    means = scores.mean(axis=1)
    low, high = bootstrap_interval(scores, resamples, seed, level)
    order = sorted(range(len(names)), key=lambda i: -means[i])  # stable: equal means keep the order given
    systems = tuple(
        SystemRank(names[i], os.fspath(folders[i]), float(means[i]), float(low[i]), float(high[i]), len(keep)) for i in order
    )
    ordered = scores[order]
    wins = win_matrix(ordered)
    wins.setflags(write=False)
    ordered.setflags(write=False)
    return Ranking(
        systems=systems,
        wins=wins,
        files=tuple(present[j] for j in keep),
        scores=ordered,
        missing=missing,
        extra=extra,
        failed=failed,
        resamples=resamples,
        seed=seed,
        level=level,
    )


def model_scorer(model, **options) -> Scorer:
    """A `Scorer` from a loaded QE `vqscore.Model` or `vqscore.bag.ModelBag`: every call goes through the fast
    corpus path at once (length-sorted batches, decoding workers) with the model's conditioning, pooling and
    long-file policy, as `vqscore score` does; a bag's members score each file from one decode and give their mean.
    `options` go to `corpus.score_file_batches` (num_workers, threads, batch_frames, ...)."""
    from .bag import scoring_members
    from .corpus import score_paths_in_order  # the worker machinery is imported only when a model scores

    networks, poolings = scoring_members(model)

    def score(paths: Sequence[str]) -> list[float | str]:
        results = score_paths_in_order(
            networks, paths, policy=model.policy, conditioning=model.conditioning, pooling=poolings, **options
        )
        return [r.error or r.score.cos_z for r in results]

    return score
