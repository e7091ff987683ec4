"""Smoke run of the SE Lightning recipe: stage 1 trains a tiny model on generated audio, validates by enhancing a
paired noisy set, exports a bundle; stage 2 starts from that bundle with its codebook frozen, resumes, and its
bundle enhances."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("lightning")
pytest.importorskip("pesq")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vqscore  # noqa: E402
from recipes.se.data import NoisyPairs  # noqa: E402
from recipes.se.train import main  # noqa: E402
from tests.test_recipe_qe import harmonic, write_clean_corpus  # noqa: E402


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    clean = write_clean_corpus(tmp_path / "clean", rng)
    pairs = tmp_path / "noisy-val"
    for sub in ("noisy", "clean"):
        (pairs / sub).mkdir(parents=True)
    rows = []
    for i, level in enumerate([0.02, 0.1]):
        reference = harmonic(1.5, 140 + 20 * i, rng)
        sf.write(pairs / "clean" / f"p{i}.wav", reference, 16000)
        sf.write(pairs / "noisy" / f"p{i}.wav", reference + level * rng.standard_normal(reference.shape).astype(np.float32), 16000)
        rows.append({"id": f"p{i}", "noisy": f"noisy/p{i}.wav", "clean": f"clean/p{i}.wav"})
    with open(pairs / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "noisy", "clean"])
        writer.writeheader()
        writer.writerows(rows)
    return clean, pairs / "manifest.csv"


def args(config: str, clean: Path, manifest: Path, run: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(ROOT / "recipes/se/tiny.yaml"),
        *(["--model", config] if config else []),
        f"--data.sources=[{clean}]",
        f"--data.noisy_manifest={manifest}",
        "--model.init_args.score_model=" + str(run.parent / "qe.json"),
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        f"--trainer.callbacks.init_args.directory={run / 'bundle'}",
        *extra,
    ]


def test_noisy_pairs_reads_the_manifest(corpus):
    _, manifest = corpus
    pairs = NoisyPairs(str(manifest))
    noisy, clean = pairs[1]
    assert len(pairs) == 2 and noisy.shape == clean.shape == (24000,)
    assert not torch.equal(noisy, clean)
    assert len(NoisyPairs(str(manifest), max_files=1)) == 1


def test_tiny_se_recipe_both_stages(corpus, tmp_path):
    from tests.helpers import tiny_network
    from vqscore.bundle import save_bundle

    clean, manifest = corpus
    save_bundle(tiny_network("qe"), tmp_path, "qe", "0.0.1", {"source": "test"})
    stage1 = tmp_path / "stage1"
    main(args("", clean, manifest, stage1))
    bundle1 = stage1 / "bundle" / "tiny-se.json"
    info = json.loads(bundle1.read_text())
    assert info["model"]["kind"] == "se" and info["model"]["codebook_size"] == 32
    assert info["training"]["best"]["monitor"] == "val/pesq"
    metrics = (next(stage1.rglob("metrics.csv"))).read_text()
    assert "val/pesq_gain" in metrics and "val/vqscore" in metrics and "train/spectral" in metrics

    stage2 = tmp_path / "stage2"
    stage2_model = json.dumps({"class_path": "recipes.se.module.SEStage2Module", "init_args": {"init_bundle": str(bundle1)}})
    main(args(stage2_model, clean, manifest, stage2))
    latest = next(stage2.rglob("latest-*.ckpt"))
    state = torch.load(latest, map_location="cpu", weights_only=True)["state_dict"]
    start = vqscore.load(bundle1).network.state_dict()
    # The student's codebook is frozen and the teacher is the stage-1 model, while the encoder moved.
    assert torch.equal(state["model.quantizer.codebook"], start["quantizer.codebook"])
    assert all(torch.equal(state[f"teacher.{k}"], v) for k, v in start.items())
    assert not torch.equal(state["model.encoder.convs.0.weight"], start["encoder.convs.0.weight"])
    main(args(stage2_model, clean, manifest, stage2, "--trainer.max_steps=6", f"--ckpt_path={latest}"))
    info2 = json.loads((stage2 / "bundle" / "tiny-se.json").read_text())
    assert info2["training"]["steps_total"] == 6
    assert "ce_perturbed" in next(stage2.rglob("metrics.csv")).read_text()
    enhanced = vqscore.load(stage2 / "bundle" / "tiny-se.json").enhance(str(manifest.parent / "noisy" / "p0.wav"))
    assert enhanced.shape == (24000,) and np.isfinite(enhanced).all()


def test_resynthesis_derives_a_new_version_sharing_the_weights(tmp_path):
    from recipes.se.resynthesis import derive
    from tests.helpers import tiny_network
    from vqscore.bundle import load_bundle, save_bundle

    source = save_bundle(tiny_network("se"), tmp_path, "tiny-se", "1.0.0", {"source": "test"}, json_name="tiny-se-1.0.0.json")
    derived = derive(str(source), str(tmp_path), "mask", 0.75, "1.1.0")
    network, info = load_bundle(derived)
    original, before = load_bundle(source)
    assert (info.version, network.config.resynthesis, network.config.mask_exponent) == ("1.1.0", "mask", 0.75)
    assert info.weights == before.weights and len(list(tmp_path.glob("*.safetensors"))) == 1
    assert "tiny-se@1.0.0: same weights, resynthesis mask, mask exponent 0.75" == info.training["derived_from"]
    assert derived.with_suffix(".md").is_file()
    with pytest.raises(ValueError, match="unknown resynthesis 'phase'"):
        derive(str(source), str(tmp_path / "x"), "phase", 1.0, "1.2.0")
