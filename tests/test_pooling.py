"""Pooling per-frame scores into the VQScore: the paper's mean, or the median / low percentiles that track listeners
better (benchmarks/pooling.py); the same through the API, the command line and long-file windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, read_rows, speech_like, tiny_network

import vqscore
from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.longform import LongformPolicy
from vqscore.pooling import pool


def test_pool_values():
    frames = np.array([0.1, 0.9, 0.5, np.nan, 0.3, 0.7], np.float32)
    finite = np.array([0.1, 0.9, 0.5, 0.3, 0.7])
    assert pool(frames, "mean") == pytest.approx(finite.mean())
    assert pool(frames, "median") == pytest.approx(0.5)
    assert pool(frames, "p25") == pytest.approx(np.percentile(finite, 25))
    assert pool(frames, "p10") == pytest.approx(np.percentile(finite, 10))
    assert math.isnan(pool(np.full(3, np.nan), "median"))
    with pytest.raises(ValueError, match=r"^unknown pooling 'max'; expected one of \['mean', 'median', 'p25', 'p10'\]$"):
        pool(frames, "max")
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        vqscore.api.Model(tiny_network("qe"), name="t", pooling="max")


@pytest.fixture(scope="module")
def model():
    return vqscore.api.Model(tiny_network("qe"), name="tiny")


def test_model_pools_its_frames(model):
    x = np.concatenate([speech_like(1.0, seed=1), 0.2 * speech_like(0.5, seed=2)])
    mean = model.score(x, sr=SR)
    for name in ("median", "p25", "p10"):
        got = model.with_pooling(name).score(x, sr=SR)
        assert got.cos_z == pytest.approx(pool(mean.frames, name), abs=1e-7)
        assert got.l2_z == mean.l2_z and np.array_equal(got.frames, mean.frames)
    assert mean.cos_z == pytest.approx(float(np.mean(mean.frames, dtype=np.float64)), abs=1e-6)
    assert vqscore.score(x, sr=SR, model=model, pooling="median") == pytest.approx(pool(mean.frames, "median"), abs=1e-7)
    batch = model.with_pooling("median").vqscore(np.stack([x, x[::-1].copy()]), sr=SR)
    assert batch[0] == pytest.approx(pool(mean.frames, "median"), abs=1e-5)


def test_long_files_pool_all_frames_and_each_window(model):
    x = np.tile(speech_like(1.0, seed=3), 5)
    m = model.with_pooling("median")
    m.policy = LongformPolicy(max_whole_s=2.0, window_s=1.5)
    got = m.score(x, sr=SR)
    assert got.windows is not None and len(got.windows) > 1
    assert got.cos_z == pytest.approx(pool(got.frames, "median"))
    start = 0
    for w in got.windows:
        assert w.cos_z == pytest.approx(pool(got.frames[start : start + w.num_frames], "median"))
        start += w.num_frames


def test_cli_pooling_matches_the_api_and_is_part_of_the_stamp(tmp_path, capsys):
    bundle = save_bundle(tiny_network("qe"), tmp_path / "m", name="tiny-med", version="0.0.1", pooling="median")
    loaded = vqscore.load(bundle)
    assert loaded.pooling == "median" and vqscore.load(bundle, pooling="p10").pooling == "p10"
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"f{i}.wav", speech_like(0.6 + 0.2 * i, seed=i), SR, subtype="FLOAT")
    out = tmp_path / "s.csv"
    assert main(["score", str(folder), "-o", str(out), "--model", str(bundle)]) == 0
    rows = read_rows(out)
    assert {r["scoring"] for r in rows} == {"paper; pooling median; whole<=1800s; windows 60s"}
    np.testing.assert_allclose([float(r["vqscore"]) for r in rows], loaded.vqscore(sorted(folder.iterdir())), atol=2e-6)
    capsys.readouterr()
    assert main(["score", str(folder), "-o", str(out), "--model", str(bundle), "--pooling", "mean"]) == 2
    assert "(paper; pooling mean; whole<=1800s; windows 60s)" in capsys.readouterr().err
