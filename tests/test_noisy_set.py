"""The enhancement-set builder (benchmarks/build_noisy_set.py) on a tiny synthetic data root: pairs, manifest,
SNRs, determinism. Fast: a few seconds of made-up audio, no DNSMOS."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import build_noisy_set as N  # noqa: E402
from benchmarks import build_quality_set as B  # noqa: E402
from benchmarks import degrade as D  # noqa: E402

NOISE_FOLDERS = ("hum", "hiss")
VOICEBANK = ("p001_001", "p001_002")


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * D.RATE)) / D.RATE
    return (0.2 * rng.standard_normal(t.shape[0]) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write(path: Path, x: np.ndarray, rate: int = D.RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, format="FLAC")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data root laid out like ../shared/data: the real 'val' speakers' LibriSpeech files (synthetic), two noise
    folders (one at 22.05 kHz), an RIR and two VoiceBank pairs."""
    root = tmp_path_factory.mktemp("data")
    speakers = json.loads(B.SPLITS.read_text())[B.LIBRISPEECH]["val"]
    for i, spk in enumerate(speakers):
        write(root / "clean" / B.LIBRISPEECH / f"{spk}-100-0000.flac", speechlike(3.0, i))
    write(
        root / "noise" / "hum" / "a.flac", np.sin(2 * np.pi * 120 * np.arange(22050) / 22050).astype(np.float32) * 0.1, 22050
    )
    write(root / "noise" / "hiss" / "b.flac", np.random.default_rng(7).standard_normal(8000).astype(np.float32) * 0.05)
    write(root / "rir" / "r.flac", np.r_[1.0, np.zeros(99), 0.3].astype(np.float32))
    for k, stem in enumerate(VOICEBANK):
        clean = speechlike(1.5, 50 + k)
        write(root / "real-noisy" / "voicebank" / "clean" / f"{stem}.flac", clean)
        write(root / "real-noisy" / "voicebank" / "noisy" / f"{stem}.flac", clean + 0.05 * speechlike(1.5, 60 + k))
    return root


@pytest.fixture(scope="module")
def builds(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("noisy")
    args = ["--split", "val", "--data", str(data), "--seed", "3", "--max-clean", "4", "--workers", "1", "--voicebank"]
    assert N.main([*args, "--out", str(out / "a")]) == 0
    assert N.main([*args, "--out", str(out / "b"), "--no-labels"]) == 0
    return out / "a", out / "b"


def test_manifest_pairs_and_snrs(builds, data):
    out = builds[0]
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames[:6]) == ("id", "noisy", "clean", "condition", "snr_db", "speaker")
        rows = list(reader)
    synthetic = [r for r in rows if r["condition"] != N.REAL]
    assert len(synthetic) == 4 * (len(NOISE_FOLDERS) + 1)
    assert {r["condition"] for r in synthetic} == {"noise:hum", "noise:hiss", "babble"}
    assert sorted(r["id"] for r in rows if r["condition"] == N.REAL) == [f"{s}__{N.REAL}" for s in VOICEBANK]
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["noisy"] == f"noisy/{r['id']}.wav" and r["clean"] == f"clean/{r['id']}.wav"
        noisy, sr = sf.read(out / r["noisy"], dtype="float64")
        clean, _ = sf.read(out / r["clean"], dtype="float64")
        assert sr == 16000 and noisy.ndim == 1 and noisy.shape == clean.shape
        assert np.abs(noisy).max() <= 1.0 and np.abs(clean).max() <= 1.0
        assert float(r["pesq"]) > 0 and 0 <= float(r["stoi"]) <= 1 and r["dnsmos_ovrl"] == ""  # val: no DNSMOS
        if r["condition"] == N.REAL:
            assert r["snr_db"] == "" and r["speaker"] == "p001"
            continue
        snr = float(r["snr_db"])
        assert snr in N.SNRS
        measured = 10 * np.log10(D.power(clean) / D.power(noisy - clean))  # the pair is scaled together
        assert abs(measured - snr) < 0.05
        assert abs(float(r["si_sdr"]) - snr) < 1.0
    for condition in ("noise:hum", "noise:hiss", "babble"):  # the SNR cycles within each condition
        assert len({r["snr_db"] for r in synthetic if r["condition"] == condition}) == 4


def test_same_seed_same_audio(builds):
    a, b = builds
    rows_a, rows_b = B.read_manifest(a / "manifest.csv"), B.read_manifest(b / "manifest.csv")
    assert [r["id"] for r in rows_a] == [r["id"] for r in rows_b]
    assert all(r["pesq"] == "" for r in rows_b)  # --no-labels
    for r in rows_a:
        for column in ("noisy", "clean"):
            np.testing.assert_array_equal(sf.read(a / r[column])[0], sf.read(b / r[column])[0])


