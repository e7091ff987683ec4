"""The U-Net spectrogram denoiser (vqscore/models/unet.py): any length in, the same length out; a mask in [0, 1];
batches equal to items; exact, sha256-verified bundles of kind "unet"; vqscore.load refuses them by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import SR, speech_like

import vqscore.bundle
from vqscore import BundleError
from vqscore.bundle import load_bundle, save_bundle
from vqscore.cli import main
from vqscore.models import UNetConfig, UNetDenoiser, build_model, config_from_dict


def tiny_unet(seed: int = 0) -> UNetDenoiser:
    """A tiny random U-Net whose batch-norm statistics moved off their initial values (so a round trip tests them)."""
    torch.manual_seed(seed)
    network = UNetDenoiser(UNetConfig(channels=(4, 8))).train()
    with torch.no_grad():
        audio = 0.1 * torch.randn(2, SR, generator=torch.Generator().manual_seed(seed + 1))
        network(network.spectrum(network.stft(audio)))
    return network.eval()


def test_default_size_is_for_cpu():
    network = UNetDenoiser()
    assert 100_000 <= network.num_parameters() <= 400_000
    assert network.config.kind == "unet" and network.features.hop_length == 128 and network.features.transform == "log1p"


@pytest.mark.parametrize("samples", [1, 300, 511, 513, 4001, 16_001, 24_577])
def test_length_is_preserved(samples):
    wav = torch.from_numpy(speech_like(samples / SR + 1e-6, seed=samples)[:samples])
    out = tiny_unet().enhance(wav)
    assert out.shape == (samples,) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_mask_is_in_unit_interval_and_shaped_like_the_spectrum():
    network = tiny_unet()
    for frames in (1, 7, 33):
        spec = torch.rand(3, frames, 257) * 6.0  # log1p magnitudes from silence to very loud
        with torch.no_grad():
            mask = network(spec)
        assert mask.shape == spec.shape
        assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


def test_stft_inverts_exactly_so_a_mask_of_one_is_the_input():
    network = tiny_unet()
    wav = torch.from_numpy(np.stack([speech_like(0.7, seed=s) for s in (1, 2)]))
    np.testing.assert_allclose(network.istft(network.stft(wav), wav.shape[-1]), wav, atol=1e-5)


def test_silence_stays_silence():
    assert torch.equal(tiny_unet().enhance(torch.zeros(5000)), torch.zeros(5000))


def test_batch_equals_items_on_equal_lengths():
    network = tiny_unet()
    wavs = torch.from_numpy(np.stack([speech_like(0.8, seed=s) for s in (3, 4, 5)]))
    with torch.no_grad():
        batch = network.denoise(wavs)
    for i in range(3):
        np.testing.assert_allclose(batch[i], network.enhance(wavs[i]), atol=1e-6)


def test_config_round_trip_and_refusals():
    config = UNetConfig(channels=(6, 12, 24))
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert isinstance(build_model(config.to_dict()), UNetDenoiser)
    with pytest.raises(ValueError, match=r"unknown UNetConfig fields: \['depth'\]"):
        UNetConfig.from_dict({"kind": "unet", "depth": 3})
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        UNetConfig(kernel_size=4)


def test_bundle_round_trip_is_exact_and_verified(tmp_path):
    network = tiny_unet()
    path = save_bundle(network, tmp_path, name="tiny-unet", version="0.0.1", training={"data": "noise"})
    loaded, info = load_bundle(path)
    assert info.kind == "unet" and isinstance(loaded, UNetDenoiser) and not loaded.training
    assert loaded.config == network.config and loaded.features == network.features
    before, after = network.state_dict(), loaded.state_dict()
    assert set(before) == set(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    wav = torch.from_numpy(speech_like(1.3, seed=7))
    assert torch.equal(network.enhance(wav), loaded.enhance(wav))

    weights = info.weights_path
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(path)


def test_vqscore_load_refuses_a_unet_bundle_by_name(tmp_path):
    path = save_bundle(tiny_unet(), tmp_path, name="tiny-unet", version="0.0.1")
    with pytest.raises(
        BundleError, match=r"tiny-unet@0\.0\.1 is a unet enhancer bundle, not a VQScore model .*build_enhancer"
    ):
        vqscore.load(path)


def test_models_lists_a_unet_bundle(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [tmp_path])
    path = save_bundle(tiny_unet(), tmp_path, name="vqscore-unet-tiny", version="1.0.0", training={"data": "mixtures"})
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "name\tkind\tversion\ttrained on\tbundle",
        f"vqscore-unet-tiny\tunet\tv1.0.0\tmixtures\t{path}",
    ]
