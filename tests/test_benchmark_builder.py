"""The quality-benchmark builder (benchmarks/): degradations, manifest, determinism, labels.

The builds use the shared real audio at ../shared/data and skip cleanly without it.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import build_quality_set as B  # noqa: E402
from benchmarks import degrade as D  # noqa: E402

DATA = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "clean").is_dir(), reason="shared data (../shared/data) not available")


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Broadband, amplitude-modulated noise: enough like speech for level and band checks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * D.RATE)) / D.RATE
    return (0.2 * rng.standard_normal(t.shape[0]) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("snr_db", [-5, 0, 7.5, 20, 30])
def test_mix_at_snr_hits_the_target(snr_db):
    clean = speechlike(2.0)
    noise = np.random.default_rng(1).standard_normal(5000)  # shorter than the clean: looped
    mix = D.mix_at_snr(clean, noise, snr_db, np.random.default_rng(2))
    assert mix.shape == clean.shape
    residual = mix.astype(np.float64) - clean
    measured = 10 * np.log10(D.power(clean) / D.power(residual))
    assert abs(measured - snr_db) < 0.1


def test_degradations_are_deterministic_given_the_generator():
    clean, noise = speechlike(1.5, 3), speechlike(3.0, 4)
    talkers = [speechlike(1.0, s) for s in (5, 6, 7)]
    for make in (
        lambda rng: D.mix_at_snr(clean, noise, 5, rng),
        lambda rng: D.babble(clean, talkers, 0, rng),
        lambda rng: D.spectral_subtraction(D.mix_at_snr(clean, noise, 5, rng)),
    ):
        a, b = make(np.random.default_rng(11)), make(np.random.default_rng(11))
        assert a.shape == clean.shape
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, make(np.random.default_rng(12)))


def test_si_sdr():
    clean = speechlike(1.0)
    assert D.si_sdr(clean, clean) > 50
    assert D.si_sdr(clean, 0.3 * clean) > 50  # scale-invariant
    noisy = D.mix_at_snr(clean, np.random.default_rng(99).standard_normal(clean.shape[0]), 10, np.random.default_rng(1))
    assert abs(D.si_sdr(clean, noisy) - 10) < 0.5


def test_telephone_is_band_limited():
    clean = speechlike(2.0)
    phone = D.telephone(clean)
    assert phone.shape == clean.shape
    assert D.band_energy_ratio(clean, 4000) > 0.4
    assert D.band_energy_ratio(phone, 4000) < 1e-4
    assert D.band_energy_ratio(phone, 3600) < 0.02


def test_other_degradations_keep_length_and_alignment():
    clean = speechlike(1.0)
    rir = np.zeros(4000)
    rir[100] = 1.0
    rir[600] = 0.3  # one echo after the direct path
    wet = D.reverb(clean, rir)
    assert wet.shape == clean.shape and abs(D.rms(wet) - D.rms(clean)) < 1e-6
    assert np.corrcoef(wet, clean)[0, 1] > 0.9  # advanced by the direct path
    low = D.band_limit(clean, 3000)
    assert D.band_energy_ratio(low, 3500) < 0.01
    clipped = D.clip(clean, 0.2)
    assert np.abs(clipped).max() <= 0.2 * np.abs(clean).max() + 1e-7


@pytest.fixture(scope="module")
def tiny_builds(tmp_path_factory):
    if not (DATA / "clean").is_dir():
        pytest.skip("shared data (../shared/data) not available")
    root = tmp_path_factory.mktemp("quality")
    for name in ("a", "b"):
        assert B.main(["--split", "test", "--data", str(DATA), "--out", str(root / name), "--seed", "0", "--max-clean", "2", "--no-labels"]) == 0
    return root / "a", root / "b"


@needs_data
def test_manifest_columns_and_content(tiny_builds):
    out = tiny_builds[0]
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == B.COLUMNS
        rows = list(reader)
    for required in ("path", "clean_path", "speaker", "source", "degradation", "snr_db", "pesq", "stoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        assert required in B.COLUMNS
    folders = sorted(p.name for p in (DATA / "noise").iterdir() if p.is_dir())
    expected = {"clean", *(f"noise:{f}" for f in folders), "babble", "reverb", "bandlimit", "clipping", "telephone", "musical"}
    synthetic = [r for r in rows if r["source"] != "voicebank"]
    assert {r["degradation"] for r in synthetic} == expected
    assert len(synthetic) == 2 * len(expected)
    voicebank = [r for r in rows if r["source"] == "voicebank"]
    pairs = len(list((DATA / "real-noisy" / "voicebank" / "noisy").glob("*.flac")))
    assert sorted(r["degradation"] for r in voicebank) == ["clean"] * pairs + ["real-voicebank"] * pairs
    paths = {r["path"] for r in rows}
    for r in rows:
        assert r["clean_path"] in paths
        assert not Path(r["path"]).is_absolute()
        if r["degradation"].startswith("noise:"):
            assert float(r["snr_db"]) in B.NOISE_SNRS
        elif r["degradation"] in ("clean", "reverb", "bandlimit", "clipping", "telephone", "real-voicebank"):
            assert r["snr_db"] == ""
        if r["degradation"] == "babble":
            talkers = r["detail"].removeprefix("talkers ").split("+")
            assert 3 <= len(talkers) <= 5 and r["speaker"] not in talkers
        x, sr = sf.read(out / r["path"], dtype="float32")
        ref, _ = sf.read(out / r["clean_path"], dtype="float32")
        assert sr == 16000 and x.ndim == 1 and x.shape == ref.shape
        assert np.isfinite(x).all() and np.abs(x).max() <= 1.0
        assert all(r[k] == "" for k in B.LABELS)  # --no-labels


@needs_data
def test_same_seed_gives_identical_sets(tiny_builds):
    a, b = tiny_builds
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    for r in B.read_manifest(a / "manifest.csv"):
        # samples, not bytes: libsndfile stamps the time into float WAV headers (PEAK chunk)
        np.testing.assert_array_equal(sf.read(a / r["path"], dtype="float32")[0], sf.read(b / r["path"], dtype="float32")[0])


@needs_data
def test_labels_of_a_few_files(tiny_builds):
    out = tiny_builds[0]
    rows = {r["degradation"]: r for r in B.read_manifest(out / "manifest.csv") if r["source"] != "voicebank"}
    clean = sf.read(out / rows["clean"]["path"], dtype="float32")[0]
    same = B.compute_labels(clean, clean)
    assert same["pesq"] > 4.5 and same["stoi"] > 0.99 and same["si_sdr"] > 50
    noisy = sf.read(out / rows["babble"]["path"], dtype="float32")[0]
    worse = B.compute_labels(clean, noisy)
    assert worse["pesq"] < same["pesq"] and worse["stoi"] < same["stoi"] and worse["si_sdr"] < 30
    for k in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        assert 1.0 <= worse[k] <= 5.0 and 1.0 <= same[k] <= 5.0
    assert worse["dnsmos_bak"] < same["dnsmos_bak"]
