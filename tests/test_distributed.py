"""`vqscore score --distributed N`: Lightning DDP (gloo on CPU), one shard per rank merged by rank 0, resumable;
and Lightning stays out of `import vqscore`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, read_rows, score_command, speech_like, tiny_network

from vqscore.bundle import save_bundle
from vqscore.cli import COLUMNS, main
from vqscore.results import WINDOW_COLUMNS, shard_path

ROOT = Path(__file__).resolve().parents[1]


def test_import_vqscore_does_not_import_lightning():
    code = (
        "import sys, vqscore, vqscore.cli, vqscore.corpus, vqscore.engine, vqscore.longform, vqscore.results; "
        "assert not any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) for m in sys.modules), "
        "sorted(m for m in sys.modules if 'lightning' in m)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("lightning")
    root = tmp_path_factory.mktemp("ddp")
    folder = root / "audio"
    for i in range(14):
        path = folder / f"s{i % 2}" / f"u{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, speech_like(0.4 + 0.1 * i, seed=i, f0=100 + 9 * i), SR if i % 3 else 22_050)
    (folder / "s1" / "broken.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    bundle = save_bundle(tiny_network("qe"), root / "model", name="tiny-qe", version="0.0.1")
    single = root / "single.csv"
    assert main(["score", str(folder), "-o", str(single), "--model", str(bundle)]) == 1
    return folder, bundle, read_rows(single)


def run_distributed(folder, out, bundle, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = score_command(folder, out, bundle, "--distributed", "2", "--workers", "1", *extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def assert_same_rows(rows, want):
    assert [r["path"] for r in rows] == [r["path"] for r in want]  # each file exactly once, in walk order
    for got, ref in zip(rows, want, strict=True):
        for key in ("duration_s", "sample_rate", "channels", "error"):
            assert got[key] == ref[key], (got["path"], key)
        for key in ("vqscore", "l2_z"):
            if ref[key]:
                assert float(got[key]) == pytest.approx(float(ref[key]), abs=2e-6), (got["path"], key)
            else:
                assert got[key] == ""


def test_two_process_ddp_equals_single_process(setup, tmp_path):
    folder, bundle, want = setup
    out = tmp_path / "ddp.csv"
    run = run_distributed(folder, out, bundle)
    assert run.returncode == 1, run.stderr  # the broken file fails, as in the single-process run
    assert "14 scored, 1 failed -> " in run.stderr and "[2 processes]" in run.stderr
    assert_same_rows(read_rows(out), want)
    assert not list(tmp_path.glob(".ddp.csv.shard*"))  # shards merged and removed


@pytest.mark.slow
def test_ddp_resumes_from_output_and_stale_shards(setup, tmp_path):
    """A killed distributed run leaves rows in the output and in shards (one with a partial last line)."""
    folder, bundle, want = setup
    out = tmp_path / "ddp.csv"
    header = ",".join(COLUMNS) + "\n"

    def line(row):
        return ",".join(row[c] for c in COLUMNS) + "\n"

    out.write_text(header + "".join(line(r) for r in want[:3]))
    shard_path(out, 0).write_text(header + line(want[5]) + line(want[8]))
    shard_path(out, 3).write_text(header + line(want[10]) + line(want[11])[:12])  # from a run with more ranks
    run = run_distributed(folder, out, bundle)
    assert run.returncode == 1, run.stderr
    assert "(6 already in " in run.stderr
    rows = read_rows(out)
    assert_same_rows(rows, want)
    for i in (0, 1, 2, 5, 8, 10):  # rows already written are kept as they were, not rescored
        assert line(next(r for r in rows if r["path"] == want[i]["path"])) == line(want[i])
    assert not list(tmp_path.glob(".ddp.csv.shard*"))


def test_ddp_window_table_equals_single_process(setup, tmp_path):
    """With files longer than --max-whole-s, both runs write the same window table; a stale window shard of a
    killed run (rows of a file that got no main row, one cut short) is folded in without duplicates."""
    folder, bundle, _ = setup
    policy = ["--max-whole-s", "1.2", "--window-s", "0.4"]
    single_out, single_windows = tmp_path / "single.csv", tmp_path / "single-windows.csv"
    assert main(["score", str(folder), "-o", str(single_out), "--model", str(bundle), "--windows", str(single_windows), *policy]) == 1
    want_rows, want_windows = read_rows(single_out), read_rows(single_windows, WINDOW_COLUMNS)
    assert len({w["path"] for w in want_windows}) == 3  # the three files longer than 1.2 s
    out, windows = tmp_path / "ddp.csv", tmp_path / "ddp-windows.csv"
    stale = want_windows[:2]  # a killed run wrote two window rows of a file, but not its main row
    text = ",".join(WINDOW_COLUMNS) + "\n" + "".join(",".join(w[c] for c in WINDOW_COLUMNS) + "\n" for w in stale)
    shard_path(windows, 1).write_text(text + stale[0]["path"][:9])  # pruned when rank 1 opens its shard
    shard_path(windows, 3).write_text(text)  # from a run with more ranks: de-duplicated when rank 0 merges
    run = run_distributed(folder, out, bundle, "--windows", str(windows), *policy)
    assert run.returncode == 1, run.stderr
    assert_same_rows(read_rows(out), want_rows)
    got = read_rows(windows, WINDOW_COLUMNS)
    assert [(w["path"], w["window"], w["frames"]) for w in got] == [(w["path"], w["window"], w["frames"]) for w in want_windows]
    for g, w in zip(got, want_windows, strict=True):
        assert float(g["vqscore"]) == pytest.approx(float(w["vqscore"]), abs=2e-6)
    assert not list(tmp_path.glob(".ddp*.shard*"))
