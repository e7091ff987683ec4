"""The optional 1-5 scale: monotone, fitted by grouped isotonic regression, stored in the bundle, applied only to the
conditioning and pooling it was fitted for, and written to the CLI's `mos` column."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, read_rows, speech_like, tiny_network

import vqscore
from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.mos_scale import MosScale, fit_mos_scale, pool_adjacent_violators


def test_pool_adjacent_violators():
    got = pool_adjacent_violators(np.array([1.0, 3.0, 2.0, 4.0, 0.0]), np.ones(5))
    # (3, 2) pool to 2.5, (4, 0) to 2, and those two blocks to 2.25
    np.testing.assert_allclose(got, [1.0, 2.25, 2.25, 2.25, 2.25])


def test_fit_is_monotone_and_within_1_to_5():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.7, 0.9, 200)
    mos = np.clip(1 + 20 * (raw - 0.7) + rng.normal(0, 0.6, 200), 1, 5)
    scale = fit_mos_scale(raw, mos, "robust", "median", "synthetic")
    assert len(scale.knots_x) == 8 and all(np.diff(scale.knots_y) >= 0)
    mapped = scale(raw)
    assert mapped.min() >= 1 and mapped.max() <= 5
    assert np.corrcoef(mapped, mos)[0, 1] > 0.8
    assert scale(0.0) == scale.knots_y[0] and scale(1.0) == scale.knots_y[-1] and math.isnan(scale(float("nan")))
    assert MosScale.from_dict(scale.to_dict()) == scale
    with pytest.raises(ValueError, match="must increase in x and not decrease in y"):
        MosScale((0.1, 0.2), (3.0, 2.0), "robust", "median")
    with pytest.raises(ValueError, match="within 1-5"):
        MosScale((0.1, 0.2), (3.0, 6.0), "robust", "median")


def test_bundle_scale_applies_to_its_scoring_only(tmp_path, capsys):
    json_path = save_bundle(tiny_network("qe"), tmp_path / "m", name="tiny-mos", version="0.0.1", conditioning="robust")
    model = vqscore.load(json_path)
    with pytest.raises(ValueError, match=r"^tiny-mos has no 1-5 scale for robust conditioning and mean pooling \(its bundle has none\)$"):
        model.mos(speech_like(1.0), sr=SR)
    scale = MosScale((0.0, 0.5, 1.0), (1.0, 3.0, 4.5), "robust", "mean", "test")
    info = json.loads(json_path.read_text())
    info["mos_scale"] = scale.to_dict()
    json_path.write_text(json.dumps(info))
    model = vqscore.load(json_path)
    x = speech_like(1.0, seed=2)
    raw = model.vqscore(x, sr=SR)
    assert model.mos(x, sr=SR) == pytest.approx(scale(raw))
    assert model.mos(np.stack([x, x]), sr=SR).shape == (2,)
    with pytest.raises(ValueError, match=r"fitted for robust conditioning and mean pooling"):
        model.with_pooling("median").mos(x, sr=SR)
    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "a.wav", x, SR, subtype="FLOAT")
    out = tmp_path / "s.csv"
    assert main(["score", str(folder), "-o", str(out), "--model", str(json_path)]) == 0
    row = read_rows(out)[0]
    assert float(row["mos"]) == pytest.approx(scale(float(row["vqscore"])), abs=1e-5)
    paper = tmp_path / "p.csv"
    assert main(["score", str(folder), "-o", str(paper), "--model", str(json_path), "--conditioning", "paper"]) == 0
    assert read_rows(paper)[0]["mos"] == ""
