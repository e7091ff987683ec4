"""`vqscore enhance`: files and folders in, a mirrored tree of enhanced WAVs out, one table row per file, resumable
like `vqscore score`, bad files as failure rows, the documented exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, read_rows, speech_like, tiny_network, write_speech

import vqscore
import vqscore.bundle
import vqscore.enhance_files
from vqscore.bundle import save_bundle
from vqscore.cli import ENHANCE_COLUMNS, main
from vqscore.enhance_files import partial_path
from vqscore.enhance_long import EnhancePolicy, enhance_long


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    se = save_bundle(tiny_network("se"), root / "se", name="tiny-se", version="0.0.1")
    se_b = save_bundle(tiny_network("se", seed=1), root / "se-b", name="tiny-se-b", version="0.0.1")
    qe = save_bundle(tiny_network("qe"), root / "qe", name="tiny-qe", version="0.0.1")
    return se, se_b, qe


@pytest.fixture
def corpus(tmp_path):
    """Good files (16 kHz mono, 44.1 kHz stereo, a FLAC and a WAV of one name in a subfolder) and bad ones."""
    root = tmp_path / "in"
    good = [
        write_speech(root / "a.wav", seconds=1.0, seed=1),
        write_speech(root / "b44.wav", seconds=0.8, sr=44_100, channels=2, seed=2),
        write_speech(root / "sub" / "c.flac", seconds=1.3, sr=22_050, seed=3),
        write_speech(root / "sub" / "c.wav", seconds=0.6, sr=8_000, seed=4),
    ]
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(7).bytes(3000))
    short = root / "sub" / "short.wav"
    sf.write(short, speech_like(0.01), SR)
    silent = root / "sub" / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    (root / "notes.txt").write_text("not audio\n")
    return root, good, {"corrupt": corrupt, "short": short, "silent": silent}


def enhance(args, bundles, *extra) -> int:
    se, _, qe = bundles
    return main(["enhance", *map(str, args), "--model", str(se), "--score-model", str(qe), *extra])


def rows_by_path(table: Path) -> dict[str, dict]:
    return {r["path"]: r for r in read_rows(table, ENHANCE_COLUMNS)}


def test_folder_with_bad_files(corpus, bundles, tmp_path, capsys):
    root, good, bad = corpus
    out = tmp_path / "out"
    assert enhance([root, "-o", out], bundles) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"vqscore enhance: 4 enhanced, 3 failed -> {out} ({out / 'enhance.csv'})"
    rows = read_rows(out / "enhance.csv", ENHANCE_COLUMNS)
    order = [good[0], good[1], bad["corrupt"], good[2], good[3], bad["short"], bad["silent"]]
    assert [r["path"] for r in rows] == [str(p) for p in order]  # walk order, like `vqscore score`
    by_path = {r["path"]: r for r in rows}
    # the output tree mirrors the input folder; c.flac beside c.wav keeps its suffix
    outputs = {
        good[0]: out / "a.wav",
        good[1]: out / "b44.wav",
        good[2]: out / "sub" / "c.flac.wav",
        good[3]: out / "sub" / "c.wav",
    }
    rates = {good[0]: SR, good[1]: 44_100, good[2]: 22_050, good[3]: 8_000}
    for path, output in outputs.items():
        row = by_path[str(path)]
        assert row["error"] == "" and row["output"] == str(output)
        info = sf.info(str(output))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (rates[path], 1, "FLOAT", "WAV")
        assert int(row["sample_rate"]) == rates[path]
        assert info.frames == sf.info(str(path)).frames  # as long as the input
        assert 0 < float(row["vqscore_in"]) <= 1 and 0 < float(row["vqscore_out"]) <= 1
        assert row["model"].startswith("tiny-se@0.0.1#") and "vqscore by tiny-qe@0.0.1#" in row["scoring"]
    assert by_path[str(good[1])]["channels"] == "2"
    # the output's VQScore is that of the written file, as `vqscore score` gives it
    qe = vqscore.load(bundles[2])
    assert float(by_path[str(good[0])]["vqscore_out"]) == pytest.approx(qe.vqscore(out / "a.wav"), abs=1e-6)
    assert float(by_path[str(good[0])]["vqscore_in"]) == pytest.approx(qe.vqscore(good[0]), abs=1e-6)
    # the 16 kHz mono input comes out as the model made it
    se = vqscore.load(bundles[0])
    written, _ = sf.read(out / "a.wav", dtype="float32")
    np.testing.assert_allclose(written, se.enhance(good[0]), rtol=0, atol=1e-6)
    errors = {name: by_path[str(p)]["error"] for name, p in bad.items()}
    assert errors["corrupt"].startswith(f"{bad['corrupt']}: cannot read audio")
    assert errors["short"].startswith(f"{bad['short']}: too short (160 samples at 16 kHz)")
    assert errors["silent"] == f"{bad['silent']}: digital silence (every sample is 0); nothing to enhance"
    for p in bad.values():
        assert by_path[str(p)]["output"] == "" and by_path[str(p)]["vqscore_in"] == ""
    written_files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written_files == ["a.wav", "b44.wav", "enhance.csv", "sub/c.flac.wav", "sub/c.wav"]  # no temporary files


def test_rate_subtype_jsonl_table_and_named_files(corpus, bundles, tmp_path, capsys):
    root, good, _ = corpus
    out = tmp_path / "out16"
    table = tmp_path / "t.jsonl"
    args = [good[1], good[2], "-o", out, "--table", table, "--rate", "16000", "--subtype", "PCM_16"]
    assert enhance(args, bundles) == 0
    rows = read_rows(table)
    assert [r["output"] for r in rows] == [str(out / "b44.wav"), str(out / "c.wav")]  # files named: their own names
    assert [r["sample_rate"] for r in rows] == [44_100, 22_050]  # of the input
    for r in rows:
        info = sf.info(r["output"])
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert info.duration == pytest.approx(r["duration_s"], abs=1e-3)
    assert rows[0]["scoring"].endswith("; PCM_16 at 16000 Hz")


def test_usage_errors(corpus, bundles, tmp_path, capsys):
    root, good, _ = corpus
    other = write_speech(tmp_path / "elsewhere" / "a.wav", seconds=0.5)
    out = tmp_path / "out"
    assert enhance([good[0], other, "-o", out], bundles) == 2
    assert capsys.readouterr().err == (
        f"vqscore enhance: error: {good[0]} and {other} would both be written to {out / 'a.wav'}; enhance them into "
        "different output folders\n"
    )
    assert enhance([root, "-o", root], bundles) == 2
    assert "is the input folder" in capsys.readouterr().err
    se, _, qe = bundles
    assert main(["enhance", str(root), "-o", str(out), "--model", str(qe), "--score-model", str(qe)]) == 2
    assert (
        capsys.readouterr().err
        == "vqscore enhance: error: --model tiny-qe is a QE (quality) model; --model needs an SE (enhancement) model\n"
    )
    assert enhance([root, "-o", out, "--rate", "12"], bundles) == 2
    assert "--rate 12: expected a sample rate" in capsys.readouterr().err
    assert enhance([root, "-o", out, "--window-s", "1", "--overlap-s", "0.5"], bundles) == 2
    assert "must be less than half the window" in capsys.readouterr().err
    assert not out.exists()


def test_missing_default_se_is_a_one_line_error(corpus, bundles, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [])
    root, _, _ = corpus
    assert main(["enhance", str(root), "-o", str(tmp_path / "out"), "--score-model", str(bundles[2])]) == 2
    assert capsys.readouterr().err == (
        "vqscore enhance: error: no SE model is shipped in pretrained/ (default-se: no vqscore-se-cleanspeech bundle; "
        "searched: no pretrained directory exists); pass model= (--model) an SE bundle JSON or an official SE checkpoint "
        "path\n"
    )


def test_resume_after_a_kill_redoes_nothing_twice(corpus, bundles, tmp_path, monkeypatch, capsys):
    root, good, bad = corpus
    out = tmp_path / "out"
    assert enhance([root, "-o", out], bundles) == 1
    table = out / "enhance.csv"
    complete = table.read_text()
    lines = complete.splitlines(keepends=True)
    # the state a kill leaves: the rows of some files (one a failure), an output renamed before its row was
    # appended, an output still under its temporary name, and a row cut short
    kept = {good[0], bad["corrupt"]}
    table.write_text(lines[0] + "".join(line for line in lines[1:] if line.split(",")[0] in {str(p) for p in kept}) + "/x,")
    stray = partial_path(out / "sub" / "c.wav")
    stray.write_bytes(b"RIFF half a wav")
    (out / "sub" / "c.wav").unlink()
    before = {p: (out / name).stat().st_mtime_ns for p, name in ((good[0], "a.wav"), (good[1], "b44.wav"))}

    seen: list[str] = []
    real = vqscore.enhance_files.enhance_batch_files

    def spy(model, jobs, *args):
        seen.extend(path for path, _ in jobs)
        return real(model, jobs, *args)

    monkeypatch.setattr(vqscore.enhance_files, "enhance_batch_files", spy)
    assert enhance([root, "-o", out], bundles) == 1
    assert "4 enhanced, 3 failed (2 already in" in capsys.readouterr().err
    assert sorted(seen) == sorted(str(p) for p in [good[1], good[2], good[3], bad["short"], bad["silent"]])
    assert (out / "a.wav").stat().st_mtime_ns == before[good[0]]  # its row was there: not redone
    assert (out / "b44.wav").stat().st_mtime_ns != before[good[1]]  # output without a row: redone
    assert not stray.exists() and sf.info(str(out / "sub" / "c.wav")).frames == sf.info(str(good[3])).frames
    rows = read_rows(table, ENHANCE_COLUMNS)
    assert len(rows) == 7 and len({r["path"] for r in rows}) == 7
    assert table.read_text().splitlines()[1:] == complete.splitlines()[1:]  # the same table as a clean run
    # nothing left to do
    seen.clear()
    assert enhance([root, "-o", out], bundles) == 1 and seen == []
    assert table.read_text() == complete


def test_resuming_with_another_model_is_refused(corpus, bundles, tmp_path, capsys):
    root, good, _ = corpus
    se, se_b, qe = bundles
    out = tmp_path / "out"
    assert enhance([good[0], "-o", out], bundles) == 0
    capsys.readouterr()
    before = (out / "enhance.csv").read_bytes()
    sha = json.loads(se.read_text())["sha256"][:12]
    sha_b = json.loads(se_b.read_text())["sha256"][:12]
    code = main(["enhance", str(good[0]), "-o", str(out), "--model", str(se_b), "--score-model", str(qe)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"vqscore enhance: error: {out / 'enhance.csv'} holds scores of model tiny-se@0.0.1#{sha} (")
    assert f"this run uses model tiny-se-b@0.0.1#{sha_b} (" in err and err.endswith(
        "use --overwrite to start afresh, or another output file\n"
    )
    assert enhance([good[0], "-o", out, "--rate", "8000"], bundles) == 2  # other output settings too
    assert "FLOAT at 8000 Hz" in capsys.readouterr().err
    assert (out / "enhance.csv").read_bytes() == before
    assert main(["enhance", str(good[0]), "-o", str(out), "--model", str(se_b), "--score-model", str(qe), "--overwrite"]) == 0
    assert {r["model"] for r in read_rows(out / "enhance.csv", ENHANCE_COLUMNS)} == {f"tiny-se-b@0.0.1#{sha_b}"}


def test_output_folder_inside_the_input_folder(corpus, bundles, capsys):
    root, good, bad = corpus
    out = root / "enhanced"
    assert enhance([root, "-o", out], bundles) == 1
    assert enhance([root, "-o", out], bundles) == 1  # the outputs are not inputs of the next run
    assert "4 enhanced, 3 failed (7 already in" in capsys.readouterr().err
    assert not (out / "enhanced").exists()
    assert len(read_rows(out / "enhance.csv", ENHANCE_COLUMNS)) == 7


def test_long_files_are_streamed_in_windows(bundles, tmp_path, monkeypatch, capsys):
    """Beyond --max-whole-s a file is read in blocks and enhanced in windows; away from its edges the result is the
    in-memory enhancement of the same samples (exactly, with the same windows; closely, whole, on a steady signal)."""
    t = np.arange(20 * 4096)  # windows of 8 periods, the rest 13 periods split into two of 7
    voiced = sum(0.8**k * np.sin(2 * np.pi * k * t / 128) for k in range(1, 12))
    x = (0.3 * 0.5 * (1 - np.cos(2 * np.pi * t / 4096)) * voiced / np.abs(voiced).max()).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    streamed: list[str] = []
    real = vqscore.enhance_files.enhance_streamed

    def spy(model, source, *args):
        streamed.append(source)
        return real(model, source, *args)

    monkeypatch.setattr(vqscore.enhance_files, "enhance_streamed", spy)
    out = tmp_path / "out"
    assert enhance([path, "-o", out, "--max-whole-s", "2", "--window-s", "2.048", "--overlap-s", "0.256"], bundles) == 0
    assert streamed == [str(path)]
    got, rate = sf.read(out / "long.wav", dtype="float32")
    assert rate == SR and got.shape == x.shape
    se = vqscore.load(bundles[0])
    windows = enhance_long(se.network, x, EnhancePolicy(2.0, 2.048, 0.256))
    np.testing.assert_allclose(got, windows, rtol=0, atol=1e-6)
    whole = se.enhance(x, sr=SR)  # 6.5 s: under the default limit, enhanced whole
    middle = slice(SR, -SR)
    err = got[middle] - whole[middle]
    assert np.sqrt(np.mean(err**2)) < 0.05 * np.sqrt(np.mean(whole[middle] ** 2))


def test_interrupt_keeps_rows_and_says_how_to_resume(corpus, bundles, tmp_path, monkeypatch, capsys):
    root, _, _ = corpus
    out = tmp_path / "out"
    real = vqscore.enhance_files.enhance_streamed
    calls = [0]

    def interrupted(*args):
        calls[0] += 1
        if calls[0] > 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(vqscore.enhance_files, "enhance_streamed", interrupted)
    small = ["--max-whole-s", "0.5", "--window-s", "0.512", "--overlap-s", "0.128"]  # every file streamed, alone
    assert enhance([root, "-o", out, *small], bundles) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    table = out / "enhance.csv"
    assert last == f"vqscore enhance: interrupted; rows already in {table} are kept: run the same command again to resume"
    kept = len(read_rows(table, ENHANCE_COLUMNS))
    assert kept >= 1
    assert not list(out.rglob("*.partial"))
    monkeypatch.setattr(vqscore.enhance_files, "enhance_streamed", real)
    assert enhance([root, "-o", out, *small], bundles) == 1
    assert f"({kept} already in {table})" in capsys.readouterr().err
    assert len(read_rows(table, ENHANCE_COLUMNS)) == 7


def test_help_mentions_enhance(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "enhance" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["enhance", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--table", "--rate", "--subtype", "--score-model", "--max-whole-s", "--overwrite", "vqscore_out"):
        assert option in text


def test_models_marks_both_defaults(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "pretrained"
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [directory])
    qe = save_bundle(tiny_network("qe"), directory, name="tiny-qe", version="1.0.0")
    se = save_bundle(tiny_network("se"), directory, name="vqscore-se-cleanspeech", version="0.1.0")
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"tiny-qe (default)\tqe\tv1.0.0\t\t{qe}",
        f"vqscore-se-cleanspeech (default-se)\tse\tv0.1.0\t\t{se}",
    ]
