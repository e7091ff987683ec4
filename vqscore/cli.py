"""`vqscore` command line: score files and folders, list shipped models, convert official checkpoints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .api import load
from .audio import AudioError, audio_extensions
from .bundle import BundleError, find_shipped, save_bundle, shipped_bundles
from .engine import DEFAULT_BATCH_FRAMES, GPU_BATCH_FRAMES
from .longform import MAX_WHOLE_S, WINDOW_S, LongformPolicy
from .models import build_model
from .official import OfficialCheckpointError, load_official
from .results import (
    COLUMNS,
    ResultsError,
    ResultsFile,
    WindowsFile,
    csv_header,
    format_row,
    is_jsonl,
    row_values,
    window_rows,
)
from .walk import find_audio_files

__all__ = ["COLUMNS", "Row", "build_parser", "main"]


@dataclass
class Row:
    path: str
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    vqscore: float | None = None
    l2_z: float | None = None
    error: str = ""

    def values(self) -> dict:
        return {c: getattr(self, c) for c in COLUMNS}


class StdoutRows:
    """CSV/JSONL on stdout, in the order the files were named (a reorder buffer over completion order)."""

    def __init__(self, order: Sequence[str], jsonl: bool):
        self.position = {p: i for i, p in enumerate(order)}
        self.ready: dict[int, dict] = {}
        self.next = 0
        self.jsonl = jsonl
        if not jsonl:
            sys.stdout.write(csv_header())
        sys.stdout.flush()

    def write(self, rows) -> None:
        for values in rows:
            self.ready[self.position[values["path"]]] = values
        while self.next in self.ready:
            sys.stdout.write(format_row(self.ready.pop(self.next), self.jsonl))
            self.next += 1
        sys.stdout.flush()


def cmd_score(args: argparse.Namespace) -> int:
    usage = usage_error(args)
    if usage:
        print(f"vqscore score: error: {usage}", file=sys.stderr)
        return 2
    files = find_audio_files(args.paths, audio_extensions())
    if not files:
        print("vqscore score: no audio files found under the given paths", file=sys.stderr)
        return 1
    policy = LongformPolicy(args.max_whole_s, args.window_s)
    if args.distributed:
        from .distributed import score_distributed  # Lightning is imported only here

        return score_distributed(args, files, policy)
    model = load(args.model, device=args.device)
    from .corpus import score_file_batches

    if args.output:
        try:
            table = ResultsFile(args.output, resume=not args.overwrite)
        except ResultsError as exc:
            print(f"vqscore score: error: {exc}", file=sys.stderr)
            return 2
        done = table.done
        sink = table
    else:
        table, done = None, {}
        sink = StdoutRows(files, is_jsonl(None))
    # resumed with the main table: window rows of files it does not hold are dropped (they are scored again)
    windows = WindowsFile(args.windows, resume=table is not None and not args.overwrite, keep=done) if args.windows else None
    todo = [f for f in files if f not in done]
    skipped = len(files) - len(todo)
    bar = tqdm(total=len(files), initial=skipped, unit="file", disable=None, file=sys.stderr, desc="scoring")
    failed = {f for f in files if done.get(f)}
    try:
        batches = score_file_batches(
            model.network,
            todo,
            batch_frames=args.batch_frames,
            num_workers=args.workers,
            threads=args.threads,
            lanes=args.lanes,
            policy=policy,
        )
        for results in batches:
            if windows is not None:  # before the main rows: a file in the main table has its windows written
                windows.write([w for r in results for w in window_rows(r)])
            rows = [row_values(r) for r in results]
            sink.write(rows)
            failed.update(r["path"] for r in rows if r["error"])
            bar.update(len(rows))
    finally:
        bar.close()
        if table is not None:
            table.close()
        if windows is not None:
            windows.close()
    if table is not None:
        table.finalize(files)
    if windows is not None:
        windows.finalize(files)
    note = f" ({skipped} already in {args.output})" if skipped else ""
    print(
        f"vqscore score: {len(files) - len(failed)} scored, {len(failed)} failed{note}"
        + (f" -> {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def usage_error(args: argparse.Namespace) -> str:
    """Why the options of `vqscore score` cannot be used together, or ''."""
    if args.distributed and not args.output:
        return "--distributed needs -o/--output"
    if not args.max_whole_s > 0 or not args.window_s > 0:
        return "--max-whole-s and --window-s must be positive"
    if args.windows and args.output and Path(args.windows).resolve() == Path(args.output).resolve():
        return "--windows must name a different file from -o/--output"
    return ""


def describe_data(training: dict) -> str:
    data = training.get("data")
    if isinstance(data, dict):
        return f"{data.get('hours', '?')} h, {data.get('files', '?')} files, {data.get('speakers', '?')} speakers"
    return str(data or "")


def cmd_models(args: argparse.Namespace) -> int:
    bundles = shipped_bundles()
    if not bundles:
        print("no bundles are shipped in pretrained/")
        return 0
    default = find_shipped("default").name if any(b.kind == "qe" for b in bundles) else None
    print("name\tkind\tversion\ttrained on\tbundle")
    for b in bundles:
        mark = " (default)" if b.name == default else ""
        print(f"{b.name}{mark}\t{b.kind}\tv{b.version}\t{describe_data(b.training)}\t{b.path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    config, state = load_official(args.checkpoint)
    network = build_model(config)
    network.load_state_dict(state, strict=True)
    training = {"source": f"official VQScore checkpoint {Path(args.checkpoint).name}", "data": args.data}
    path = save_bundle(network, args.output_dir, args.name, args.version, training)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqscore",
        description="Non-intrusive speech quality (VQScore) from a VQ-VAE trained on clean speech only.",
        epilog="Run 'vqscore COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"vqscore {__import__('vqscore').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = sub.add_parser(
        "score",
        help="score audio files and folders",
        description=(
            "Score audio files and folders (walked recursively for audio suffixes; files named explicitly are always "
            "tried). One row per file: path, duration_s, sample_rate, channels, vqscore (cos_z, higher is cleaner), "
            "l2_z (lower is cleaner), error. A file that cannot be read or scored gets a row with its error and the "
            "run goes on; the exit status is 1 if any file failed. Digitally silent files score NaN (empty in CSV, "
            "null in JSONL). Rows are written as batches finish and the table is put in file order at the end; an "
            "existing OUT is resumed (files it holds are skipped), so a killed run can simply be started again. "
            "Recordings longer than 30 minutes are scored in 60-second windows (their frame-weighted mean); "
            "--windows writes each window's scores to a second table."
        ),
    )
    score.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    score.add_argument(
        "-o", "--output", metavar="OUT", help="output file: .csv, or .jsonl/.ndjson for JSON lines (default: CSV on stdout)"
    )
    score.add_argument(
        "--model", default="default", help="shipped bundle name, bundle JSON, or official checkpoint (default: %(default)s)"
    )
    score.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda or cuda:1 (default: cpu)")
    score.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT instead of resuming it (by default rows are appended to an existing OUT and the files it "
        "already holds, scored or failed, are skipped)",
    )
    score.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decoding worker processes (default on CPU: half the physical cores, at least 2; with a GPU: all CPUs but one; 0 decodes in the main process)",
    )
    score.add_argument(
        "--threads", type=int, default=None, metavar="N", help="the model's CPU threads (default: one per physical core)"
    )
    score.add_argument(
        "--lanes",
        type=int,
        default=None,
        metavar="N",
        help="batches scored concurrently, each with threads/N intra-op threads (default: one per thread on CPU, 1 on a GPU)",
    )
    score.add_argument(
        "--batch-frames",
        type=int,
        default=None,
        metavar="N",
        help=f"frames per batch, padding included (default: {DEFAULT_BATCH_FRAMES} on CPU, about 2 minutes of audio; "
        f"{GPU_BATCH_FRAMES} on a GPU)",
    )
    score.add_argument(
        "--windows",
        metavar="WOUT",
        help="also write the per-window scores of files scored in windows to WOUT (.csv or .jsonl): path, window "
        "(0, 1, ...), start_s, end_s, vqscore, l2_z, frames; resumed together with OUT",
    )
    score.add_argument(
        "--max-whole-s",
        type=float,
        default=MAX_WHOLE_S,
        metavar="S",
        help="longest recording (seconds at 16 kHz) scored whole, exactly; longer ones are windowed (default: %(default)g)",
    )
    score.add_argument(
        "--window-s",
        type=float,
        default=WINDOW_S,
        metavar="S",
        help="window length for longer recordings, rounded to the 256-sample hop (default: %(default)g)",
    )
    score.add_argument(
        "--distributed",
        type=int,
        default=0,
        metavar="N",
        help="score with N processes under Lightning DDP (gloo on CPU, NCCL on GPUs; needs the 'train' extra and -o): "
        "one shard per rank, merged into OUT at the end; resumable like a normal run",
    )
    score.set_defaults(func=cmd_score)

    models = sub.add_parser(
        "models",
        help="list the bundles shipped in pretrained/",
        description="List shipped bundles: name, kind, version, path, training data.",
    )
    models.set_defaults(func=cmd_models)

    convert = sub.add_parser(
        "convert",
        help="convert an official VQScore checkpoint to a bundle",
        description="Read an official checkpoint ({'model': {'VQVAE': state_dict}}, loaded with weights_only=True) and write it as a bundle (JSON + safetensors with its sha256).",
    )
    convert.add_argument("checkpoint", help="official .pkl/.pt checkpoint")
    convert.add_argument("output_dir", help="folder to write <name>.json and <name>-<sha8>.safetensors into")
    convert.add_argument("--name", required=True, help="bundle name, e.g. vqscore-qe-official")
    convert.add_argument("--version", default="1.0.0", help="bundle version (default: %(default)s)")
    convert.add_argument("--data", default="", help="what the model was trained on, for the bundle's training note")
    convert.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BundleError, OfficialCheckpointError, AudioError, ResultsError, FileNotFoundError) as exc:
        print(f"vqscore {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
