"""`vqscore rank` and `vqscore filter`: the shipped model ranks clean speech above its noisy copies; filter keeps
exactly the files over a threshold or in the top percent, drops failed files with their error, reuses and resumes
its scores table; bad arguments get exact messages."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import tiny_network, write_speech

import vqscore
import vqscore.corpus
from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.cli_filter import decide, percentage
from vqscore.results import COLUMNS, csv_line

CLEAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clean" / "librispeech-train-clean-100"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- rank


@pytest.fixture(scope="module")
def clean_and_noisy(tmp_path_factory):
    """Three real clean utterances (2 s) and the same with white noise at 5 dB SNR, one folder each."""
    sources = sorted(CLEAN.glob("*.flac"))[:3] if CLEAN.is_dir() else []
    if len(sources) < 3:
        pytest.skip(f"real clean speech not found at {CLEAN}")
    root = tmp_path_factory.mktemp("systems")
    rng = np.random.default_rng(0)
    for source in sources:
        x, sr = sf.read(source, dtype="float32")
        x = x[: 2 * sr]
        noise = rng.standard_normal(x.shape[0]).astype(np.float32) * np.sqrt(np.mean(x**2) / 10 ** (5 / 10))
        for name, audio in (("clean", x), ("noisy", x + noise)):
            (root / name).mkdir(exist_ok=True)
            sf.write(root / name / f"{source.stem}.wav", audio, sr)
    return root / "noisy", root / "clean"  # the worse one first: the ranking must reorder them


def test_rank_puts_clean_above_noisy(clean_and_noisy, tmp_path, capsys):
    noisy, clean = clean_and_noisy
    table = tmp_path / "ranking.json"
    assert main(["rank", str(noisy), str(clean), "--bootstrap", "200", "--table", str(table)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "system", "mean", "95%", "CI", "files"]
    assert lines[1].split()[:2] == ["1", "clean"] and lines[2].split()[:2] == ["2", "noisy"]
    assert (
        lines[4] == "wins: share of the 3 common files on which the row's system scores above the column's (ties count half)"
    )
    assert lines[6].split() == ["clean", "-", "1.000"] and lines[7].split() == ["noisy", "0.000", "-"]
    assert lines[9] == "used: 3 files present and scored in every system (means, intervals and wins use only these)"
    assert err == f"vqscore rank: 2 systems ranked on 3 common files -> {table}\n"
    data = json.loads(table.read_text())
    model = vqscore.load("default")
    assert (data["model"], data["scoring"], data["common"]) == (model.tag, model.scoring, 3)
    assert data["bootstrap"] == {"resamples": 200, "seed": 0, "level": 0.95}
    first, second = data["systems"]
    assert (first["system"], first["path"], first["rank"], second["system"]) == ("clean", str(clean), 1, "noisy")
    # the corpus path scores each file as the API does
    expected = np.mean(model.vqscore(sorted(str(p) for p in clean.iterdir())))
    assert first["mean"] == pytest.approx(expected, abs=1e-5)
    assert first["ci_low"] <= first["mean"] <= first["ci_high"] and second["ci_high"] < first["ci_low"]
    assert data["wins"] == {"systems": ["clean", "noisy"], "matrix": [[0.5, 1.0], [0.0, 0.5]]}
    assert data["missing"] == data["extra"] == data["failed"] == {}


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    return save_bundle(tiny_network("qe"), tmp_path_factory.mktemp("model"), name="tiny-qe", version="0.0.1")


def test_rank_reports_missing_extra_failed_and_writes_csv(tmp_path, tiny_bundle, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for k in range(3):
        write_speech(a / f"{k}.wav", seconds=0.6, seed=k)
        write_speech(b / f"{k}.wav", seconds=0.6, seed=10 + k)
    write_speech(a / "only-a.wav", seconds=0.6)
    (b / "0.wav").write_bytes(b"not audio" * 100)  # fails in b: dropped from both
    table = tmp_path / "ranking.csv"
    assert main(["rank", str(a), str(b), "--model", str(tiny_bundle), "--table", str(table)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-5:-2] == [
        "used: 2 files present and scored in every system (means, intervals and wins use only these)",
        "missing from b (1, present in another system): only-a.wav",
        "extra in a (1, not in every system, not used): only-a.wav",
    ]
    assert out[-2] == "failed in b (1, dropped from every system):"
    assert out[-1].startswith(f"  {b / '0.wav'}: cannot read audio (")
    rows = read_csv(table)
    assert list(rows[0]) == [
        "rank",
        "system",
        "path",
        "mean",
        "ci_low",
        "ci_high",
        "files",
        *(f"wins_vs_{r['system']}" for r in rows),
    ]
    assert [r["rank"] for r in rows] == ["1", "2"] and {r["system"] for r in rows} == {"a", "b"}
    assert float(rows[0]["mean"]) >= float(rows[1]["mean"]) and rows[0]["files"] == "2"
    assert float(rows[0][f"wins_vs_{rows[1]['system']}"]) + float(rows[1][f"wins_vs_{rows[0]['system']}"]) == 1.0


def test_rank_pooling_is_the_scores_pooling(tmp_path, tiny_bundle, capsys):
    """--pooling ranks by the file scores `vqscore score --pooling` gives; the JSON table records it."""
    a, b = tmp_path / "a", tmp_path / "b"
    for k in range(2):
        write_speech(a / f"{k}.wav", seconds=0.8, seed=k)
        write_speech(b / f"{k}.wav", seconds=0.8, seed=10 + k)
    means = {}
    for pooling in ("mean", "p10"):
        table = tmp_path / f"{pooling}.json"
        assert main(["rank", str(a), str(b), "--model", str(tiny_bundle), "--pooling", pooling, "--table", str(table)]) == 0
        ranked = json.loads(table.read_text())
        assert f"pooling {pooling};" in ranked["scoring"]
        means[pooling] = {r["system"]: r["mean"] for r in ranked["systems"]}
        model = vqscore.load(str(tiny_bundle)).with_pooling(pooling)
        for system, folder in (("a", a), ("b", b)):
            expected = np.mean(model.vqscore([str(folder / f"{k}.wav") for k in range(2)]))
            assert means[pooling][system] == pytest.approx(expected, abs=1e-6)
    assert means["p10"]["a"] < means["mean"]["a"]
    capsys.readouterr()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{a}"], "need at least 2 system folders to rank, got 1"),
        (["{a}", "{a}/x.wav"], "{a}/x.wav: not a folder (a system is a folder of its output files)"),
        (["{a}", "{tmp}/nope"], "{tmp}/nope: no such folder"),
        (["{a}", "{b}"], "no common files: no relative path is present in every system folder (a: 1 files, b: 1 files)"),
        (["{a}", "{a}", "--table", "{tmp}/r.txt"], "--table {tmp}/r.txt: expected a .csv or .json file"),
        (["{a}", "{b}", "--bootstrap", "0"], "--bootstrap 0: need at least 1 resample"),
        (["{a}", "{b}", "--device", "tpu"], "--device tpu: not a torch device; expected cpu, cuda, cuda:N or mps"),
        (
            ["{a}", "{b}", "--model", "default-se"],
            "--model vqscore-se-cleanspeech is an SE (enhancement) model; rank needs a QE (quality) model",
        ),
    ],
)
def test_rank_usage_errors(tmp_path, capsys, args, message):
    write_speech(tmp_path / "a" / "x.wav", seconds=0.6)
    write_speech(tmp_path / "b" / "y.wav", seconds=0.6)
    fill = dict(a=tmp_path / "a", b=tmp_path / "b", tmp=tmp_path)
    assert main(["rank", *(arg.format(**fill) for arg in args)]) == 2
    assert capsys.readouterr() == ("", f"vqscore rank: error: {message.format(**fill)}\n")


# -- filter


@pytest.fixture
def corpus(tmp_path):
    """Six speech-like files of different content and a corrupt one, in walk order."""
    root = tmp_path / "corpus"
    good = [write_speech(root / f"{k}.wav", seconds=0.5 + 0.1 * k, seed=k) for k in range(4)]
    good += [write_speech(root / "sub" / f"{k}.flac", seconds=0.7, seed=k) for k in (4, 5)]
    corrupt = root / "bad.wav"
    corrupt.write_bytes(np.random.default_rng(1).bytes(2000))
    return root, [*good[:4], corrupt, *good[4:]]


def run_filter(root, out, bundle, *options) -> int:
    return main(["filter", str(root), "-o", str(out), "--model", str(bundle), *options])


def test_filter_keep_above(corpus, tiny_bundle, tmp_path, capsys):
    root, files = corpus
    out = tmp_path / "m" / "manifest.csv"
    assert run_filter(root, out, tiny_bundle, "--keep-top", "100%") == 0
    scores = {r["path"]: r for r in read_csv(tmp_path / "m" / "manifest.scores.csv")}
    values = sorted(float(r["vqscore"]) for r in scores.values() if r["vqscore"])
    assert len(values) == 6 and len(set(values)) == 6
    threshold = values[2]  # a file scores exactly this: 'not above'
    capsys.readouterr()
    assert run_filter(root, out, tiny_bundle, "--keep-above", str(threshold)) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "vqscore", "kept", "reason"]
    assert [r["path"] for r in rows] == [str(p) for p in files]  # every file, in walk order
    for row in rows:
        if row["path"] == str(files[4]):
            assert row["kept"] == "false" and row["vqscore"] == ""
            assert row["reason"] == scores[row["path"]]["error"] and row["reason"].startswith(
                f"{files[4]}: cannot read audio ("
            )
            continue
        value = float(row["vqscore"])
        assert row["vqscore"] == scores[row["path"]]["vqscore"]
        assert row["kept"] == ("true" if value > threshold else "false")
        if value < threshold:
            assert row["reason"] == f"below {threshold}"
        else:
            assert row["reason"] == ("" if value > threshold else f"not above {threshold}")
    assert sum(r["kept"] == "true" for r in rows) == 3
    err = capsys.readouterr().err.splitlines()
    assert (
        err[-2]
        == f"vqscore score: 6 scored, 1 failed (7 already in {tmp_path / 'm' / 'manifest.scores.csv'}) -> {tmp_path / 'm' / 'manifest.scores.csv'}"
    )
    assert err[-1] == (
        f"vqscore filter: kept 3 of 7 files, 4 dropped (3 dropped by score, 1 failed) -> {out} "
        f"(scores in {tmp_path / 'm' / 'manifest.scores.csv'})"
    )


@pytest.mark.parametrize("top, kept", [("50%", 3), ("50", 3), ("34", 3), ("33.4%", 3), ("33", 2), ("1", 1), ("100", 6)])
def test_filter_keep_top(corpus, tiny_bundle, tmp_path, top, kept):
    root, files = corpus
    out = tmp_path / "manifest.jsonl"  # JSON lines: JSON booleans, full-precision scores
    assert run_filter(root, out, tiny_bundle, "--keep-top", top) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in files]
    scored = sorted((r for r in rows if r["vqscore"] is not None), key=lambda r: -r["vqscore"])
    assert len(scored) == 6
    assert [r["kept"] for r in scored] == [True] * kept + [False] * (6 - kept)
    assert all(r["reason"] == ("" if r["kept"] else f"not in top {percentage(top):g}%") for r in scored)
    bad = rows[4]
    assert (bad["kept"], bad["vqscore"]) == (False, None) and bad["reason"].startswith(f"{files[4]}: cannot read audio (")
    assert (tmp_path / "manifest.scores.jsonl").is_file()


def test_decide_exactly():
    paths = [f"{k}.wav" for k in range(7)]
    rows = {p: {"vqscore": v, "error": ""} for p, v in zip(paths, ["0.5", "0.7", "0.7", "0.2", "", "0.9", "0.1"], strict=True)}
    rows["6.wav"]["error"] = "6.wav: cannot read audio (x)"
    rows["6.wav"]["vqscore"] = ""
    top = decide(paths, rows, top=40)  # 5 scored files: ceil(2.0) = 2 kept, equal scores in path order
    assert [(e["kept"], e["reason"]) for e in top] == [
        (False, "not in top 40%"),
        (True, ""),
        (False, "not in top 40%"),
        (False, "not in top 40%"),
        (False, "no score (digital silence: nothing to judge)"),
        (True, ""),
        (False, "6.wav: cannot read audio (x)"),
    ]
    above = decide(paths, rows, above=0.5)
    assert [e["reason"] for e in above] == [
        "not above 0.5",
        "",
        "",
        "below 0.5",
        "no score (digital silence: nothing to judge)",
        "",
        "6.wav: cannot read audio (x)",
    ]
    assert [e["vqscore"] for e in above] == [0.5, 0.7, 0.7, 0.2, None, 0.9, None]
    assert decide(["missing.wav"], {}, above=0.0) == [
        {"path": "missing.wav", "vqscore": None, "kept": False, "reason": "not scored"}
    ]
    assert [e["kept"] for e in decide(paths[:5], rows, top=20)] == [False, True, False, False, False]  # 20% of 5: exactly 1
    assert percentage("20%") == percentage(" 20 ") == 20.0


def test_filter_reuses_the_scores_table(corpus, tiny_bundle, tmp_path, capsys):
    root, files = corpus
    table = tmp_path / "scores.csv"
    assert main(["score", str(files[0]), str(files[1]), "-o", str(table), "--model", str(tiny_bundle)]) == 0
    # a marked score shows that the row is reused, not scored again
    lines = table.read_text().splitlines(keepends=True)
    fields = next(csv.reader(lines[1:2]))
    fields[COLUMNS.index("vqscore")] = "0.999999"
    table.write_text(lines[0] + csv_line(fields) + "".join(lines[2:]))
    capsys.readouterr()
    out = tmp_path / "manifest.csv"
    assert run_filter(root, out, tiny_bundle, "--keep-top", "1", "--scores", str(table)) == 0
    assert f"vqscore score: 6 scored, 1 failed (2 already in {table}) -> {table}" in capsys.readouterr().err
    rows = read_csv(out)
    assert (rows[0]["path"], rows[0]["vqscore"], rows[0]["kept"]) == (fields[0], "0.999999", "true")
    assert sum(r["kept"] == "true" for r in rows) == 1
    assert {r["path"] for r in read_csv(table)} == {str(p) for p in files}  # completed in place
    assert not (tmp_path / "manifest.scores.csv").exists()


def test_filter_killed_run_resumes(corpus, tiny_bundle, tmp_path, monkeypatch, capsys):
    """Interrupted after its first batch: those scores stay in the table, and the next run scores only the rest."""
    root, files = corpus
    original = vqscore.corpus.score_file_batches
    asked: list[list[str]] = []

    def one_batch_then_ctrl_c(network, paths, **options):
        asked.append(list(paths))
        for k, batch in enumerate(original(network, paths, **{**options, "batch_frames": 1, "num_workers": 0})):
            if k == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(vqscore.corpus, "score_file_batches", one_batch_then_ctrl_c)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # main's Ctrl-C handler quiets hang-ups process-wide
    out = tmp_path / "manifest.csv"
    table = tmp_path / "manifest.scores.csv"
    assert run_filter(root, out, tiny_bundle, "--keep-above", "0") == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"vqscore filter: interrupted; rows already in {table} are kept: run the same command again to resume"
    )
    assert not out.exists()
    first = [r["path"] for r in read_csv(table)]
    assert len(first) == 1

    monkeypatch.setattr(vqscore.corpus, "score_file_batches", original)
    assert run_filter(root, out, tiny_bundle, "--keep-above", "0") == 0
    assert len(asked) == 1 and len(asked[0]) == 7
    assert sorted(r["path"] for r in read_csv(table)) == sorted(str(p) for p in files)
    assert f"(1 already in {table})" in capsys.readouterr().err
    assert [r["path"] for r in read_csv(out)] == [str(p) for p in files]


def test_filter_table_of_another_model(corpus, tiny_bundle, tmp_path, capsys):
    root, files = corpus
    table = tmp_path / "scores.csv"
    other = save_bundle(tiny_network("qe", seed=1), tmp_path / "other", name="tiny-other", version="0.0.1")
    assert main(["score", str(files[0]), "-o", str(table), "--model", str(other)]) == 0
    capsys.readouterr()
    assert run_filter(root, tmp_path / "m.csv", tiny_bundle, "--keep-above", "0", "--scores", str(table)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vqscore filter: error: {table} holds scores of model tiny-other@0.0.1#")
    assert err.rstrip().endswith("use --overwrite to start afresh, or another output file")
    assert run_filter(root, tmp_path / "m.csv", tiny_bundle, "--keep-above", "0", "--scores", str(table), "--overwrite") == 0
    assert {r["model"].split("#")[0] for r in read_csv(table)} == {"tiny-qe@0.0.1"}


@pytest.mark.parametrize(
    "options, message",
    [
        ([], "one of the arguments --keep-above --keep-top is required"),
        (["--keep-above", "0.7", "--keep-top", "20"], "argument --keep-top: not allowed with argument --keep-above"),
        (["--keep-top", "0"], "argument --keep-top: expected a percentage above 0 and at most 100, like 20% or 20; got '0'"),
        (
            ["--keep-top", "150%"],
            "argument --keep-top: expected a percentage above 0 and at most 100, like 20% or 20; got '150%'",
        ),
        (
            ["--keep-top", "top"],
            "argument --keep-top: expected a percentage above 0 and at most 100, like 20% or 20; got 'top'",
        ),
        (["--keep-above", "nan"], "argument --keep-above: expected a finite number, like 0.75; got 'nan'"),
        (["--keep-above", "high"], "argument --keep-above: expected a finite number, like 0.75; got 'high'"),
    ],
)
def test_filter_argument_errors(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as info:
        main(["filter", str(tmp_path), "-o", str(tmp_path / "m.csv"), *options])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"vqscore filter: error: {message}"


def test_filter_usage_errors(tmp_path, capsys):
    wav = write_speech(tmp_path / "a.wav", seconds=0.6)
    with pytest.raises(SystemExit):
        main(["filter", str(wav), "--keep-top", "20"])
    assert (
        capsys.readouterr().err.splitlines()[-1] == "vqscore filter: error: the following arguments are required: -o/--output"
    )
    cases = [
        (["-o", str(tmp_path / "m.txt")], f"-o {tmp_path / 'm.txt'}: expected a .csv or .jsonl manifest"),
        (
            ["-o", str(tmp_path / "m.csv"), "--scores", str(tmp_path / "m.csv")],
            "--scores must name a different file from -o (the manifest)",
        ),
        (
            ["-o", str(tmp_path / "m.csv"), "--device", "cuda:x"],
            "--device cuda:x: not a torch device; expected cpu, cuda, cuda:N or mps",
        ),
    ]
    for options, message in cases:
        assert main(["filter", str(wav), "--keep-top", "20", *options]) == 2
        assert capsys.readouterr().err == f"vqscore filter: error: {message}\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["filter", str(empty), "--keep-top", "20", "-o", str(tmp_path / "m.csv")]) == 1
    assert capsys.readouterr().err == "vqscore filter: no audio files found under the given paths\n"
