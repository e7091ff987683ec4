"""Windowed files outside the corpus engine's own tests: the API streams long paths, and the command line writes
each window's scores to a second table (`--windows`) that survives kills and resumes with the main one."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import read_rows, write_speech

import vqscore.api
from vqscore.audio import AudioError
from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.longform import LongformPolicy, window_bounds
from vqscore.results import WINDOW_COLUMNS

# Scaled down so that a 7-second file is "long": whole up to 3 s, 1-second windows beyond.
POLICY = LongformPolicy(max_whole_s=3.0, window_s=1.0)
POLICY_ARGS = ["--max-whole-s", "3", "--window-s", "1"]


@pytest.fixture
def files(tmp_path):
    """A long file (7 s at 22.05 kHz: streamed and resampled) and a short one (1.5 s)."""
    root = tmp_path / "corpus"
    long = write_speech(root / "long.flac", seconds=7.0, sr=22_050, seed=4)
    short = write_speech(root / "short.wav", seconds=1.5, seed=5)
    return root, long, short


@pytest.fixture
def bundle(tmp_path, tiny_qe):
    return save_bundle(tiny_qe.network, tmp_path / "model", name="tiny-qe", version="0.0.1")


def test_model_streams_a_long_path_and_matches_in_memory(tiny_qe, files, monkeypatch):
    _, long, short = files
    tiny_qe.policy = POLICY
    samples = vqscore.api.load_audio(long).samples
    in_memory = tiny_qe.score(samples, sr=16_000)
    assert len(in_memory.windows) == len(window_bounds(samples.shape[0], POLICY.window_samples(256))) == 7
    loaded = []
    real_load = vqscore.api.load_audio
    monkeypatch.setattr(vqscore.api, "load_audio", lambda item, sr=None, **kw: loaded.append(str(item)) or real_load(item, sr, **kw))
    streamed, whole = tiny_qe.score([long, short])
    assert loaded == [str(short)]  # the long file never went through load_audio (read whole)
    assert streamed.cos_z == pytest.approx(in_memory.cos_z, abs=1e-6)
    assert streamed.cos_x == pytest.approx(in_memory.cos_x, abs=1e-6)
    assert [w.cos_z for w in streamed.windows] == pytest.approx([w.cos_z for w in in_memory.windows], abs=1e-6)
    assert whole.windows is None
    assert tiny_qe.vqscore(long) == pytest.approx(in_memory.cos_z, abs=1e-6)


def test_model_streaming_error_names_the_file(tiny_qe, tmp_path):
    bad = tmp_path / "cut.flac"
    write_speech(bad, seconds=7.0, seed=6)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # the header still promises 7 s
    tiny_qe.policy = POLICY
    with pytest.raises(AudioError, match=f"^{bad}: "):
        tiny_qe.score(bad)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_cli_writes_window_rows(tmp_path, bundle, files, tiny_qe, suffix):
    root, long, short = files
    out, wout = tmp_path / "scores.csv", tmp_path / f"windows{suffix}"
    assert main(["score", str(root), "-o", str(out), "--model", str(bundle), "--windows", str(wout), *POLICY_ARGS]) == 0
    rows = read_rows(wout, WINDOW_COLUMNS)
    tiny_qe.policy = POLICY
    want = tiny_qe.score(long)
    assert [r["path"] for r in rows] == [str(long)] * len(want.windows)  # the short file has no window rows
    assert [int(r["window"]) for r in rows] == list(range(len(want.windows)))
    for r, w in zip(rows, want.windows, strict=True):
        assert float(r["start_s"]) == pytest.approx(w.start_s, abs=1e-6)
        assert float(r["end_s"]) == pytest.approx(w.end_s, abs=1e-6)
        assert float(r["vqscore"]) == pytest.approx(w.cos_z, abs=2e-6)
        assert int(r["frames"]) == w.num_frames
    # the main row is the frame-weighted mean of the window rows
    main_rows = {r["path"]: r for r in read_rows(out)}
    frames = np.array([int(r["frames"]) for r in rows])
    mean = float(np.sum(frames * np.array([float(r["vqscore"]) for r in rows])) / frames.sum())
    assert float(main_rows[str(long)]["vqscore"]) == pytest.approx(mean, abs=1e-5)


def test_cli_window_rows_resume_with_the_main_table(tmp_path, bundle, files):
    root, long, _ = files
    out, wout = tmp_path / "scores.csv", tmp_path / "windows.csv"
    command = ["score", str(root), "-o", str(out), "--model", str(bundle), "--windows", str(wout), *POLICY_ARGS]
    assert main(command) == 0
    complete = wout.read_text()
    # A kill after the window rows were written but before the long file's main row: drop that row, and leave a
    # half-written window line behind, after a row no rescoring reproduces (a window of an earlier --window-s).
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(line for line in lines if not line.startswith(str(long))))
    with open(wout, "a") as f:
        f.write(f"{long},99,99.0,100.0,0.5,0.5,62\n{long},0,0.0")
    assert main(command) == 0
    assert wout.read_text() == complete  # every window once, nothing half-written, same order
    assert sum(line.startswith(str(long)) for line in out.read_text().splitlines()) == 1
    # Resuming a finished run scores nothing and leaves both tables as they are.
    assert main(command) == 0
    assert wout.read_text() == complete


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window-s", "0"], "vqscore score: error: --max-whole-s and --window-s must be positive\n"),
    ],
)
def test_cli_window_option_errors(tmp_path, bundle, files, capsys, extra, message):
    root, _, _ = files
    out = tmp_path / "scores.csv"
    assert main(["score", str(root), "-o", str(out), "--model", str(bundle), "--windows", str(tmp_path / "w.csv"), *extra]) == 2
    assert capsys.readouterr().err == message


def test_cli_windows_must_differ_from_output(tmp_path, bundle, files, capsys):
    root, _, _ = files
    out = tmp_path / "scores.csv"
    assert main(["score", str(root), "-o", str(out), "--model", str(bundle), "--windows", str(out)]) == 2
    assert capsys.readouterr().err == "vqscore score: error: --windows must name a different file from -o/--output\n"
