"""vqscore.pitch (the F0 estimate on harmonic signals of known pitch) and the pitch-routed enhancer built on it: the
input's own pitch picks the low or the high enhancer, the output is that enhancer's, and bad options are named."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_unet import tiny_unet

from vqscore.bundle import save_bundle
from vqscore.enhancers import EnhancerError, EnhancerSpec, build_enhancer
from vqscore.enhancers.routed import PitchRouted
from vqscore.pitch import MAX_SECONDS, median_f0, voiced_f0


def voice(f0: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A buzzy vowel: 12 harmonics of f0 with falling amplitudes, a little noise, silent edges."""
    t = np.arange(int(seconds * 16000)) / 16000
    wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 13))
    wav = wav + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    wav[:1600] = wav[-1600:] = 0.0
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


@pytest.mark.parametrize("f0", [95.0, 118.0, 165.0, 210.0, 310.0])
def test_voiced_f0_finds_the_pitch(f0):
    got = voiced_f0(voice(f0))
    assert got.size >= 35  # the louder 40 % of ~97 frames, all voiced
    assert np.median(got) == pytest.approx(f0, rel=0.03)


def test_noise_has_no_voiced_frames():
    noise = np.random.default_rng(1).standard_normal(16000).astype(np.float32)
    assert voiced_f0(noise).size <= 2
    assert voiced_f0(np.zeros(100, dtype=np.float32)).size == 0  # shorter than a frame


def test_median_f0_reads_only_the_first_minute():
    wav = np.concatenate([voice(120.0, MAX_SECONDS), voice(250.0, 5.0)])
    assert median_f0(wav) == pytest.approx(120.0, rel=0.03)
    assert math.isnan(median_f0(np.zeros(16000, dtype=np.float32)))


class Constant:
    """A stand-in enhancer that returns a constant, so the output shows which side ran."""

    def __init__(self, name: str, value: float):
        self.name, self.value = name, value

    def enhance(self, wav):
        return np.full(wav.shape, self.value, dtype=np.float32)


@pytest.mark.parametrize("f0, side", [(110.0, "low"), (150.0, "low"), (180.0, "high"), (240.0, "high")])
def test_route_follows_the_input_pitch(f0, side):
    routed = PitchRouted(Constant("lo", 1.0), Constant("hi", 2.0), threshold_hz=165.0)
    wav = voice(f0)
    assert routed.route(wav) == side
    np.testing.assert_array_equal(routed.enhance(wav), np.full(wav.shape, 1.0 if side == "low" else 2.0, np.float32))


def test_unvoiced_input_goes_to_the_chosen_side():
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert PitchRouted(Constant("lo", 1.0), Constant("hi", 2.0)).route(noise) == "high"
    assert PitchRouted(Constant("lo", 1.0), Constant("hi", 2.0), unvoiced="low").route(noise) == "low"


def test_pitch_routed_from_bundles_enhances_like_the_routed_bundle(tmp_path):
    low = save_bundle(tiny_unet(seed=0), tmp_path, name="tiny-low", version="0.0.1")
    high = save_bundle(tiny_unet(seed=1), tmp_path, name="tiny-high", version="0.0.1")
    routed = build_enhancer(EnhancerSpec("pitch-routed", {"low": str(low), "high": str(high), "threshold_hz": 165}))
    assert routed.name == "pitch-routed(tiny-low@0.0.1 < 165 Hz <= tiny-high@0.0.1)"
    for f0, expected in ((110.0, low), (230.0, high)):
        wav = voice(f0)
        alone = build_enhancer(EnhancerSpec("bundle", {"model": str(expected)})).enhance(wav)
        np.testing.assert_array_equal(routed.enhance(wav), alone)
    swapped = build_enhancer(EnhancerSpec("pitch-routed", {"low": str(high), "high": str(low)}))
    assert swapped.weights_sha256 != routed.weights_sha256  # a cache of outputs sees which side is which


@pytest.mark.parametrize(
    "options, message",
    [
        ({"unvoiced": "middle"}, "unvoiced must be one of low, high, got 'middle'"),
        ({"threshold_hz": -1}, "threshold_hz must be a positive number of Hz, got -1"),
        ({"low": "vqscore-unet-nope"}, "enhancer 'bundle': no bundle 'vqscore-unet-nope'"),
        ({"pitch": 3}, "enhancer 'pitch-routed': unknown option(s) pitch; it takes device, high, low, threshold_hz, unvoiced"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(EnhancerError) as info:
        build_enhancer(EnhancerSpec("pitch-routed", options))
    assert message in str(info.value)


def test_bad_input_names_the_enhancer():
    routed = PitchRouted(Constant("lo", 1.0), Constant("hi", 2.0))
    with pytest.raises(EnhancerError, match=r"^pitch-routed\(lo < 165 Hz <= hi\): the input has NaN"):
        routed.enhance(np.array([0.0, np.nan] * 1000, dtype=np.float32))
