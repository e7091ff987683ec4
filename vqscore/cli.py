"""`vqscore` command line: score files and folders, list shipped models, convert official checkpoints."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from .api import load
from .audio import Audio, AudioError, audio_extensions, load_audio
from .bundle import BundleError, save_bundle, shipped_bundles
from .models import build_model
from .official import OfficialCheckpointError, load_official
from .scoring import check_length, score_utterances

COLUMNS = ("path", "duration_s", "sample_rate", "channels", "vqscore", "l2_z", "error")
FILES_PER_BATCH = 64


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


class RowWriter:
    """Writes rows as they are made, one flushed line each, so a killed run keeps every finished row."""

    def __init__(self, target: str | None):
        self.jsonl = bool(target) and Path(target).suffix.lower() in (".jsonl", ".ndjson")
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(target, "w", newline="", encoding="utf-8")
        else:
            self.stream = sys.stdout
        if not self.jsonl:
            self.csv = csv.DictWriter(self.stream, fieldnames=COLUMNS, lineterminator="\n")
            self.csv.writeheader()
        self.stream.flush()

    def write(self, row: Row) -> None:
        values = row.values()
        if self.jsonl:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
            self.stream.write(json.dumps(clean) + "\n")
        else:
            self.csv.writerow({k: "" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for k, v in values.items()})
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()


def prepare(path: str, min_samples: int) -> tuple[Audio | None, Row]:
    row = Row(path=path)
    try:
        audio = load_audio(path)
        row.duration_s, row.sample_rate, row.channels = audio.duration_s, audio.source_rate, audio.source_channels
        check_length(audio.samples, min_samples, path)
    except AudioError as exc:
        row.error = str(exc)
        return None, row
    return audio, row


def cmd_score(args: argparse.Namespace) -> int:
    model = load(args.model, device=args.device)
    files = list(walk(args.paths, audio_extensions()))
    if not files:
        print("vqscore score: no audio files found under the given paths", file=sys.stderr)
        return 1
    writer = RowWriter(args.output)
    failed = 0
    min_samples = model.network.features.min_samples
    bar = tqdm(total=len(files), unit="file", disable=None, file=sys.stderr, desc="scoring")
    try:
        for start in range(0, len(files), FILES_PER_BATCH):
            prepared = [prepare(p, min_samples) for p in files[start : start + FILES_PER_BATCH]]
            good = [(a, r) for a, r in prepared if a is not None]
            try:
                scores = score_utterances(model.network, [a.samples for a, _ in good], [a.name for a, _ in good], with_decoder=False)
            except (RuntimeError, ValueError) as exc:  # a batch that fails is retried file by file to name the culprit
                scores = []
                for a, r in good:
                    try:
                        scores.extend(score_utterances(model.network, [a.samples], [a.name], with_decoder=False))
                    except (RuntimeError, ValueError) as one:
                        r.error = f"{a.name}: scoring failed ({one})"
                        scores.append(None)
                del exc
            for (_, row), s in zip(good, scores):
                if s is not None:
                    row.vqscore, row.l2_z = s.cos_z, s.l2_z
            for _, row in prepared:
                failed += bool(row.error)
                writer.write(row)
            bar.update(len(prepared))
    finally:
        bar.close()
        writer.close()
    print(f"vqscore score: {len(files) - failed} scored, {failed} failed" + (f" -> {args.output}" if args.output else ""), file=sys.stderr)
    return 1 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    bundles = shipped_bundles()
    if not bundles:
        print("no bundles are shipped in pretrained/")
        return 0
    out = io.StringIO()
    for b in bundles:
        data = b.training.get("data", "")
        out.write(f"{b.name}\t{b.kind}\tv{b.version}\t{b.path}\t{data}\n")
    sys.stdout.write(out.getvalue())
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
            "null in JSONL)."
        ),
    )
    score.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    score.add_argument("-o", "--output", metavar="OUT", help="output file: .csv, or .jsonl/.ndjson for JSON lines (default: CSV on stdout)")
    score.add_argument("--model", default="default", help="shipped bundle name, bundle JSON, or official checkpoint (default: %(default)s)")
    score.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    score.set_defaults(func=cmd_score)

    models = sub.add_parser("models", help="list the bundles shipped in pretrained/", description="List shipped bundles: name, kind, version, path, training data.")
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
    except (BundleError, OfficialCheckpointError, AudioError, FileNotFoundError) as exc:
        print(f"vqscore {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
