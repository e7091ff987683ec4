"""`vqscore select`: every member of an ensemble enhances each file, the selector keeps the best output per file.

Outputs mirror the inputs like `vqscore enhance` (OUTDIR/<path inside the input folder>.wav); the table has one row
per file with the chosen member and every member's score and weight (1/0 for a hard pick, the softmax weight where
the ensemble's selector has a temperature), is appended as files finish and resumed like `score`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .audio import AudioError, load_audio
from .cli import plan_output_tree
from .enhance_files import DEFAULT_SUBTYPE, FILE_ERRORS, SUBTYPES, silence_error, write_output
from .ensemble import Ensemble, EnsembleError
from .results import ResultsFile, Stamp
from .scoring import check_length

MIN_SAMPLES = 512  # one STFT window of the members' 16 kHz front ends
MAX_SECONDS = 600.0  # every member's output is held in memory until the pick: K x 10 min x 64 kB/s stays small


def select_columns(members: tuple[str, ...]) -> tuple[str, ...]:
    return (
        "path",
        "output",
        "duration_s",
        "sample_rate",
        "channels",
        "chosen",
        *(f"score:{m}" for m in members),
        *(f"weight:{m}" for m in members),
        "enhance_s",
        "score_s",
        "error",
        "model",
        "scoring",
    )


def ensemble_tag(ensemble: Ensemble) -> str:
    """The ensemble's name and a hash of its definition: a table is resumed only by the same members and options."""
    digest = hashlib.sha256(json.dumps(ensemble.spec.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    return f"{ensemble.name}#{digest}"


def select_file(ensemble: Ensemble, path: str, output: str, rate: int | None, subtype: str, max_seconds: float) -> dict:
    """One file: read, every member, the pick (or soft mix), the kept output written; a row (with `error` on failure)."""
    row: dict = {"path": path}
    try:
        audio = load_audio(path)
        row.update(duration_s=audio.duration_s, sample_rate=audio.source_rate, channels=audio.source_channels)
        check_length(audio.samples, MIN_SAMPLES, path)
        if audio.duration_s > max_seconds:
            raise AudioError(
                f"{path}: {audio.duration_s:.0f} s is longer than --max-seconds {max_seconds:g}; split it or raise the limit"
            )
        if not np.any(audio.samples):
            raise silence_error(path)
        outputs, seconds = ensemble.run_members(audio.samples, path)
        selection = ensemble.select(outputs, seconds, name=path)
        write_output([selection.audio], output, rate or audio.source_rate, subtype)
    except (*FILE_ERRORS, EnsembleError) as exc:
        row["error"] = str(exc)
        return row
    row.update(output=output, chosen=selection.chosen, enhance_s=sum(seconds.values()), score_s=selection.score_seconds)
    row.update({f"score:{m.member}": m.score for m in selection.members})
    row.update({f"weight:{m.member}": m.weight for m in selection.members})
    return row


def cmd_select(args: argparse.Namespace) -> int:
    outdir, outputs = plan_output_tree(args)
    files = list(outputs)
    if not files:
        print("vqscore select: no audio files found under the given paths", file=sys.stderr)
        return 1
    ensemble = Ensemble.load(args.ensemble, device=args.device, selector=args.selector)
    args.output = Path(args.table) if args.table else outdir / "select.csv"  # named by main() if interrupted
    rate = f"{args.rate} Hz" if args.rate else "input rate"
    stamp = Stamp(ensemble_tag(ensemble), f"{ensemble.selector.name}; {args.subtype} at {rate}")
    table = ResultsFile(args.output, resume=not args.overwrite, columns=select_columns(ensemble.member_names), stamp=stamp)
    todo = [f for f in files if f not in table.done]
    skipped = len(files) - len(todo)
    failed = {f for f in files if table.done.get(f)}
    bar = tqdm(total=len(files), initial=skipped, unit="file", disable=None, file=sys.stderr, desc="selecting")
    chosen: dict[str, int] = {}
    try:
        for path in todo:
            row = select_file(ensemble, path, outputs[path], args.rate, args.subtype, args.max_seconds)
            table.write([row])
            if row.get("error"):
                failed.add(path)
            else:
                chosen[row["chosen"]] = chosen.get(row["chosen"], 0) + 1
            bar.update(1)
    finally:
        bar.close()
        table.close()
    table.finalize(files)
    picks = ", ".join(f"{m} {n}" for m, n in sorted(chosen.items(), key=lambda kv: -kv[1]))
    note = f" ({skipped} already in {args.output})" if skipped else ""
    print(
        f"vqscore select: {len(files) - len(failed)} done, {len(failed)} failed{note} -> {outdir} ({args.output})"
        + (f"; chosen: {picks}" if picks else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def add_parser(sub) -> None:
    select = sub.add_parser(
        "select",
        help="enhance with every member of an ensemble and keep the best output per file",
        description=(
            "Enhance audio files and folders with every member of an ensemble (a shipped name or an ensemble "
            "JSON/YAML file) and keep, per file, the output the selector scores highest (VQScore by default: no "
            "reference needed). Outputs mirror the inputs like 'enhance' (OUTDIR/PATH-INSIDE-THE-FOLDER.wav, mono, at "
            "the input's rate unless --rate). One row per file in the table (OUTDIR/select.csv by default): path, "
            "output, duration_s, sample_rate, channels, chosen (the member kept, or weighted most), score:MEMBER for "
            "every member (higher is better), weight:MEMBER (its share of the written audio: 1 or 0, or softmax "
            "weights where the ensemble's selector has a temperature), enhance_s and score_s (seconds spent enhancing and scoring), error, model (the "
            "ensemble's name#hash of its definition), scoring (selector and output format). A file that cannot be "
            "read, is shorter than 32 ms, longer than --max-seconds or silent, or on which a member fails gets a row "
            "with its error and the run goes on (exit status 1). The table is resumed like 'score'."
        ),
    )
    select.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    select.add_argument("-o", "--output", dest="outdir", metavar="OUTDIR", required=True, help="folder for the chosen outputs")
    select.add_argument("--ensemble", default="default", help="shipped ensemble name or ensemble file (default: %(default)s)")
    select.add_argument(
        "--selector",
        default=None,
        choices=("vqscore", "ae-error", "dnsmos"),
        help="override the ensemble's selector (default: the file's, usually vqscore)",
    )
    select.add_argument("--table", metavar="TABLE", help="results table, .csv or .jsonl (default: OUTDIR/select.csv)")
    select.add_argument("--device", default=None, help="torch device for the members and the score (default: cpu)")
    select.add_argument("--rate", type=int, default=None, metavar="HZ", help="output sample rate (default: each input's)")
    select.add_argument(
        "--subtype", choices=SUBTYPES, default=DEFAULT_SUBTYPE, help="WAV sample format (default: %(default)s)"
    )
    select.add_argument(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        metavar="S",
        help="longest file selected (every member's output is held in memory) (default: %(default)g)",
    )
    select.add_argument("--overwrite", action="store_true", help="replace the table instead of resuming it")
    select.set_defaults(func=cmd_select)
