"""The results tables of `vqscore score` and `vqscore enhance`: CSV or JSON lines, appended row by row, safe to
kill and to resume.

Crash safety, the rules:
- every row is one line written by a single `os.write` of the complete line to a file opened with O_APPEND; after
  each batch of rows the file is `fsync`ed. A SIGKILL can therefore leave at most one partial line at the end;
- opening an existing table to resume first truncates any trailing bytes after the last newline (a row cut short
  by a kill), then reads the paths it holds: those files are skipped, every other one is scored and appended.
  A file gets at most one row however often a run is killed and restarted;
- when a run completes, the table is rewritten in the order the files were named/walked (rows of paths this run
  did not ask for first, in their existing order), atomically: a temporary file beside it, fsync, rename. A kill
  during the rewrite leaves the complete unsorted table, which the next run sorts.
- every row records what produced it (`Stamp`: the model's name@version#weights-hash and the scoring settings);
  a table is resumed only by a run with the same stamp, so one table never mixes models or configurations.
Error messages are put on one line (newlines become spaces) so that a row is always a line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

COLUMNS = ("path", "duration_s", "sample_rate", "channels", "vqscore", "l2_z", "mos", "error", "model", "scoring")
# The per-window table (`vqscore score --windows`): one row per window of each file scored in windows.
WINDOW_COLUMNS = ("path", "window", "start_s", "end_s", "vqscore", "l2_z", "frames")
# The table of `vqscore enhance`: one row per input file, its output and the VQScore of both; `model` is the SE
# model's stamp, `scoring` what computed the VQScores and how the outputs were made (a resumed run must match both).
ENHANCE_COLUMNS = (
    "path",
    "output",
    "duration_s",
    "sample_rate",
    "channels",
    "vqscore_in",
    "vqscore_out",
    "error",
    "model",
    "scoring",
)


class ResultsError(ValueError):
    """An existing output that cannot be resumed (not a vqscore table, or scores of another model or scoring)."""


@dataclass(frozen=True)
class Stamp:
    """What produced a table's scores: `Model.tag` (name@version#sha256 prefix) and `Model.scoring`."""

    model: str
    scoring: str

    def values(self) -> dict:
        return asdict(self)


def stamps_in(text: str, jsonl: bool) -> set[Stamp]:
    """The distinct stamps of a table's complete rows (its text after the CSV header check)."""
    if jsonl:
        found = set()
        for line in text.splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                found.add(Stamp(str(data.get("model")), str(data.get("scoring"))))
        return found
    reader = csv.DictReader(io.StringIO(text))
    return {Stamp(row["model"], row["scoring"]) for row in reader if row.get("model") is not None}


def check_stamp(path: Path, text: str, jsonl: bool, stamp: Stamp) -> None:
    others = stamps_in(text, jsonl) - {stamp}
    if others:
        other = sorted(others, key=str)[0]
        raise ResultsError(
            f"{path} holds scores of model {other.model} ({other.scoring}); this run uses model {stamp.model} "
            f"({stamp.scoring}); use --overwrite to start afresh, or another output file"
        )


def is_jsonl(path: str | os.PathLike | None) -> bool:
    return bool(path) and Path(path).suffix.lower() in (".jsonl", ".ndjson")


def format_row(values: dict, jsonl: bool, columns: Sequence[str] = COLUMNS) -> str:
    """One complete line (with its newline). NaN/None: null in JSON lines, empty in CSV; floats 6 decimals in CSV."""
    clean = {}
    for c in columns:
        v = values.get(c)
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        if c == "error" and isinstance(v, str):
            v = " ".join(v.splitlines())
        clean[c] = v
    if jsonl:
        return json.dumps(clean) + "\n"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        ["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in clean.values()]
    )
    return out.getvalue()


def csv_header(columns: Sequence[str] = COLUMNS) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    return out.getvalue()


def parse_lines(text: str, jsonl: bool, columns: Sequence[str] = COLUMNS) -> list[tuple[str, str, bool]]:
    """[(path, line, failed)] of complete rows of a table's text (the CSV header excluded)."""
    rows = []
    if jsonl:
        for line in text.splitlines(keepends=True):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a damaged line: its file is scored again
            if isinstance(data, dict) and isinstance(data.get("path"), str):
                rows.append((data["path"], line, bool(data.get("error"))))
        return rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return rows
    if tuple(header) != tuple(columns):
        raise ResultsError(f"unexpected CSV header {header}; expected {list(columns)}")
    error_at = list(columns).index("error") if "error" in columns else None
    for fields in reader:
        if len(fields) != len(columns):
            continue
        rows.append((fields[0], csv_line(fields), error_at is not None and bool(fields[error_at])))
    return rows


