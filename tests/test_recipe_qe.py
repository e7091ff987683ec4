"""Smoke run of the QE Lightning recipe: the tiny config trains a few steps on generated audio, exports a bundle,
and the bundle loads and scores."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("lightning")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vqscore  # noqa: E402
from recipes.common.corpus import collect, heldout_speakers, speaker_of  # noqa: E402
from recipes.common.data import RandomCrops, random_gain, tilt  # noqa: E402
from recipes.common.export import main as export_main  # noqa: E402
from recipes.common.metrics import pearson, spearman  # noqa: E402
from recipes.qe.train import main  # noqa: E402


def harmonic(seconds: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 9))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def write_clean_corpus(clean: Path, rng: np.random.Generator) -> Path:
    """Two speakers x three harmonic utterances of 1.5 s, as FLAC."""
    for spk in ("spk1", "spk2"):
        (clean / spk).mkdir(parents=True)
        for i in range(3):
            sf.write(clean / spk / f"u{i}.flac", harmonic(1.5, 110 + 30 * i, rng), 16000)
    return clean


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    clean = write_clean_corpus(tmp_path / "clean", rng)
    quality = tmp_path / "quality"
    quality.mkdir()
    rows = []
    base = harmonic(2.0, 150, rng)
    for i, noise in enumerate([0.0, 0.01, 0.05, 0.2]):
        sf.write(quality / f"q{i}.wav", base + noise * rng.standard_normal(base.shape).astype(np.float32), 16000)
        rows.append({"path": f"q{i}.wav", "pesq": 4.5 - i})
    with open(quality / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "pesq"])
        writer.writeheader()
        writer.writerows(rows)
    return clean, quality / "manifest.csv"


def tiny_args(clean: Path, manifest: Path, run: Path) -> list[str]:
    """The tiny config with data, logs, checkpoints and the exported bundle all under `run`."""
    return [
        "fit",
        "--config",
        str(ROOT / "recipes/qe/tiny.yaml"),
        f"--data.sources=[{clean}]",
        f"--data.quality_manifest={manifest}",
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        f"--trainer.callbacks.init_args.directory={run / 'bundle'}",
    ]


def test_tiny_recipe_trains_exports_and_scores(corpus, tmp_path):
    clean, manifest = corpus
    run = tmp_path / "run"
    main(tiny_args(clean, manifest, run))
    bundle = run / "bundle" / "tiny-qe.json"
    info = json.loads(bundle.read_text())
    assert info["model"]["kind"] == "qe" and info["model"]["codebook_size"] == 32
    assert info["training"]["steps_total"] == 4
    assert info["training"]["data"]["files"] == 6 and info["training"]["data"]["speakers"] == 2
    assert (run / "bundle" / "tiny-qe.md").read_text().startswith("# tiny-qe v0.0.1")
    model = vqscore.load(bundle)
    score = model.score(str(clean / "spk1" / "u0.flac"))
    assert math.isfinite(score.cos_z) and -1.0 <= score.cos_z <= 1.0
    assert model.network.quantizer.initialized.item()

    # Exporting the best checkpoint afterwards gives the same weights as the end-of-fit callback.
    best = next(run.rglob("best-*.ckpt"))
    export_main([str(best), str(tmp_path / "exported"), "--name", "again", "--version", "0.0.2"])
    again = vqscore.load(tmp_path / "exported" / "again.json")
    for key, value in model.network.state_dict().items():
        assert torch.equal(value, again.network.state_dict()[key]), key
    assert json.loads((tmp_path / "exported" / "again.json").read_text())["training"]["best"]["monitor"] == "val/srcc"


def test_tiny_recipe_resumes_from_latest_checkpoint(corpus, tmp_path):
    clean, manifest = corpus
    run = tmp_path / "run"
    common = tiny_args(clean, manifest, run)
    main(common)
    latest = next(run.rglob("latest-*.ckpt"))
    assert torch.load(latest, map_location="cpu", weights_only=True)["global_step"] == 4
    main(common + ["--trainer.max_steps=6", f"--ckpt_path={latest}"])
    info = json.loads((run / "bundle" / "tiny-qe.json").read_text())
    assert info["training"]["steps_total"] == 6


def test_heldout_speakers_are_excluded(tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"_doc": "x", "c": {"train": ["a"], "val": ["b"], "test": ["c"]}}))
    assert heldout_speakers(str(split)) == {"b", "c"}
    assert speaker_of("/x/librispeech/103-1240-0000.flac") == "103"
    assert speaker_of("/x/an4/train/fash/an251-fash-b.flac") == "fash"


def test_manifest_and_folder_sources(corpus, tmp_path):
    clean, _ = corpus
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"path": str(p), "speaker": "s"}) for p in sorted(clean.rglob("*.flac"))))
    from_manifest = collect([str(manifest)])
    from_folder = collect([str(clean)])
    assert [u.path for u in from_manifest] == [u.path for u in from_folder]
    assert {u.speaker for u in from_folder} == {"spk1", "spk2"}
    with pytest.raises(FileNotFoundError, match="neither a folder nor a manifest"):
        collect([str(tmp_path / "missing")])


def test_crops_are_deterministic_and_gain_keeps_peak():
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(20000).astype(np.float32) * 0.9, rng.standard_normal(3000).astype(np.float32)]
    crops = RandomCrops(waves, 16000, (0.05, 2.0), 100, seed=3)
    assert all(np.array_equal(crops[i].numpy(), crops[i].numpy()) for i in range(5))
    assert crops[0].shape == (16000,)
    loud = random_gain(np.array([0.5, -0.9], dtype=np.float32), np.random.default_rng(0), 1.5, 2.0)
    assert np.abs(loud).max() <= 1.0 + 1e-6


def test_correlations_match_known_values():
    x = [1, 2, 3, 4, 5]
    assert pearson(x, [2, 4, 6, 8, 10]) == pytest.approx(1.0)
    assert spearman(x, [1, 4, 9, 16, 25]) == pytest.approx(1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)


def test_clean_preserving_augmentation():
    rng = np.random.default_rng(2)
    waves = [harmonic(2.0, 140, rng), harmonic(1.2, 200, rng)]
    plain = RandomCrops(waves, 8000, (1.0, 1.0), 50, seed=4)
    crops = RandomCrops(waves, 8000, (1.0, 1.0), 50, seed=4, speed=(0.9, 1.1), tilt=0.5)
    for i in range(10):
        x = crops[i].numpy()
        assert x.shape == (8000,) and x.dtype == np.float32 and np.isfinite(x).all()
        assert np.array_equal(x, crops[i].numpy())  # deterministic per index
        assert not np.array_equal(x, plain[i].numpy())
    y = tilt(waves[0], 0.5)
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(waves[0].astype(np.float64) ** 2)), rel=1e-5)
    # brightening raises the high band against the low band
    spectrum = lambda v: np.abs(np.fft.rfft(v))  # noqa: E731
    lo, hi = slice(1, 2000), slice(10000, 16000)
    assert spectrum(y)[hi].sum() / spectrum(y)[lo].sum() > spectrum(waves[0])[hi].sum() / spectrum(waves[0])[lo].sum()
