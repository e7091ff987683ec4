"""The U-Net recipe: on-the-fly mixtures (conditions as data, SNR in range, deterministic for any number of workers,
held-out speakers never used, reverberant targets), the specialist configs stacked on general.yaml, and a smoke run
of tiny.yaml that trains, validates by enhancement, exports a "unet" bundle and resumes."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

pytest.importorskip("lightning")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recipes.common.mixing import power  # noqa: E402
from recipes.common.mixtures import expand_conditions  # noqa: E402
from recipes.unet.data import MixtureDataModule  # noqa: E402
from recipes.unet.train import main  # noqa: E402
from tests.test_recipe_qe import harmonic, write_clean_corpus  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SPECIALISTS = {
    "noise-low": (["noise:*"], [-5.0, 7.5]),
    "noise-high": (["noise:*"], [7.5, 20.0]),
    "babble-low": (["babble"], [-5.0, 7.5]),
    "babble-high": (["babble"], [7.5, 20.0]),
}


@pytest.fixture()
def corpus(tmp_path: Path) -> dict[str, Path]:
    """Clean speech of two speakers, two noise folders, one RIR, a paired noisy validation set."""
    rng = np.random.default_rng(0)
    clean = write_clean_corpus(tmp_path / "clean", rng)
    noise = tmp_path / "noise"
    (noise / "hum").mkdir(parents=True)
    (noise / "white").mkdir()
    t = np.arange(4000) / 16000
    sf.write(
        noise / "hum" / "h.flac",
        (0.1 * np.sin(2 * np.pi * 120 * t) + 0.05 * np.sin(2 * np.pi * 360 * t)).astype(np.float32),
        16000,
    )
    sf.write(noise / "white" / "w.flac", (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
    (tmp_path / "rir").mkdir()
    decay = np.exp(-np.arange(3200) / 600.0) * rng.standard_normal(3200)
    decay[40] = 3.0  # the direct path
    sf.write(tmp_path / "rir" / "room.flac", decay.astype(np.float32), 16000)
    pairs = tmp_path / "noisy-val"
    for sub in ("noisy", "clean"):
        (pairs / sub).mkdir(parents=True)
    rows = []
    for i, level in enumerate([0.02, 0.1]):
        reference = harmonic(1.5, 140 + 20 * i, rng)
        sf.write(pairs / "clean" / f"p{i}.wav", reference, 16000)
        sf.write(
            pairs / "noisy" / f"p{i}.wav", reference + level * rng.standard_normal(reference.shape).astype(np.float32), 16000
        )
        rows.append({"id": f"p{i}", "noisy": f"noisy/p{i}.wav", "clean": f"clean/p{i}.wav"})
    with open(pairs / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "noisy", "clean"])
        writer.writeheader()
        writer.writerows(rows)
    return {"clean": clean, "noise": noise, "rir": tmp_path / "rir", "manifest": pairs / "manifest.csv"}


def datamodule(corpus: dict[str, Path], **options) -> MixtureDataModule:
    settings = dict(
        sources=[str(corpus["clean"])],
        noise_root=str(corpus["noise"]),
        rir_root=str(corpus["rir"]),
        conditions=["noise:*", "babble"],
        snr_range=(0.0, 10.0),
        crop_seconds=0.5,
        batch_size=4,
        num_workers=0,
        total_samples=64,
        seed=3,
    )
    settings.update(options)
    dm = MixtureDataModule(**settings)
    dm.setup("fit")
    return dm


def test_conditions_expand_from_data(corpus):
    root = corpus["noise"]
    assert expand_conditions(["noise:*", "babble"], root) == ["noise:hum", "noise:white", "babble"]
    assert expand_conditions(["noise:white", "noise:*"], root) == ["noise:white", "noise:hum"]
    with pytest.raises(ValueError, match="unknown condition 'music'"):
        expand_conditions(["music"], root)
    with pytest.raises(ValueError, match="condition 'noise:rain': no folder"):
        expand_conditions(["noise:rain"], root)


def test_mixtures_are_deterministic_for_any_number_of_workers(corpus):
    dm = datamodule(corpus, rir_prob=0.5)
    pairs = dm.train_dataloader().dataset
    for i in (0, 5):
        a, b = pairs[i], pairs[i]
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(pairs[0][0], pairs[1][0])
    alone = [batch for batch, _ in zip(dm.train_dataloader(), range(3), strict=False)]
    dm.hparams.num_workers = 2
    workers = [batch for batch, _ in zip(dm.train_dataloader(), range(3), strict=False)]
    for (n1, c1), (n2, c2) in zip(alone, workers, strict=True):
        assert n1.shape == (4, 8000) and torch.equal(n1, n2) and torch.equal(c1, c2)


def test_a_resumed_run_continues_the_sequence_of_pairs(corpus):
    dm = datamodule(corpus)
    fresh = dm.train_dataloader().dataset
    dm.trainer = SimpleNamespace(global_step=2)  # restored by Lightning before it asks for the data
    resumed = dm.train_dataloader().dataset
    assert len(resumed) == len(fresh) - 8
    assert all(torch.equal(x, y) for x, y in zip(resumed[0], fresh[8], strict=True))


@pytest.mark.parametrize("conditions", [["noise:*"], ["babble"]])
def test_snr_is_in_range_and_level_is_bounded(corpus, conditions):
    pairs = datamodule(corpus, conditions=conditions, snr_range=(7.5, 20.0)).train_dataloader().dataset
    for i in range(16):
        noisy, clean = (x.numpy().astype(np.float64) for x in pairs[i])
        snr = 10 * np.log10(power(clean) / power(noisy - clean))
        assert 7.5 - 0.05 <= snr <= 20.0 + 0.05
        assert max(np.abs(noisy).max(), np.abs(clean).max()) <= 0.99 + 1e-6


def test_reverberant_target(corpus):
    """With rir_prob 1 the target is the reverberated crop (not the dry one) and the noisy is built on it."""
    wet = datamodule(corpus, conditions=["noise:white"], snr_range=(80.0, 80.0), rir_prob=1.0).train_dataloader().dataset
    dry = datamodule(corpus, conditions=["noise:white"], snr_range=(80.0, 80.0), rir_prob=0.0).train_dataloader().dataset
    noisy, target = (x.numpy() for x in wet[0])
    _, dry_target = (x.numpy() for x in dry[0])
    np.testing.assert_allclose(noisy, target, atol=1e-3 * np.abs(target).max())
    correlation = np.dot(target, dry_target) / (np.linalg.norm(target) * np.linalg.norm(dry_target))
    assert 0.1 < correlation < 0.99  # the same crop, reverberated


def test_heldout_speakers_are_never_mixed_in(corpus, tmp_path):
    rng = np.random.default_rng(1)
    (corpus["clean"] / "spk3").mkdir()
    sf.write(corpus["clean"] / "spk3" / "u0.flac", harmonic(1.5, 200, rng), 16000)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"toy": {"train": ["spk1", "spk2"], "val": ["spk3"], "test": []}}))
    dm = datamodule(corpus, speaker_split=str(split))
    assert sorted(set(dm.speakers)) == ["spk1", "spk2"] and len(dm.waves) == 6  # babble draws from these only
    with pytest.raises(ValueError, match="babble needs clean speech of at least two speakers"):
        datamodule(corpus, speaker_split=str(split), sources=[str(corpus["clean"] / "spk1")]).train_dataloader()


SNR_SPECIALISTS = {"snr-low": ([-5.0, 7.5], [-5.0, 5.0]), "snr-high": ([7.5, 20.0], [10.0, 20.0])}


def test_snr_specialists_fine_tune_the_shipped_general_model(capsys):
    for name, (snr_range, val_snr_range) in SNR_SPECIALISTS.items():
        config = printed_config(capsys, "general.yaml", f"{name}.yaml")
        assert config["data"]["conditions"] == ["noise:*", "babble"] and config["data"]["snr_range"] == snr_range
        assert config["data"]["val_snr_range"] == val_snr_range and config["data"]["val_conditions"] is None
        assert config["model"]["init_bundle"] == "pretrained/vqscore-unet-general.json"
        assert (ROOT / config["model"]["init_bundle"]).is_file()
        assert config["trainer"]["callbacks"][-1]["init_args"]["name"] == f"vqscore-unet-{name}"


SNR_BANDS = {"snr-band-low": ([-5.0, 2.5], [-5.0, 0.0]), "snr-band-high": ([12.5, 20.0], [15.0, 20.0])}


def test_snr_band_specialists_train_from_scratch(capsys):
    general = printed_config(capsys, "general.yaml")
    for name, (snr_range, val_snr_range) in SNR_BANDS.items():
        config = printed_config(capsys, "general.yaml", f"{name}.yaml")
        assert config["data"]["conditions"] == ["noise:*", "babble"] and config["data"]["snr_range"] == snr_range
        assert config["data"]["val_snr_range"] == val_snr_range
        assert config["model"]["init_bundle"] is None and config["model"]["lr"] == general["model"]["lr"]
        assert config["trainer"]["max_steps"] == general["trainer"]["max_steps"]
        assert config["trainer"]["callbacks"][-1]["init_args"]["directory"] == f"runs/unet-{name}/bundle"


def test_pitch_specialists_fine_tune_noise_low_on_one_half_of_the_speakers(capsys):
    noise_low = printed_config(capsys, "general.yaml", "noise-low.yaml")
    for half in ("low", "high"):
        config = printed_config(capsys, "general.yaml", f"pitch-{half}.yaml")
        assert config["data"]["sources"] == [f"runs/pitch/{half}.csv"]  # written by recipes.unet.pitch_split
        for key in ("conditions", "snr_range", "rir_prob", "speaker_split"):
            assert config["data"][key] == noise_low["data"][key]
        assert config["model"]["init_bundle"] == "pretrained/vqscore-unet-noise-low.json" and config["model"]["lr"] == 3.0e-4
        assert (ROOT / config["model"]["init_bundle"]).is_file()
        assert config["trainer"]["callbacks"][-1]["init_args"]["name"] == f"vqscore-unet-pitch-{half}"
        assert config["trainer"]["callbacks"][-1]["init_args"]["directory"] == f"runs/unet-pitch-{half}/bundle"


def test_pitch_x_snr_band_specialists_fine_tune_snr_band_low(capsys):
    band = printed_config(capsys, "general.yaml", "snr-band-low.yaml")
    for half in ("low", "high"):
        name = f"snr-band-low-pitch-{half}"
        config = printed_config(capsys, "general.yaml", f"{name}.yaml")
        assert config["data"]["sources"] == [f"runs/pitch/{half}.csv"]
        for key in ("conditions", "snr_range", "val_snr_range", "rir_prob", "speaker_split"):
            assert config["data"][key] == band["data"][key]
        assert config["model"]["init_bundle"] == "pretrained/vqscore-unet-snr-band-low.json"
        assert config["trainer"]["callbacks"][-1]["init_args"]["name"] == f"vqscore-unet-{name}"


def write_manifest(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_validation_pairs_of_one_cluster(tmp_path):
    from recipes.common.enhancement import NoisyPairs

    rows = [
        {"id": "a", "noisy": "n/a.wav", "clean": "c/a.wav", "condition": "noise:hum", "snr_db": "-5"},
        {"id": "b", "noisy": "n/b.wav", "clean": "c/b.wav", "condition": "babble", "snr_db": "5"},
        {"id": "c", "noisy": "n/c.wav", "clean": "c/c.wav", "condition": "noise:white", "snr_db": "10"},
        {"id": "d", "noisy": "n/d.wav", "clean": "c/d.wav", "condition": "real-voicebank", "snr_db": ""},
    ]
    manifest = tmp_path / "manifest.csv"
    write_manifest(manifest, rows)

    def ids(**options) -> list[str]:
        return [noisy.stem for noisy, _ in NoisyPairs(str(manifest), **options).items]

    assert ids() == ["a", "b", "c", "d"]
    assert ids(snr_range=(-5.0, 5.0)) == ["a", "b"]  # bounds included; no SNR (real recordings): outside every band
    assert ids(conditions=["noise:*"]) == ["a", "c"]
    assert ids(snr_range=(0.0, 20.0), conditions=["noise:*", "babble"], max_files=1) == ["b"]
    with pytest.raises(ValueError, match=r"manifest.csv: no pair within snr_range=\(25.0, 30.0\) and conditions=None"):
        NoisyPairs(str(manifest), snr_range=(25.0, 30.0))


def printed_config(capsys, *configs: str) -> dict:
    with pytest.raises(SystemExit) as info:
        main(["fit", *(a for c in configs for a in ("--config", str(ROOT / "recipes/unet" / c))), "--print_config"])
    assert info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_specialists_stack_on_general(capsys):
    general = printed_config(capsys, "general.yaml")
    assert general["data"]["conditions"] == ["noise:*", "babble"] and general["data"]["snr_range"] == [-5.0, 20.0]
    assert general["data"]["rir_prob"] == 0.2
    export = general["trainer"]["callbacks"][-1]["init_args"]
    assert (export["name"], export["version"]) == ("vqscore-unet-general", "1.0.0")
    for name, (conditions, snr_range) in SPECIALISTS.items():
        config = printed_config(capsys, "general.yaml", f"{name}.yaml")
        assert config["data"]["conditions"] == conditions and config["data"]["snr_range"] == snr_range
        assert config["data"]["rir_prob"] == 0.2 and config["trainer"]["max_steps"] == general["trainer"]["max_steps"]
        assert config["trainer"]["default_root_dir"] == f"runs/unet-{name}"
        callbacks = config["trainer"]["callbacks"]
        assert callbacks[1]["init_args"]["every_n_train_steps"] == 100
        assert callbacks[-1]["init_args"]["name"] == f"vqscore-unet-{name}"
        assert callbacks[-1]["init_args"]["directory"] == f"runs/unet-{name}/bundle"


@pytest.mark.skipif(not (DATA / "noise").is_dir(), reason="shared data (../shared/data) not available")
def test_shared_noise_folders_are_the_conditions():
    dm = MixtureDataModule(
        sources=[str(DATA / "clean" / "an4" / "train")],
        speaker_split=str(ROOT / "splits" / "speakers.json"),
        noise_root=str(DATA / "noise"),
        rir_root=str(DATA / "rir"),
        conditions=["noise:*", "babble"],
        rir_prob=0.2,
        crop_seconds=1.0,
        max_files=40,
        total_samples=8,
    )
    dm.setup("fit")
    assert dm.summary["conditions"] == [f"noise:{d.name}" for d in sorted((DATA / "noise").iterdir()) if d.is_dir()] + [
        "babble"
    ]
    assert dm.summary["rirs"] == len([p for p in (DATA / "rir").rglob("*.flac")])
    noisy, clean = dm.train_dataloader().dataset[0]
    assert noisy.shape == clean.shape == (16000,)


def tiny_args(corpus: dict[str, Path], run: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(ROOT / "recipes/unet/tiny.yaml"),
        f"--data.sources=[{corpus['clean']}]",
        f"--data.noise_root={corpus['noise']}",
        f"--data.rir_root={corpus['rir']}",
        f"--data.noisy_manifest={corpus['manifest']}",
        "--model.score_model=" + str(run.parent / "qe.json"),
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        f"--trainer.callbacks.init_args.directory={run / 'bundle'}",
        *extra,
    ]


def test_tiny_unet_recipe_trains_exports_and_resumes(corpus, tmp_path):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    from tests.helpers import tiny_network
    from vqscore.bundle import save_bundle
    from vqscore.enhancers import EnhancerSpec, build_enhancer

    save_bundle(tiny_network("qe"), tmp_path, "qe", "0.0.1", {"source": "test"})
    run = tmp_path / "run"
    main(tiny_args(corpus, run))
    bundle = run / "bundle" / "tiny-unet.json"
    info = json.loads(bundle.read_text())
    assert info["model"]["kind"] == "unet" and info["model"]["channels"] == [4, 8]
    assert info["training"]["best"]["monitor"] == "val/pesq" and info["training"]["steps_total"] == 4
    assert info["training"]["data"]["conditions"] == ["noise:hum", "noise:white", "babble"]
    metrics = next(run.rglob("metrics.csv")).read_text()
    assert "val/pesq_gain" in metrics and "val/vqscore" in metrics and "train/magnitude" in metrics

    latest = next(run.rglob("latest-*.ckpt"))
    main(tiny_args(corpus, run, "--trainer.max_steps=6", f"--ckpt_path={latest}"))
    assert json.loads(bundle.read_text())["training"]["steps_total"] == 6
    enhancer = build_enhancer(EnhancerSpec("bundle", {"model": str(bundle)}))
    assert enhancer.name == "tiny-unet@0.0.1"
    noisy = sf.read(corpus["manifest"].parent / "noisy" / "p0.wav", dtype="float32")[0]
    enhanced = enhancer.enhance(noisy)
    assert enhanced.shape == noisy.shape and np.isfinite(enhanced).all()

    from recipes.unet.module import UNetModule
    from vqscore.bundle import load_bundle

    shipped, _ = load_bundle(bundle)
    fine_tuned = UNetModule(channels=(4, 8), init_bundle=str(bundle), seed=7)
    for name, weights in shipped.state_dict().items():
        assert torch.equal(fine_tuned.model.state_dict()[name], weights), name
    with pytest.raises(ValueError, match=r"tiny-unet.json: bundle U-Net .*channels=\(4, 8\).* differs from the configured"):
        UNetModule(channels=(8, 16), init_bundle=str(bundle))
    with pytest.raises(ValueError, match="qe.json: a U-Net starts from a U-Net bundle, not a qe one"):
        UNetModule(channels=(4, 8), init_bundle=str(tmp_path / "qe.json"))


def test_stft_size_is_a_hyper_parameter_the_bundle_keeps(tmp_path):
    from recipes.unet.module import UNetModule
    from vqscore.bundle import save_bundle
    from vqscore.enhancers import EnhancerSpec, build_enhancer

    module = UNetModule(channels=(4, 8), n_fft=256, hop_length=64)
    assert module.model.config.num_bins == 129
    assert (module.model.features.n_fft, module.model.features.win_length, module.model.features.hop_length) == (256, 256, 64)
    path = save_bundle(module.model, tmp_path, "short", "0.0.1", {"source": "test"})
    enhancer = build_enhancer(EnhancerSpec("bundle", {"model": str(path)}))
    assert enhancer.network.features == module.model.features
    wav = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1
    assert enhancer.enhance(wav).shape == wav.shape
    again = UNetModule(channels=(4, 8), n_fft=256, hop_length=64, init_bundle=str(path))
    assert all(
        torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), module.model.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match=r"short.json: bundle U-Net .*n_fft=256.* differs from the configured .*n_fft=512"):
        UNetModule(channels=(4, 8), init_bundle=str(path))