def test_enhance_benchmark_runs_and_caches(builds, tmp_path):
    """benchmarks/enhance.py end to end on the tiny set: a tiny random SE bundle, the peers when installed, no DNSMOS."""
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    from helpers import tiny_network

    from benchmarks import enhance as E
    from vqscore.bundle import save_bundle

    bundle = save_bundle(tiny_network("se"), tmp_path / "se", name="tiny-se", version="0.0.1")
    peers = [p for p, module in (("noisereduce", "noisereduce"), ("nsnet2", "onnxruntime")) if _importable(module)]
    args = ["--set", str(builds[0]), "--model", f"stage1={bundle}", "--peers", ",".join(peers), "--max-files", "4"]
    args += [
        "--no-dnsmos",
        "--workers",
        "1",
        "--threads",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "r"),
    ]
    assert E.main(args) == 0
    result = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [s["label"] for s in result["systems"]] == ["noisy", "stage1", *peers]
    assert result["set"]["files"] == 4 and result["dnsmos"] is False
    noisy, stage1 = result["systems"][:2]
    assert noisy["rtf"] is None and stage1["rtf"] > 0
    for s in result["systems"]:
        assert s["overall"]["n"] == 4 and s["overall"]["dnsmos_ovrl"] is None
        assert all(s["overall"][m] is not None for m in ("pesq", "stoi", "si_sdr", "vqscore"))
    bands = [g for g in result["groups"] if g.endswith(" dB") or g == N.REAL]
    assert sum(stage1["groups"][g]["n"] for g in bands) == 4  # every file in one SNR band
    labels = tmp_path / "cache" / stage1["cache"].rsplit("/", 1)[-1] / "labels.json"
    before = labels.stat().st_mtime_ns
    assert E.main(args) == 0  # everything cached: nothing is recomputed
    assert labels.stat().st_mtime_ns == before
    assert "| stage1 | 4 |" in (tmp_path / "r" / "results.md").read_text()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_split_set_halves_by_speaker(tmp_path):
    from benchmarks import split_set

    root = tmp_path / "noisy-x"
    (root / "noisy").mkdir(parents=True)
    (root / "clean").mkdir()
    (root / "enhanced" / "m-1").mkdir(parents=True)
    (root / "enhanced" / "m-1" / "labels.json").write_text("{}")
    rows = [{"id": f"{s}-{i}", "speaker": s, "snr_db": "0"} for s in ("7", "10", "3", "2") for i in range(2)]
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "speaker", "snr_db"])
        writer.writeheader()
        writer.writerows(rows)
    split_set.main(["--set", str(root)])
    got = {}
    for h in "AB":
        with open(tmp_path / f"noisy-x-{h}" / "manifest.csv", newline="") as f:
            got[h] = list(csv.DictReader(f))
        assert (tmp_path / f"noisy-x-{h}" / "noisy").resolve() == (root / "noisy").resolve()
        assert (tmp_path / f"noisy-x-{h}" / "enhanced" / "m-1" / "labels.json").is_file()
    # sorted as strings: "10", "2", "3", "7" -> A, B, A, B
    assert [r["id"] for r in got["A"]] == ["10-0", "10-1", "3-0", "3-1"]
    assert [r["id"] for r in got["B"]] == ["7-0", "7-1", "2-0", "2-1"]  # row order kept


def test_split_set_by_source(tmp_path):
    from benchmarks import split_set

    root = tmp_path / "noisy-y"
    (root / "noisy").mkdir(parents=True)
    (root / "clean").mkdir()
    rows = [{"id": f"{src}-{i}", "speaker": str(i), "source": src} for i in range(3) for src in ("libri", "mushra")]
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "speaker", "source"])
        writer.writeheader()
        writer.writerows(rows)
    split_set.main(["--set", str(root), "--by", "source"])
    for src in ("libri", "mushra"):
        with open(tmp_path / f"noisy-y-{src}" / "manifest.csv", newline="") as f:
            assert [r["id"] for r in csv.DictReader(f)] == [f"{src}-{i}" for i in range(3)]


def test_rated_references_are_added_after_the_split_and_skip_voicebank_voices(data, tmp_path):
    """The MUSHRA hidden references join a split as extra clean items: the split's own pairs stay byte-identical
    (same ids, same audio), non-reference rows are ignored, and a VoiceBank voice (p001 here) is left out."""
    root = data.parent / "data-with-mushra"
    if not root.exists():
        import shutil

        shutil.copytree(data, root)
        audio = root / N.MUSHRA_LABELS.parent / "audio"
        rows = [
            ("audio/s1_ref.flac", "VCTK_p229_293", N.MUSHRA_REFERENCE),
            ("audio/s1_codec.flac", "VCTK_p229_293", "Proposed 1.38"),
            ("audio/s2_ref.flac", "TSP_FB10_07", N.MUSHRA_REFERENCE),
            ("audio/s3_ref.flac", "VCTK_p001_009", N.MUSHRA_REFERENCE),
        ]
        for k, (name, _, _) in enumerate(rows):
            write(audio / Path(name).name, speechlike(1.2, 80 + k), 24000)
        with open(root / N.MUSHRA_LABELS, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "signal", "condition", "mushra_mean", "n_ratings", "std", "sample_rate"])
            writer.writerows([(name, signal, condition, "50", "10", "1", "24000") for name, signal, condition in rows])
    args = ["--split", "val", "--data", str(root), "--seed", "3", "--max-clean", "2", "--no-labels"]
    assert N.main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert N.main([*args, "--out", str(tmp_path / "wide"), "--rated-references"]) == 0
    plain = B.read_manifest(tmp_path / "plain" / "manifest.csv")
    wide = B.read_manifest(tmp_path / "wide" / "manifest.csv")
    assert [r["id"] for r in wide[: len(plain)]] == [r["id"] for r in plain]
    for r in plain:
        np.testing.assert_array_equal(sf.read(tmp_path / "plain" / r["noisy"])[0], sf.read(tmp_path / "wide" / r["noisy"])[0])
    extra = wide[len(plain) :]
    assert {r["speaker"] for r in extra} == {"p229", "FB10"}
    assert {r["source"] for r in extra} == {"mushra-reference"}
    assert len(extra) == 2 * (len(NOISE_FOLDERS) + 1)
    assert sorted({r["id"].split("__")[0] for r in extra}) == ["mushra-TSP_FB10_07", "mushra-VCTK_p229_293"]
    with pytest.raises(ValueError, match="'Foo_x': not a VCTK_<speaker>_<n> or TSP_<speaker>_<n> signal name"):
        N.reference_speaker("Foo_x")
