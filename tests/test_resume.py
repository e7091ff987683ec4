"""`vqscore score` resumes: a run killed with SIGKILL and started again ends with every file scored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, read_rows, score_command, speech_like, tiny_network

from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.results import ResultsFile, truncate_partial_line

ROOT = Path(__file__).resolve().parents[1]
NUM_FILES = 200


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    folder = root / "audio"
    folder.mkdir()
    base = speech_like(1.0, seed=5)
    for i in range(NUM_FILES):
        n = 2_000 + 37 * i  # 0.125-0.6 s, all different lengths
        sub = folder / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"f{i:03d}.wav", np.roll(base, 91 * i)[:n], SR, subtype="PCM_16")
    bundle = save_bundle(tiny_network("qe"), root / "model", name="tiny-qe", version="0.0.1")
    return folder, bundle


def command(folder: Path, out: Path, bundle: Path, *extra: str) -> list[str]:
    # one file per batch: rows appear one batch at a time, each batch fsynced
    return score_command(folder, out, bundle, "--batch-frames", "1", *extra)


def count_rows(out: Path) -> int:
    if not out.exists():
        return 0
    lines = out.read_bytes().count(b"\n")
    return lines - (0 if out.suffix == ".jsonl" else 1)


def start_and_kill(cmd: list[str], out: Path, min_rows: int, timeout: float = 120.0) -> int:
    """Start the CLI, SIGKILL it as soon as `min_rows` rows are on disk; returns the rows left."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while count_rows(out) < min_rows:
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its decoding workers
        except ProcessLookupError:
            pass
        proc.wait()
    return count_rows(out)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_killed_run_resumes_to_every_file_exactly_once(corpus, tmp_path, suffix, capsys):
    folder, bundle = corpus
    clean = tmp_path / f"clean{suffix}"
    assert main(["score", str(folder), "-o", str(clean), "--model", str(bundle)]) == 0
    capsys.readouterr()
    want = {r["path"]: r for r in read_rows(clean)}
    assert len(want) == NUM_FILES

    out = tmp_path / f"killed{suffix}"
    # first run: killed after the first rows (decoding in-process), second: killed again (with a decoding worker)
    left = start_and_kill(command(folder, out, bundle, "--workers", "0"), out, min_rows=1)
    assert 1 <= left < NUM_FILES, "the first run finished before it could be killed"
    left = start_and_kill(command(folder, out, bundle, "--workers", "1"), out, min_rows=left + 5)
    assert left < NUM_FILES, "the second run finished before it could be killed"
    # a kill in the middle of a write leaves a partial last line: the next run cuts it off
    with open(out, "ab") as f:
        f.write(b'{"path": "half a row' if suffix == ".jsonl" else b"/half/a/row.wav,1.0,16")
    assert main(["score", str(folder), "-o", str(out), "--model", str(bundle)]) == 0
    err = capsys.readouterr().err
    assert f"{NUM_FILES} scored, 0 failed ({left} already in {out})" in err

    rows = read_rows(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == NUM_FILES  # exactly once each
    assert paths == list(want)  # the finished table is in walk order, like a clean run
    for row in rows:
        ref = want[row["path"]]
        for key in ("duration_s", "sample_rate", "channels", "error"):
            assert row[key] == ref[key], key
        for key in ("vqscore", "l2_z"):
            assert float(row[key]) == pytest.approx(float(ref[key]), abs=2e-6), key
    # a third run has nothing left to do and leaves the table as it is
    before = out.read_bytes()
    assert main(["score", str(folder), "-o", str(out), "--model", str(bundle)]) == 0
    assert out.read_bytes() == before


def test_failed_files_are_not_retried_and_keep_the_exit_status(corpus, tmp_path, capsys):
    folder, bundle = corpus
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all" * 100)
    good = next(folder.rglob("*.wav"))
    out = tmp_path / "out.csv"
    assert main(["score", str(good), str(broken), "-o", str(out), "--model", str(bundle)]) == 1
    assert main(["score", str(good), str(broken), "-o", str(out), "--model", str(bundle)]) == 1
    rows = read_rows(out)
    assert [r["path"] for r in rows] == [str(good), str(broken)]
    assert "1 scored, 1 failed (2 already in" in capsys.readouterr().err
    assert main(["score", str(good), "-o", str(out), "--model", str(bundle), "--overwrite"]) == 0
    assert [r["path"] for r in read_rows(out)] == [str(good)]


def test_foreign_table_is_not_appended_to(corpus, tmp_path, capsys):
    folder, bundle = corpus
    out = tmp_path / "other.csv"
    out.write_text("name,value\nx,1\n")
    good = next(folder.rglob("*.wav"))
    assert main(["score", str(good), "-o", str(out), "--model", str(bundle)]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert out.read_text() == "name,value\nx,1\n"


def test_truncate_partial_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    assert truncate_partial_line(path) == 4
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert truncate_partial_line(path) == 0
    path.write_bytes(b"no newline at all")
    assert truncate_partial_line(path) == len(b"no newline at all") and path.read_bytes() == b""


def test_each_row_is_one_line(tmp_path):
    table = ResultsFile(tmp_path / "t.csv")
    table.write([{"path": "a,b.wav", "duration_s": 1.0, "error": "line one\nline two"}])
    table.close()
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].endswith("line one line two,,")
    reopened = ResultsFile(tmp_path / "t.csv")
    assert reopened.done == {"a,b.wav": True}
    reopened.close()
