"""`vqscore` command line: score files and folders, enhance them, list shipped models, convert official checkpoints;
rank enhancement systems and filter corpora (`cli_rank.py`, `cli_filter.py`).

Exit status (score and enhance): 0 every file done; 1 some files failed (each has a row with its error); 2 a usage,
device, model or output error (one line on stderr); 130 interrupted (rerunning the same command resumes); 141 the
output pipe closed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .api import Model, load
from .audio import AudioError, audio_extensions
from .bag import find_bag, load_scorer, scoring_members
from .bundle import BundleError, find_shipped, save_bundle, shipped_bundles
from .conditioning import CONDITIONINGS
from .engine import DEFAULT_BATCH_FRAMES, GPU_BATCH_FRAMES
from .enhance import CPU_BATCH_FRAMES as ENHANCE_CPU_BATCH_FRAMES
from .enhance import GPU_BATCH_FRAMES as ENHANCE_GPU_BATCH_FRAMES
from .enhance_files import DEFAULT_SUBTYPE, FILE_ERRORS, SUBTYPES, EnhancedFile, OutputPlanError, enhance_files, plan_outputs
from .enhance_long import MAX_WHOLE_S as ENHANCE_MAX_WHOLE_S
from .enhance_long import OVERLAP_S as ENHANCE_OVERLAP_S
from .enhance_long import WINDOW_S as ENHANCE_WINDOW_S
from .enhance_long import EnhancePolicy
from .ensemble import EnsembleError
from .longform import MAX_WHOLE_S, WINDOW_S, LongformPolicy
from .models import build_model
from .official import OfficialCheckpointError, load_official
from .pooling import POOLINGS
from .results import (
    COLUMNS,
    ENHANCE_COLUMNS,
    ResultsError,
    ResultsFile,
    Stamp,
    WindowsFile,
    csv_header,
    format_row,
    is_jsonl,
    row_values,
    window_rows,
)
from .walk import find_audio_files, walk_sources

__all__ = ["COLUMNS", "ENHANCE_COLUMNS", "Row", "build_parser", "main"]


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


class UsageError(Exception):
    """A command that cannot run as given; main() prints it on one line and exits 2."""


class StdoutRows:
    """CSV/JSONL on stdout, in the order the files were named (a reorder buffer over completion order)."""

    def __init__(self, order: Sequence[str], jsonl: bool, stamp: Stamp):
        self.stamp = stamp
        self.position = {p: i for i, p in enumerate(order)}
        self.ready: dict[int, dict] = {}
        self.next = 0
        self.jsonl = jsonl
        if not jsonl:
            sys.stdout.write(csv_header())
        sys.stdout.flush()

    def write(self, rows) -> None:
        for values in rows:
            self.ready[self.position[values["path"]]] = {**values, **self.stamp.values()}
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
    device = check_device(args.device)
    if args.distributed:
        from .distributed import score_distributed  # Lightning is imported only here

        return score_distributed(args, files, policy)
    model = load_scorer(args.model, device=device, pooling=args.pooling, conditioning=args.conditioning)
    model.policy = policy
    networks, poolings = scoring_members(model)
    conditioning = model.conditioning  # a bag whose members differ fails here, before any file is read
    stamp = Stamp(model.tag, model.scoring)
    from .corpus import score_file_batches

    if args.output:
        table = ResultsFile(args.output, resume=not args.overwrite, stamp=stamp)
        done = table.done
        sink = table
    else:
        table, done = None, {}
        sink = StdoutRows(files, is_jsonl(None), stamp)
    # resumed with the main table: window rows of files it does not hold are dropped (they are scored again)
    windows = WindowsFile(args.windows, resume=table is not None and not args.overwrite, keep=done) if args.windows else None
    todo = [f for f in files if f not in done]
    skipped = len(files) - len(todo)
    mos_scale = model.mos_scale
    bar = tqdm(total=len(files), initial=skipped, unit="file", disable=None, file=sys.stderr, desc="scoring")
    failed = {f for f in files if done.get(f)}
    try:
        batches = score_file_batches(
            networks,
            todo,
            batch_frames=args.batch_frames,
            num_workers=args.workers,
            threads=args.threads,
            lanes=args.lanes,
            policy=policy,
            conditioning=conditioning,
            pooling=poolings,
        )
        for results in batches:
            if windows is not None:  # before the main rows: a file in the main table has its windows written
                windows.write([w for r in results for w in window_rows(r)])
            rows = [row_values(r, mos_scale) for r in results]
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


def check_device(name: str | None) -> str | None:
    """The --device value if this machine has it; `UsageError` (exit 2) naming the problem otherwise."""
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a torch device; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name}: CUDA is not available (this torch build has no CUDA support or no GPU is visible); "
                "use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"--device {name}: vqscore runs on cpu, cuda or mps, not {device.type}")
    return name


def usage_error(args: argparse.Namespace) -> str:
    """Why the options of `vqscore score` cannot be used together, or ''."""
    if args.distributed and not args.output:
        return "--distributed needs -o/--output"
    if args.distributed and find_bag(args.model) is not None:
        return f"--distributed scores with one model; {args.model} is a bag (score it without --distributed)"
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


def cmd_enhance(args: argparse.Namespace) -> int:
    policy = enhance_policy(args)
    if args.batch_frames is not None and args.batch_frames < 1:
        raise UsageError("--batch-frames must be positive")
    outdir, outputs = plan_output_tree(args)
    files = list(outputs)
    if not files:
        print("vqscore enhance: no audio files found under the given paths", file=sys.stderr)
        return 1
    device = check_device(args.device)
    model = load(args.model, device=device)
    scorer = load(args.score_model, device=device)
    kinds = {"se": "an SE (enhancement) model", "qe": "a QE (quality) model"}
    for option, chosen, kind in (("--model", model, "se"), ("--score-model", scorer, "qe")):
        if chosen.kind != kind:
            raise UsageError(f"{option} {chosen.name} is {kinds[chosen.kind]}; {option} needs {kinds[kind]}")
    rate = f"{args.rate} Hz" if args.rate else "input rate"
    stamp = Stamp(model.tag, f"vqscore by {scorer.tag} ({scorer.scoring}); {policy.describe()}; {args.subtype} at {rate}")
    table_path = enhance_table(args)
    table = ResultsFile(table_path, resume=not args.overwrite, columns=ENHANCE_COLUMNS, stamp=stamp)
    todo = [f for f in files if f not in table.done]
    skipped = len(files) - len(todo)
    failed = {f for f in files if table.done.get(f)}
    bar = tqdm(total=len(files), initial=skipped, unit="file", disable=None, file=sys.stderr, desc="enhancing")
    try:
        jobs = [(f, outputs[f]) for f in todo]
        batches = enhance_files(
            model.network, jobs, rate=args.rate, subtype=args.subtype, policy=policy, batch_frames=args.batch_frames
        )
        for outcomes in batches:
            rows = enhance_rows(outcomes, scorer)
            table.write(rows)
            failed.update(r["path"] for r in rows if r["error"])
            bar.update(len(rows))
    finally:
        bar.close()
        table.close()
    table.finalize(files)
    note = f" ({skipped} already in {table_path})" if skipped else ""
    print(
        f"vqscore enhance: {len(files) - len(failed)} enhanced, {len(failed)} failed{note} -> {outdir} ({table_path})",
        file=sys.stderr,
    )
    return 1 if failed else 0


def plan_output_tree(args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """The checks and output plan shared by the commands that write audio (`enhance`, `select`): --rate in range,
    -o a folder, input path -> output path (`enhance_files.plan_outputs`)."""
    if args.rate is not None and not 1000 <= args.rate <= 768_000:
        raise UsageError(f"--rate {args.rate}: expected a sample rate in Hz between 1000 and 768000")
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"-o {outdir}: is a file, not a folder")
    try:
        return outdir, plan_outputs(list(walk_sources(args.paths, audio_extensions())), outdir)
    except OutputPlanError as exc:
        raise UsageError(str(exc)) from None


def enhance_policy(args: argparse.Namespace) -> EnhancePolicy:
    try:
        return EnhancePolicy(args.max_whole_s, args.window_s, args.overlap_s)
    except ValueError as exc:
        raise UsageError(f"--max-whole-s/--window-s/--overlap-s: {exc}") from None


def enhance_table(args: argparse.Namespace) -> Path:
    return Path(args.table) if args.table else Path(args.outdir) / "enhance.csv"


def enhance_rows(outcomes: list[EnhancedFile], scorer: Model) -> list[dict]:
    """Table rows of a batch of enhanced files, with the VQScore of each input and output file."""
    done = [o for o in outcomes if not o.error]
    before = vqscores(scorer, [o.path for o in done])
    after = vqscores(scorer, [o.output for o in done])
    scores = {o.path: (b, a) for o, b, a in zip(done, before, after, strict=True)}
    rows = []
    for o in outcomes:
        values = asdict(o)
        b, a = scores.get(o.path, (None, None))
        for column, value in (("vqscore_in", b), ("vqscore_out", a)):
            if isinstance(value, str):  # scoring failed: the file counts as failed
                values["error"] = values["error"] or value
            else:
                values[column] = value
        rows.append(values)
    return rows


def vqscores(scorer: Model, paths: list[str]) -> list[float | str]:
    """The VQScore of each file, or the error that stopped it (a failing batch is scored again file by file)."""
    if not paths:
        return []
    try:
        return scorer.vqscore(paths)
    except FILE_ERRORS:
        pass
    out: list[float | str] = []
    for path in paths:
        try:
            out.append(scorer.vqscore(path))
        except FILE_ERRORS as exc:
            out.append(f"{path}: scoring failed ({one_line(exc)})")
    return out


def cmd_models(args: argparse.Namespace) -> int:
    bundles = shipped_bundles()
    if not bundles:
        print("no bundles are shipped in pretrained/")
        return 0
    defaults = {}
    for alias in ("default", "default-se"):
        try:
            defaults[find_shipped(alias).path] = alias
        except BundleError:
            pass
    print("name\tkind\tversion\ttrained on\tbundle")
    for b in bundles:
        mark = f" ({defaults[b.path]})" if b.path in defaults else ""
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
        description="Non-intrusive speech quality (VQScore) and self-supervised speech enhancement from VQ-VAEs "
        "trained on clean speech only.",
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
        "--model",
        default="default",
        help="shipped bundle name, bundle JSON, official checkpoint, or a bag of QE models (a shipped bag name such as "
        "vqscore-qe-seeds, or a bag JSON: the mean of the members' scores) (default: %(default)s)",
    )
    score.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda or cuda:1 (default: cpu)")
    score.add_argument(
        "--conditioning",
        choices=sorted(CONDITIONINGS),
        default=None,
        help="input conditioning: 'paper' scores the waveform as given (the official definition); 'robust' trims "
        "leading/trailing digital silence and normalises the level (default: the one the model declares)",
    )
    score.add_argument(
        "--pooling",
        choices=POOLINGS,
        default=None,
        help="how per-frame scores make a file's VQScore: 'mean' (the paper's), 'median', 'p25' or 'p10' (25th/10th "
        "percentile) (default: the one the model declares)",
    )
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
    add_enhance_parser(sub)

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

    from . import cli_filter, cli_rank, cli_select  # here, not at the top: they import this module's helpers

    cli_rank.add_parser(sub)
    cli_filter.add_parser(sub)
    cli_select.add_parser(sub)
    from .demo import command as demo_command  # `vqscore demo`; Streamlit is imported only when it runs

    demo_command.add_parser(sub)

    return parser


def add_enhance_parser(sub) -> None:
    enhance = sub.add_parser(
        "enhance",
        help="enhance audio files and folders with the SE model",
        description=(
            "Enhance audio files and folders (walked recursively for audio suffixes, like 'score') with the "
            "self-supervised VQ-VAE enhancer, writing one mono WAV per input under OUTDIR: a file named itself goes "
            "to OUTDIR/NAME.wav, a file found in a folder to OUTDIR/PATH-INSIDE-THE-FOLDER.wav (a.flac beside a.wav "
            "becomes a.flac.wav). Channels are averaged (the model is mono); the output has the input's sample rate "
            "unless --rate is given. One row per file in the table (OUTDIR/enhance.csv by default): path, output, "
            "duration_s, sample_rate, channels (of the input), vqscore_in, vqscore_out (VQScore of the input and "
            "the output file by --score-model, higher is cleaner), error, model (the SE model's name@version#sha256), "
            "scoring (the score model and the enhancement settings; a table is resumed only by a run with the same "
            "model and scoring). A file that cannot be read, "
            "is shorter than 32 ms or is digital silence gets a row with its error and the run goes on; the exit "
            "status is 1 if any file failed. Rows are appended as files finish and the table is resumed like "
            "'score': a killed run started again skips the files it holds and redoes the rest (outputs are written "
            "under a temporary name and renamed when complete). Recordings up to 30 s are enhanced whole; longer "
            "ones in 30-second windows cross-faded over 1 s, read and written in blocks (memory does not grow with "
            "duration)."
        ),
    )
    enhance.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    enhance.add_argument("-o", "--output", dest="outdir", metavar="OUTDIR", required=True, help="folder for the enhanced files")
    enhance.add_argument(
        "--table",
        metavar="TABLE",
        help="the results table: .csv, or .jsonl/.ndjson for JSON lines (default: OUTDIR/enhance.csv)",
    )
    enhance.add_argument(
        "--model",
        default="default-se",
        help="SE model: shipped bundle name, bundle JSON or official SE checkpoint (default: %(default)s, the "
        "newest shipped vqscore-se-cleanspeech)",
    )
    enhance.add_argument(
        "--score-model",
        default="default",
        metavar="MODEL",
        help="QE model for the vqscore_in/vqscore_out columns, with its own conditioning and pooling (default: "
        "%(default)s, as 'vqscore score')",
    )
    enhance.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda or cuda:1 (default: cpu)")
    enhance.add_argument(
        "--rate",
        type=int,
        default=None,
        metavar="HZ",
        help="write every output at HZ, e.g. 16000 (the model's rate) (default: each input's sample rate; "
        "resampled with soxr)",
    )
    enhance.add_argument(
        "--subtype",
        choices=SUBTYPES,
        default=DEFAULT_SUBTYPE,
        help="WAV sample format: FLOAT keeps the output as computed, PCM_16/PCM_24 clip it to [-1, 1] "
        "(default: %(default)s)",
    )
    enhance.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the table and redo every file instead of resuming (by default files the table holds, "
        "enhanced or failed, are skipped)",
    )
    enhance.add_argument(
        "--batch-frames",
        type=int,
        default=None,
        metavar="N",
        help=f"frames (8 ms each) per batch of short files, padding included (default: {ENHANCE_CPU_BATCH_FRAMES} on "
        f"CPU, about 16 s of audio; {ENHANCE_GPU_BATCH_FRAMES} on a GPU)",
    )
    enhance.add_argument(
        "--max-whole-s",
        type=float,
        default=ENHANCE_MAX_WHOLE_S,
        metavar="S",
        help="longest recording (seconds at 16 kHz) enhanced whole; longer ones are enhanced in windows "
        "(default: %(default)g; the model's attention time grows with the square of the length)",
    )
    enhance.add_argument(
        "--window-s",
        type=float,
        default=ENHANCE_WINDOW_S,
        metavar="S",
        help="window length for longer recordings, rounded to the 128-sample hop (default: %(default)g)",
    )
    enhance.add_argument(
        "--overlap-s",
        type=float,
        default=ENHANCE_OVERLAP_S,
        metavar="S",
        help="overlap of neighbouring windows, cross-faded, less than half a window (default: %(default)g)",
    )
    enhance.set_defaults(func=cmd_enhance)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, BundleError, OfficialCheckpointError, AudioError, ResultsError, EnsembleError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return closed_pipe(args)
        print(f"vqscore {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from .corpus import quiet_hangups

        quiet_hangups()  # workers hanging up while the run winds down are not news
        output = enhance_table(args) if args.command == "enhance" else getattr(args, "output", None)
        again = f"; rows already in {output} are kept: run the same command again to resume" if output else ""
        print(f"vqscore {args.command}: interrupted{again}", file=sys.stderr)
        return 130


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")) or type(exc).__name__


def closed_pipe(args: argparse.Namespace) -> int:
    """The reader of stdout went away (`vqscore score dir | head`): stop quietly, no traceback at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout would fail again
    except (OSError, ValueError):
        pass
    print(f"vqscore {args.command}: output closed early (broken pipe); stopped", file=sys.stderr)
    return 141


if __name__ == "__main__":
    sys.exit(main())
