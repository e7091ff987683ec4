"""The `vqscore` command line: one row per file, errors as rows, exit status, help and listing."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from helpers import tiny_network, write_speech

import vqscore
import vqscore.bundle
from vqscore.bundle import save_bundle
from vqscore.cli import COLUMNS, main


@pytest.fixture
def bundle(tmp_path, tiny_qe):
    return save_bundle(tiny_qe.network, tmp_path / "model", name="tiny-qe", version="0.0.1")


@pytest.fixture
def corpus(tmp_path):
    """3 good files (one 44.1 kHz stereo, one FLAC, one in a subfolder) and 3 that are not audio."""
    root = tmp_path / "corpus"
    good = [
        write_speech(root / "a_mono.wav", seconds=1.0, seed=1),
        write_speech(root / "b_stereo44k.wav", seconds=0.8, sr=44_100, channels=2, seed=2),
        write_speech(root / "sub" / "c_take.flac", seconds=1.3, sr=22_050, seed=3),
    ]
    broken = root / "broken.wav"
    broken.write_bytes(np.random.default_rng(7).bytes(3000))
    notes = root / "sub" / "notes.wav"
    notes.write_text("meeting notes, definitely not audio\n" * 20)
    (root / "readme.txt").write_text("not audio and not an audio suffix\n")
    return root, good, [broken, notes]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def check_rows(rows, good, bad, model, blank):
    expected_paths = sorted(str(p) for p in good + bad)
    assert sorted(r["path"] for r in rows) == expected_paths  # readme.txt gets no row
    # folders are walked sorted, subfolders after the folder's own files
    assert [r["path"] for r in rows] == [str(p) for p in [good[0], good[1], bad[0], good[2], bad[1]]]
    info = {str(good[0]): (16_000, 1, 1.0), str(good[1]): (44_100, 2, 0.8), str(good[2]): (22_050, 1, 1.3)}
    for row in rows:
        if row["path"] in info:
            sr, channels, seconds = info[row["path"]]
            assert row["error"] == ""
            assert int(row["sample_rate"]) == sr and int(row["channels"]) == channels
            assert float(row["duration_s"]) == pytest.approx(seconds, abs=1e-3)
            value = float(row["vqscore"])
            assert math.isfinite(value)
            assert value == pytest.approx(model.vqscore(row["path"]), abs=1e-5)
            assert float(row["l2_z"]) == pytest.approx(model.score(row["path"]).l2_z, abs=1e-5)
        else:
            assert row["vqscore"] in blank and row["l2_z"] in blank
            assert row["error"].startswith(f"{row['path']}: cannot read audio (")


def test_score_folder_to_csv(tmp_path, bundle, corpus, tiny_qe, capsys):
    root, good, bad = corpus
    out = tmp_path / "results" / "scores.csv"
    status = main(["score", str(root), "-o", str(out), "--model", str(bundle)])
    assert status == 1
    rows = read_csv(out)
    assert len(rows) == 5
    check_rows(rows, good, bad, tiny_qe, blank=("",))
    # a good row's numbers are written with 6 decimals
    assert len(rows[0]["vqscore"].split(".")[1]) == 6
    assert "3 scored, 2 failed" in capsys.readouterr().err


def test_score_folder_to_jsonl(tmp_path, bundle, corpus, tiny_qe):
    root, good, bad = corpus
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(root), "--output", str(out), "--model", str(bundle)]) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    for row in rows:
        assert tuple(row) == COLUMNS
    good_rows = [r for r in rows if not r["error"]]
    for r in good_rows:  # JSON keeps full precision
        assert r["vqscore"] == pytest.approx(tiny_qe.vqscore(r["path"]), abs=1e-6)
    for r in rows:
        if r["error"]:
            assert r["duration_s"] is None and r["sample_rate"] is None
    check_rows([{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows], good, bad, tiny_qe, blank=("",))


def test_all_good_exits_0_and_stdout_csv(tmp_path, bundle, corpus, tiny_qe, capsys):
    root, good, _ = corpus
    status = main(["score", str(good[0]), str(good[2]), "--model", str(bundle)])
    assert status == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ",".join(COLUMNS)
    rows = list(csv.DictReader(out))
    assert [r["path"] for r in rows] == [str(good[0]), str(good[2])]
    for r in rows:
        assert float(r["vqscore"]) == pytest.approx(tiny_qe.vqscore(r["path"]), abs=1e-5)


def test_explicit_file_is_always_tried(tmp_path, bundle, corpus):
    root, good, _ = corpus
    readme = root / "readme.txt"
    missing = root / "missing.wav"
    out = tmp_path / "x.csv"
    assert main(["score", str(readme), str(missing), str(good[0]), "-o", str(out), "--model", str(bundle)]) == 1
    rows = read_csv(out)
    assert [r["path"] for r in rows] == [str(readme), str(missing), str(good[0])]
    assert rows[0]["error"].startswith(f"{readme}: cannot read audio (")
    assert rows[1]["error"] == f"{missing}: no such file"
    assert rows[2]["error"] == ""


def test_short_and_silent_files(tmp_path, bundle, tiny_qe):
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, np.full(300, 0.1, np.float32), 16_000)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000, np.float32), 16_000)
    out = tmp_path / "x.jsonl"
    assert main(["score", str(short), str(silent), "-o", str(out), "--model", str(bundle)]) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["error"].startswith(f"{short}: too short (300 samples at 16 kHz)")
    assert rows[0]["vqscore"] is None and rows[0]["duration_s"] == pytest.approx(300 / 16_000)
    # silence is not an error: NaN score, null in JSON lines
    assert rows[1]["error"] == "" and rows[1]["vqscore"] is None and rows[1]["l2_z"] is None


def test_no_audio_found(tmp_path, bundle, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    assert main(["score", str(empty), "--model", str(bundle)]) == 1
    assert "no audio files found" in capsys.readouterr().err


def test_bad_model_exits_2(tmp_path, capsys):
    wav = write_speech(tmp_path / "a.wav")
    assert main(["score", str(wav), "--model", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqscore score: error: ") and "nope.json: no such bundle file" in err


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in ("score", "models", "convert"):
        assert command in text
    for command, option in (("score", "--output"), ("models", "List shipped bundles"), ("convert", "--name")):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert option in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vqscore {vqscore.__version__}"
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_models_lists_shipped_bundles(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "pretrained"
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [directory])
    directory.mkdir()
    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip() == "no bundles are shipped in pretrained/"
    path = save_bundle(tiny_network("qe"), directory, name="tiny-qe", version="1.2.0", training={"data": "noise"})
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "name\tkind\tversion\ttrained on\tbundle",
        f"tiny-qe (default)\tqe\tv1.2.0\tnoise\t{path}",
    ]


def test_models_runs_on_real_pretrained_dirs(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["no bundles are shipped in pretrained/"] or all(len(line.split("\t")) == 5 for line in lines)
