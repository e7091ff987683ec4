"""What `vqscore score` promises beyond scoring: every row names the model and scoring that produced it, a table is
never resumed with another one, and errors that are not about a file are one line with the documented exit status
(2 usage/device/model/output, 130 interrupted, 141 closed pipe), never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import SR, read_rows, score_command, speech_like, tiny_network

from vqscore.bundle import save_bundle
from vqscore.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    folder = root / "audio"
    folder.mkdir()
    for i in range(4):
        sf.write(folder / f"f{i}.wav", speech_like(0.5, seed=i), SR, subtype="PCM_16")
    one = save_bundle(tiny_network("qe", seed=0), root / "model-a", name="tiny-a", version="0.0.1")
    two = save_bundle(tiny_network("qe", seed=1), root / "model-b", name="tiny-b", version="0.0.1")
    return folder, one, two


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["score", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_record_the_model_and_scoring(setup, tmp_path, capsys, suffix):
    folder, one, _ = setup
    out = tmp_path / f"s{suffix}"
    assert run_cli([str(folder), "-o", str(out), "--model", str(one), "--workers", "0"], capsys)[0] == 0
    rows = read_rows(out)
    sha = __import__("json").loads(one.read_text())["sha256"]
    assert {r["model"] for r in rows} == {f"tiny-a@0.0.1#{sha[:12]}"}
    assert {r["scoring"] for r in rows} == {"paper; pooling mean; whole<=1800s; windows 60s"}  # a bundle without a declaration


def test_resuming_with_another_model_or_scoring_is_refused(setup, tmp_path, capsys):
    folder, one, two = setup
    out = tmp_path / "s.csv"
    base = [str(folder), "-o", str(out), "--workers", "0"]
    assert run_cli([*base, "--model", str(one)], capsys)[0] == 0
    before = out.read_bytes()
    sha_a = __import__("json").loads(one.read_text())["sha256"][:12]
    sha_b = __import__("json").loads(two.read_text())["sha256"][:12]

    code, err = run_cli([*base, "--model", str(two)], capsys)
    assert code == 2
    assert err == (
        f"vqscore score: error: {out} holds scores of model tiny-a@0.0.1#{sha_a} (paper; pooling mean; whole<=1800s; windows 60s); "
        f"this run uses model tiny-b@0.0.1#{sha_b} (paper; pooling mean; whole<=1800s; windows 60s); use --overwrite to start "
        "afresh, or another output file\n"
    )
    code, err = run_cli([*base, "--model", str(one), "--conditioning", "robust"], capsys)
    assert code == 2 and "this run uses model tiny-a@0.0.1" in err and "(robust; pooling mean; whole<=1800s; windows 60s)" in err
    code, err = run_cli([*base, "--model", str(one), "--window-s", "30"], capsys)
    assert code == 2 and "(paper; pooling mean; whole<=1800s; windows 30s)" in err
    assert out.read_bytes() == before  # nothing was appended

    code, err = run_cli([*base, "--model", str(two), "--overwrite"], capsys)
    assert code == 0
    assert {r["model"] for r in read_rows(out)} == {f"tiny-b@0.0.1#{sha_b}"}
    code, err = run_cli([*base, "--model", str(two)], capsys)  # the same model resumes (nothing left to do)
    assert code == 0 and "(4 already in" in err


def test_a_table_without_model_columns_is_not_resumed(setup, tmp_path, capsys):
    folder, one, _ = setup
    out = tmp_path / "old.csv"
    out.write_text("path,duration_s,sample_rate,channels,vqscore,l2_z,error\n")
    code, err = run_cli([str(folder), "-o", str(out), "--model", str(one)], capsys)
    assert code == 2 and "cannot resume: unexpected CSV header" in err and "--overwrite" in err


def test_stdout_rows_carry_the_stamp_too(setup, capsys):
    folder, one, _ = setup
    assert main(["score", str(folder), "--model", str(one), "--workers", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",error,model,scoring") and len(lines) == 5
    assert all(",tiny-a@0.0.1#" in line for line in lines[1:])


@pytest.mark.parametrize(
    "device, message",
    [
        ("banana", "vqscore score: error: --device banana: not a torch device; expected cpu, cuda, cuda:N or mps"),
        ("meta", "vqscore score: error: --device meta: vqscore runs on cpu, cuda or mps, not meta"),
    ],
)
def test_bad_devices_are_one_line_usage_errors(setup, capsys, device, message):
    folder, one, _ = setup
    code, err = run_cli([str(folder), "--model", str(one), "--device", device], capsys)
    assert (code, err) == (2, message + "\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available here")
def test_cuda_without_cuda_is_a_one_line_usage_error(setup, capsys):
    folder, one, _ = setup
    code, err = run_cli([str(folder), "--model", str(one), "--device", "cuda"], capsys)
    assert code == 2
    assert err == (
        "vqscore score: error: --device cuda: CUDA is not available (this torch build has no CUDA support or no GPU "
        "is visible); use --device cpu\n"
    )


def test_unreadable_model_file_is_one_line(setup, tmp_path, capsys):
    folder, _, _ = setup
    bogus = tmp_path / "model.json"
    bogus.write_text("{}")
    code, err = run_cli([str(folder), "--model", str(bogus)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("vqscore score: error: ")


def test_closed_pipe_stops_quietly(setup, tmp_path):
    """`vqscore score corpus | head -1`: one line on stderr, exit 141, no BrokenPipeError traceback."""
    folder, one, _ = setup
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        sf.write(many / f"f{i:03d}.wav", speech_like(0.1, seed=i), SR, subtype="PCM_16")
    cmd = [sys.executable, "-m", "vqscore", "score", str(many), "--model", str(one), "--workers", "0", "--batch-frames", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
    proc.stdout.readline()  # the header: the CLI is writing rows
    proc.stdout.close()  # like `head -1` exiting
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err.strip().splitlines()[-1] == "vqscore score: output closed early (broken pipe); stopped"


def test_interrupt_says_how_to_resume_and_resuming_completes(setup, tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it): one line, exit 130, rows kept; rerun resumes."""
    folder, one, _ = setup
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        sf.write(many / f"f{i:03d}.wav", np.roll(speech_like(0.2, seed=1), 50 * i), SR, subtype="PCM_16")
    out = tmp_path / "s.csv"
    cmd = score_command(many, out, one, "--batch-frames", "1", "--workers", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.read_bytes().count(b"\n") < 3) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last == f"vqscore score: interrupted; rows already in {out} are kept: run the same command again to resume"
    kept = len(read_rows(out))
    assert 0 < kept < 300
    done = subprocess.run(cmd, capture_output=True, env=ENV, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    rows = read_rows(out)
    assert len(rows) == 300 and len({r["path"] for r in rows}) == 300
    assert f"({kept} already in {out})" in done.stderr.decode()
