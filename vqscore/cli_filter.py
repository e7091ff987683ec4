"""`vqscore filter`: keep the cleanest files of a corpus by VQScore and write a manifest of every file.

Scoring is `vqscore score` itself, into a results table beside the manifest (or the `--scores` table): crash-safe and
resumed, so a killed run loses nothing scored and the next run scores only the files the table lacks. The manifest
(path, vqscore, kept, reason) is then decided from that table and written atomically.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from .audio import audio_extensions
from .cli import UsageError, build_parser, cmd_score
from .results import csv_header, format_row, is_jsonl, read_table, replace_text
from .walk import find_audio_files

MANIFEST_COLUMNS = ("path", "vqscore", "kept", "reason")
NO_SCORE = "no score (digital silence: nothing to judge)"


def percentage(text: str) -> float:
    """'20%' or '20' -> 20.0; above 0 and at most 100."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 100.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a percentage above 0 and at most 100, like 20% or 20; got {text!r}")
    return value


def threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, like 0.75; got {text!r}")
    return value


def add_parser(sub) -> None:
    filt = sub.add_parser(
        "filter",
        help="keep the files of a corpus that score above a threshold or in the top percent",
        description=(
            "Score every audio file under the given paths (walked like 'score') and write a manifest of every file: "
            "path, vqscore, kept (true/false), reason (why a file was dropped: 'below T', 'not above T' for a score "
            "equal to T, 'not in top P%', the error of a file that cannot be read, or no score for digital silence; "
            "empty when kept). Scores go to a 'vqscore score' table, NAME.scores.csv beside the manifest NAME.csv, or "
            "--scores TABLE, which is resumed: a killed run loses nothing scored, and files the table already holds "
            "are not scored again. Exit status 0 when the manifest is written (files that failed are in it, dropped "
            "with their error); 2 for a usage, device, model or table error."
        ),
    )
    filt.add_argument("paths", nargs="+", metavar="CORPUS", help="audio files or folders")
    keep = filt.add_mutually_exclusive_group(required=True)
    keep.add_argument("--keep-above", type=threshold, metavar="T", help="keep files whose VQScore is above T")
    keep.add_argument(
        "--keep-top",
        type=percentage,
        metavar="P%",
        help="keep the P%% best-scoring files ('20%%' or '20'): of the N files with a score, the ceil(P*N/100) "
        "highest, equal scores in walk order",
    )
    filt.add_argument(
        "-o", "--output", dest="manifest", metavar="MANIFEST", required=True, help="the manifest: .csv or .jsonl"
    )
    filt.add_argument(
        "--scores",
        metavar="TABLE",
        help="a 'vqscore score' results table (.csv or .jsonl) of the same model to reuse and complete: files it "
        "holds (scored or failed) are not scored again, the others are scored and added to it (default: "
        "NAME.scores.csv beside the manifest NAME.csv; NAME.scores.jsonl for NAME.jsonl)",
    )
    filt.add_argument(
        "--model",
        default="default",
        help="QE model: shipped bundle name, bundle JSON, official checkpoint, or a bag of QE models (shipped bag name "
        "or bag JSON) (default: %(default)s)",
    )
    filt.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda or cuda:1 (default: cpu)")
    filt.add_argument(
        "--overwrite", action="store_true", help="score every file again, replacing the scores table instead of resuming it"
    )
    filt.set_defaults(func=cmd_filter)


def cmd_filter(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest)
    if manifest.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise UsageError(f"-o {manifest}: expected a .csv or .jsonl manifest")
    table = Path(args.scores) if args.scores else manifest.with_name(f"{manifest.stem}.scores{manifest.suffix}")
    if table.resolve() == manifest.resolve():
        raise UsageError("--scores must name a different file from -o (the manifest)")
    files = find_audio_files(args.paths, audio_extensions())
    if not files:
        print("vqscore filter: no audio files found under the given paths", file=sys.stderr)
        return 1
    args.output = str(table)  # main's Ctrl-C message names args.output: the table that keeps every score so far
    cmd_score(score_args(args, table))  # its exit status 1 (some files failed) is not ours: they are dropped below
    entries = decide(files, read_table(table), above=args.keep_above, top=args.keep_top)
    write_manifest(manifest, entries)
    print(f"vqscore filter: {summary(entries)} -> {manifest} (scores in {table})", file=sys.stderr)
    return 0


