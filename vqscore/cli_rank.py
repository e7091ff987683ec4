"""`vqscore rank`: rank enhancement systems (folders of outputs of the same inputs) by VQScore, without references.

Options and presentation only: the ranking is `vqscore.ranking`. Prints the ranked table, the pairwise win table
and the files left out (missing, extra, failed); `--table` writes the ranking as CSV or JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .api import Model
from .bag import ModelBag, load_scorer
from .cli import UsageError, check_device
from .pooling import POOLINGS
from .ranking import RESAMPLES, Ranking, RankingError, check_folders, model_scorer, rank_systems
from .results import csv_header, format_row, replace_text

TABLE_COLUMNS = ("rank", "system", "path", "mean", "ci_low", "ci_high", "files")
# files listed per system in the printed report (the JSON table lists them all)
LIST_LIMIT = 10


def add_parser(sub) -> None:
    rank = sub.add_parser(
        "rank",
        help="rank enhancement systems by VQScore, without references",
        description=(
            "Rank enhancement systems, each a folder of its outputs for the same inputs, by their mean VQScore "
            "(higher is cleaner). Files are matched by their path inside each folder (walked for audio suffixes like "
            "'score'); only files present in every folder and scored in every system are used, and the others are "
            "listed (missing, extra, failed: a file that cannot be read is dropped from every system). Prints the "
            "ranking (rank, system, mean, confidence interval from a paired bootstrap over the files, files), the "
            "pairwise win table (the share of files on which one system scores above another, ties half) and that "
            "report. Exit status 0 when a ranking is printed (even if some files failed); 2 for fewer than two "
            "folders, no file common to all, or another usage, device or model error."
        ),
    )
    rank.add_argument("systems", nargs="+", metavar="SYSTEM_DIR", help="one folder of output files per system")
    rank.add_argument(
        "--model",
        default="default",
        help="QE model: shipped bundle name, bundle JSON, or official checkpoint; or a bag of QE models (shipped bag "
        "name or bag JSON: a file's score is the mean of the members') (default: %(default)s)",
    )
    rank.add_argument(
        "--pooling",
        choices=POOLINGS,
        default=None,
        help="how per-frame scores make a file's VQScore: 'mean', 'median', 'p25' or 'p10' (default: the one the model "
        "declares)",
    )
    rank.add_argument(
        "--bootstrap",
        type=int,
        default=RESAMPLES,
        metavar="N",
        help="bootstrap resamples of the common files for the 95%% intervals (default: %(default)s)",
    )
    rank.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default: %(default)s)")
    rank.add_argument(
        "--table",
        metavar="OUT",
        help="also write the ranking to OUT: .csv (rank, system, path, mean, ci_low, ci_high, files, and wins_vs_SYSTEM "
        "per system) or .json (the same, plus the model, the bootstrap settings and every missing, extra and failed file)",
    )
    rank.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda or cuda:1 (default: cpu)")
    rank.set_defaults(func=cmd_rank)


def cmd_rank(args: argparse.Namespace) -> int:
    # everything that can be refused is refused before the model loads and the files are scored
    table = check_table(args.table)
    if args.bootstrap < 1:
        raise UsageError(f"--bootstrap {args.bootstrap}: need at least 1 resample")
    try:
        check_folders(args.systems)
    except RankingError as exc:
        raise UsageError(str(exc)) from None
    model = load_scorer(args.model, device=check_device(args.device))
    if model.kind != "qe":
        raise UsageError(f"--model {model.name} is an SE (enhancement) model; rank needs a QE (quality) model")
    if args.pooling is not None:
        model = model.with_pooling(args.pooling)
    try:
        ranking = rank_systems(args.systems, model_scorer(model), resamples=args.bootstrap, seed=args.seed)
    except RankingError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write("\n".join([*ranking_lines(ranking), "", *win_lines(ranking), "", *report_lines(ranking)]) + "\n")
    sys.stdout.flush()
    if table is not None:
        write_table(ranking, table, model)
    target = f" -> {table}" if table is not None else ""
    print(f"vqscore rank: {len(ranking.systems)} systems ranked on {ranking.common} common files{target}", file=sys.stderr)
    return 0


def check_table(name: str | None) -> Path | None:
    if name is None:
        return None
    path = Path(name)
    if path.suffix.lower() not in (".csv", ".json"):
        raise UsageError(f"--table {name}: expected a .csv or .json file")
    return path


def aligned(rows: Sequence[Sequence[str]], left: frozenset[int] = frozenset({0})) -> list[str]:
    """Rows of cells as lines, columns two spaces apart: the columns in `left` left-aligned, the others right."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if c in left else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def ranking_lines(ranking: Ranking) -> list[str]:
    rows = [["rank", "system", "mean", f"{ranking.level * 100:g}% CI", "files"]]
    for k, s in enumerate(ranking.systems, 1):
        rows.append([str(k), s.name, f"{s.mean:.4f}", f"{s.ci_low:.4f} - {s.ci_high:.4f}", str(s.files)])
    return aligned(rows, left=frozenset({1}))