def csv_line(fields: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


def row_values(result, mos_scale=None) -> dict:
    """The table row of a `corpus.FileResult`: the score columns are cos_z (as `vqscore`), l2_z, and cos_z on the
    1-5 scale of the model (`mos`; empty without one)."""
    score = None if result.error else result.score
    return {
        "mos": None if score is None or mos_scale is None else mos_scale(score.cos_z),
        "path": result.path,
        "duration_s": result.duration_s,
        "sample_rate": result.sample_rate,
        "channels": result.channels,
        "vqscore": None if score is None else score.cos_z,
        "l2_z": None if score is None else score.l2_z,
        "error": result.error,
    }


def window_rows(result) -> list[dict]:
    """The per-window rows of a `corpus.FileResult` scored in windows; [] for files scored whole or failed."""
    score = None if result.error else result.score
    if score is None or score.windows is None:
        return []
    return [
        {
            "path": result.path,
            "window": k,
            "start_s": w.start_s,
            "end_s": w.end_s,
            "vqscore": w.cos_z,
            "l2_z": w.l2_z,
            "frames": w.num_frames,
        }
        for k, w in enumerate(score.windows)
    ]


def complete_text(path: Path) -> str:
    """A table's text up to its last newline, without modifying it (another process may be writing it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    return data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace")


def read_done(path: Path, jsonl: bool, columns: Sequence[str] = COLUMNS) -> dict[str, bool]:
    """path -> failed, for the complete rows of a table (empty if it does not exist)."""
    done: dict[str, bool] = {}
    for p, _, failed in parse_lines(complete_text(path), jsonl, columns):
        done.setdefault(p, failed)
    return done


def read_table(path: str | os.PathLike, columns: Sequence[str] = COLUMNS) -> dict[str, dict]:
    """path -> row (a dict of `columns`) of each file in a table's complete rows, the first row of a path winning as
    on resume; CSV fields are strings ('' when empty), JSON lines keep their types (null as None)."""
    path = Path(path)
    jsonl = is_jsonl(path)
    rows: dict[str, dict] = {}
    for p, line, _ in parse_lines(complete_text(path), jsonl, columns):
        if p not in rows:
            rows[p] = json.loads(line) if jsonl else dict(zip(columns, next(csv.reader(io.StringIO(line))), strict=True))
    return rows


def shard_path(output: Path, rank: int) -> Path:
    """Where rank `rank` of a distributed run appends its rows: a hidden file beside the output."""
    return output.parent / f".{output.name}.shard{rank}{output.suffix}"


def shard_paths(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f".{output.name}.shard*{output.suffix}"))


def merge_shards(output: Path, order: Sequence[str], columns: Sequence[str] = COLUMNS) -> None:
    """Fold the shards of a distributed run into `output` (rows already there first, then shards, each path
    once), in `order` like `sort_table`, atomically; then delete the shards."""
    jsonl = is_jsonl(output)
    shards = shard_paths(output)
    text = complete_text(output)
    if not jsonl and not text:
        text = csv_header(columns)
    pieces = [text]
    for shard in shards:
        rows = parse_lines(complete_text(shard), jsonl, columns) if not jsonl else None
        if jsonl:
            pieces.append(complete_text(shard))
        else:
            pieces.append("".join(line for _, line, _ in rows))
    tmp = output.with_name(f".{output.name}.merge-{os.getpid()}")
    tmp.write_text("".join(pieces), encoding="utf-8")
    sort_table(tmp, order, jsonl, columns)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, output)
    for shard in shards:
        shard.unlink(missing_ok=True)


def truncate_partial_line(path: Path) -> int:
    """Cut off bytes after the last newline (a row a kill cut short). Returns how many bytes were removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        pos = size
        step = 1 << 16
        while pos > 0:
            start = max(0, pos - step)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


class ResultsFile:
    """An output table opened for appending, with the paths it already holds (`done`, path -> failed)."""

    def __init__(
        self,
        path: str | os.PathLike,
        resume: bool = True,
        columns: Sequence[str] = COLUMNS,
        keep: Iterable[str] | None = None,
        stamp: Stamp | None = None,
    ):
        """`keep`: when resuming, drop the rows of every other path (rewriting the table atomically first).
        `stamp`: written into every row; resuming a table with rows of another stamp raises `ResultsError`."""
        self.path = Path(path)
        self.columns = tuple(columns)
        self.stamp = stamp
        self.jsonl = is_jsonl(path)
        self.done: dict[str, bool] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists() and self.path.stat().st_size > 0:
            truncate_partial_line(self.path)
            text = self.path.read_text(encoding="utf-8")
            try:
                rows = parse_lines(text, self.jsonl, self.columns)
            except ResultsError as exc:
                raise ResultsError(f"{self.path}: cannot resume: {exc} (use --overwrite to replace it)") from None
            if stamp is not None:
                check_stamp(self.path, text, self.jsonl, stamp)
            if keep is not None:
                keep = set(keep)
                rows = [row for row in rows if row[0] in keep]
                kept = self._header() + "".join(line for _, line, _ in rows)
                replace_text(self.path, kept, text)
                text = kept
            for p, _, failed in rows:
                self.done.setdefault(p, failed)
            if not self.jsonl and not text:
                self._write_raw(self._header())
        else:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(self._header())
                f.flush()
                os.fsync(f.fileno())
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _header(self) -> str:
        return "" if self.jsonl else csv_header(self.columns)

    def _write_raw(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)

    def write(self, rows: Iterable[dict]) -> None:
        """Append rows, one os.write per complete line, then fsync."""
        for values in rows:
            if self.stamp is not None:
                values = {**values, **self.stamp.values()}
            data = format_row(values, self.jsonl, self.columns).encode("utf-8")
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            self.done.setdefault(values["path"], bool(values.get("error")))
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def finalize(self, order: Sequence[str]) -> None:
        """Rewrite the table with this run's paths in `order` (after rows of other paths), atomically."""
        self.close()
        sort_table(self.path, order, self.jsonl, self.columns)


def sort_table(path: Path, order: Sequence[str], jsonl: bool, columns: Sequence[str] = COLUMNS) -> None:
    """Rewrite a table in `order` (rows of other paths first, in their order; each path once), atomically."""
    text = path.read_text(encoding="utf-8")
    first: dict[str, str] = {}
    for p, line, _ in parse_lines(text, jsonl, columns):
        first.setdefault(p, line)
    wanted = set(order)
    lines = [line for p, line in first.items() if p not in wanted]
    lines += [first[p] for p in order if p in first]
    replace_text(path, ("" if jsonl else csv_header(columns)) + "".join(lines), text)


def replace_text(path: Path, out: str, current: str | None = None) -> None:
    """Write `out` over `path` atomically (temporary file, fsync, rename, directory fsync); no-op if unchanged."""
    if out == current:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(out)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class WindowsFile(ResultsFile):
    """The per-window table, kept consistent with the main table across kills: a file's window rows are written
    (and fsynced) before its main row, and on resume the window rows of files the main table does not hold (`keep`)
    are dropped, since those files are scored again."""

    def __init__(self, path: str | os.PathLike, resume: bool, keep: Iterable[str]):
        super().__init__(path, resume, WINDOW_COLUMNS, keep=keep)

    def finalize(self, order: Sequence[str]) -> None:
        self.close()
        fold_window_rows(self.path, order)


def window_key(line: str, jsonl: bool) -> tuple[str, int]:
    """(path, window index) of one window-table line."""
    if jsonl:
        data = json.loads(line)
        return data["path"], int(data["window"])
    fields = next(csv.reader(io.StringIO(line)))
    return fields[0], int(fields[WINDOW_COLUMNS.index("window")])


def fold_window_rows(
    output: Path, order: Sequence[str], keep: Iterable[str] | None = None, shards: Sequence[Path] = ()
) -> None:
    """Rewrite the window table `output`, with the rows of `shards` (a distributed run's) folded in and deleted,
    atomically: rows of files in `keep` only (all if None), each (path, window) once, the files of `order` after
    the others (in their order) and each file's windows in index order."""
    jsonl = is_jsonl(output)
    keep = None if keep is None else set(keep)
    current = complete_text(output)
    rows: dict[tuple[str, int], str] = {}
    for text in [current, *(complete_text(shard) for shard in shards)]:
        for path, line, _ in parse_lines(text, jsonl, WINDOW_COLUMNS):
            if keep is None or path in keep:
                rows.setdefault(window_key(line, jsonl), line)
    seen = {path: i for i, (path, _) in reversed(list(enumerate(rows)))}  # first appearance of each file
    rank = {p: i for i, p in enumerate(order)}
    ordered = sorted(rows.items(), key=lambda item: (rank.get(item[0][0], -1), seen[item[0][0]], item[0][1]))
    replace_text(output, ("" if jsonl else csv_header(WINDOW_COLUMNS)) + "".join(line for _, line in ordered), current)
    for shard in shards:
        shard.unlink(missing_ok=True)