def score_args(args: argparse.Namespace, table: Path) -> argparse.Namespace:
    """The options of the `vqscore score` run that fills the scores table."""
    options = ["-o", str(table), "--model", args.model]
    options += ["--device", args.device] if args.device else []
    options += ["--overwrite"] if args.overwrite else []
    return build_parser().parse_args(["score", *options, "--", *args.paths])  # "--": a path may start with "-"


def score_of(row: dict) -> float:
    """A table row's VQScore (NaN when empty: digital silence, or a failed file)."""
    value = row.get("vqscore")
    return math.nan if value in (None, "") else float(value)


def decide(paths: Sequence[str], rows: dict[str, dict], above: float | None = None, top: float | None = None) -> list[dict]:
    """One manifest entry (path, vqscore, kept, reason) per path, in the order given, from the table rows.

    above: keep scores > above. top: keep the ceil(top * N / 100) highest of the N files with a score (equal scores
    in the order given). Files without a row, with an error or with no score (NaN) are dropped, saying why."""
    if (above is None) == (top is None):
        raise ValueError("give exactly one of above and top")
    entries = []
    for path in paths:
        row = rows.get(path)
        if row is None:  # cannot happen after a complete scoring run; never keep what was not scored
            entries.append({"path": path, "vqscore": None, "kept": False, "reason": "not scored"})
            continue
        score = score_of(row)
        reason = row.get("error") or ("" if math.isfinite(score) else NO_SCORE)
        entries.append({"path": path, "vqscore": None if reason else score, "kept": not reason, "reason": reason})
    scored = [e for e in entries if e["kept"]]
    if above is not None:
        for e in scored:
            if e["vqscore"] <= above:
                e["kept"] = False
                e["reason"] = f"below {above}" if e["vqscore"] < above else f"not above {above}"
    else:
        # round() first: 20% of 10 files is 2.0000000000000004 in floating point, which must keep 2, not 3
        count = math.ceil(round(top * len(scored) / 100.0, 9))
        ranked = sorted(range(len(scored)), key=lambda i: -scored[i]["vqscore"])  # stable: ties in path order
        for i in ranked[count:]:
            scored[i]["kept"] = False
            scored[i]["reason"] = f"not in top {top:g}%"
    return entries


def write_manifest(path: Path, entries: list[dict]) -> None:
    """The manifest, written atomically (kept: true/false in CSV, JSON booleans in JSON lines)."""
    jsonl = is_jsonl(path)
    lines = []
    for e in entries:
        values = e if jsonl else {**e, "kept": "true" if e["kept"] else "false"}
        lines.append(format_row(values, jsonl, MANIFEST_COLUMNS))
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_text(path, ("" if jsonl else csv_header(MANIFEST_COLUMNS)) + "".join(lines))


def summary(entries: list[dict]) -> str:
    """'kept 12 of 20 files (6 below 0.75, 2 failed)'-like counts of the decisions."""
    kept = sum(e["kept"] for e in entries)
    failed = sum(1 for e in entries if not e["kept"] and e["vqscore"] is None and e["reason"] != NO_SCORE)
    silent = sum(1 for e in entries if e["reason"] == NO_SCORE)
    dropped = len(entries) - kept - failed - silent
    parts = [f"{dropped} dropped by score"] + [f"{failed} failed"] * bool(failed) + [f"{silent} silent"] * bool(silent)
    return f"kept {kept} of {len(entries)} files, {len(entries) - kept} dropped ({', '.join(parts)})"