def win_lines(ranking: Ranking) -> list[str]:
    names = [s.name for s in ranking.systems]
    rows = [["", *names]]
    for a, name in enumerate(names):
        rows.append([name, *("-" if a == b else f"{ranking.wins[a, b]:.3f}" for b in range(len(names)))])
    note = (
        f"wins: share of the {ranking.common} common files on which the row's system scores above the column's "
        "(ties count half)"
    )
    return [note, *aligned(rows)]


def listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:LIST_LIMIT])
    more = len(items) - LIST_LIMIT
    return shown + (f", ... and {more} more (all in --table .json)" if more > 0 else "")


def report_lines(ranking: Ranking) -> list[str]:
    lines = [f"used: {ranking.common} files present and scored in every system (means, intervals and wins use only these)"]
    for name, files in ranking.missing.items():
        lines.append(f"missing from {name} ({len(files)}, present in another system): {listed(files)}")
    for name, files in ranking.extra.items():
        lines.append(f"extra in {name} ({len(files)}, not in every system, not used): {listed(files)}")
    for name, entries in ranking.failed.items():
        lines.append(f"failed in {name} ({len(entries)}, dropped from every system):")
        # errors of the corpus scorer start with the file's path; a custom scorer's may not name the file
        lines.extend(f"  {error}" if rel in error else f"  {rel}: {error}" for rel, error in entries[:LIST_LIMIT])
        if len(entries) > LIST_LIMIT:
            lines.append(f"  ... and {len(entries) - LIST_LIMIT} more (all in --table .json)")
    return lines


def table_rows(ranking: Ranking) -> tuple[tuple[str, ...], list[dict]]:
    """(columns, one row per system best first) of the CSV table."""
    wins = tuple(f"wins_vs_{s.name}" for s in ranking.systems)
    rows = []
    for k, s in enumerate(ranking.systems):
        row = {"rank": k + 1, "system": s.name, "path": s.path, "mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high}
        row["files"] = s.files
        row.update({column: float(ranking.wins[k, b]) for b, column in enumerate(wins)})
        rows.append(row)
    return TABLE_COLUMNS + wins, rows


def ranking_json(ranking: Ranking, model: Model | ModelBag) -> dict:
    columns, rows = table_rows(ranking)
    return {
        "model": model.tag,
        "scoring": model.scoring,
        "bootstrap": {"resamples": ranking.resamples, "seed": ranking.seed, "level": ranking.level},
        "common": ranking.common,
        "systems": [{c: row[c] for c in TABLE_COLUMNS} for row in rows],
        "wins": {"systems": [s.name for s in ranking.systems], "matrix": ranking.wins.tolist()},
        "missing": {name: list(files) for name, files in ranking.missing.items()},
        "extra": {name: list(files) for name, files in ranking.extra.items()},
        "failed": {
            name: [{"file": rel, "error": error} for rel, error in entries] for name, entries in ranking.failed.items()
        },
    }


def write_table(ranking: Ranking, path: Path, model: Model | ModelBag) -> None:
    """The ranking as CSV or JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        text = json.dumps(ranking_json(ranking, model), indent=2) + "\n"
    else:
        columns, rows = table_rows(ranking)
        text = csv_header(columns) + "".join(format_row(row, False, columns) for row in rows)
    replace_text(path, text)
