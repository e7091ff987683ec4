"""Enhancement that scales: padded batches equal one-by-one, long recordings in cross-faded windows with no click at
the seams, read and written in blocks, and the shipped "default-se" model lookup."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import SR, speech_like, tiny_network

import vqscore
import vqscore.bundle
from vqscore.audio import load_audio
from vqscore.bundle import BundleError, find_shipped, load_bundle, save_bundle
from vqscore.enhance import enhance_batch, enhance_padded
from vqscore.enhance_long import CrossFade, EnhancePolicy, enhance_long, enhance_stream, fade_in, window_bounds
from vqscore.longform import read_blocks
from vqscore.models import SEConfig, build_model

HOP = 128
# Short windows so that the tiny model runs many of them fast: 1.024 s windows, 0.128 s overlaps.
SMALL = EnhancePolicy(max_whole_s=1.024, window_s=1.024, overlap_s=0.128)


@pytest.fixture(scope="module")
def se():
    return tiny_network("se")


def alone(network, wav: np.ndarray) -> np.ndarray:
    """The one-utterance definition: a batch of one, no padding and no mask."""
    return enhance_padded(network, [wav])[0]


def steady(seconds: float) -> np.ndarray:
    """A strictly periodic speech-like signal (125 Hz harmonics, 4096-sample syllables): every window holding whole
    periods has the statistics of the whole signal, so windows should agree with it."""
    t = np.arange(int(seconds * SR))
    voiced = sum(0.8**k * np.sin(2 * np.pi * k * t / 128) for k in range(1, 12))
    return (0.3 * 0.5 * (1 - np.cos(2 * np.pi * t / 4096)) * voiced / np.abs(voiced).max()).astype(np.float32)


def test_batched_equals_one_by_one(se):
    wavs = [speech_like(s, seed=i) for i, s in enumerate((0.3, 1.0, 0.77, 2.0))] + [speech_like(0.1, seed=9)[:512]]
    wavs.append(np.zeros(3000, np.float32))
    got = enhance_batch(se, wavs)
    assert [g.shape for g in got] == [w.shape for w in wavs] and all(g.dtype == np.float32 for g in got)
    for wav, out in zip(wavs[:-1], got[:-1], strict=True):
        np.testing.assert_allclose(out, alone(se, wav), rtol=0, atol=1e-5)
    assert not np.any(got[-1])  # digital silence stays silence
    # batches cut smaller (one utterance each here) give the same outputs
    for small, big in zip(enhance_batch(se, wavs, batch_frames=1), got, strict=True):
        np.testing.assert_allclose(small, big, rtol=0, atol=1e-5)


def test_model_enhance_uses_batches_and_keeps_its_shapes(se):
    model = vqscore.Model(se, name="tiny")
    wavs = [speech_like(s, seed=i) for i, s in enumerate((0.5, 1.2))]
    listed = model.enhance(wavs, sr=SR)
    assert isinstance(listed, list) and [o.shape for o in listed] == [w.shape for w in wavs]
    for wav, out in zip(wavs, listed, strict=True):
        np.testing.assert_allclose(out, alone(se, wav), rtol=0, atol=1e-5)
    rows = np.stack([speech_like(0.5, seed=s) for s in (1, 2, 3, 4)]).reshape(2, 2, -1)
    grid = model.enhance(rows, sr=SR)
    assert grid.shape == rows.shape
    np.testing.assert_allclose(grid[1, 0], alone(se, rows[1, 0]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", [16_000, 33_000, 40_000, 65_537, 70_000, 100_003, 250_000])
def test_window_bounds(n):
    window, overlap = SMALL.window_samples(HOP), SMALL.overlap_samples(HOP)
    assert (window, overlap) == (16_384, 2_048)
    bounds = window_bounds(n, window, overlap, HOP)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (_, stop), (start, _) in pairwise(bounds):
        assert stop - start == overlap  # neighbours overlap by exactly the overlap
    for start, stop in bounds:
        assert start % HOP == 0  # on the whole recording's frame grid
        assert stop - start <= window
        if n > window:
            assert stop - start >= (window + overlap) // 2 - HOP  # no short scraps


def test_windows_are_enhanced_alone_and_cross_faded(se):
    x = speech_like(5.0, seed=4)
    window, overlap = SMALL.window_samples(HOP), SMALL.overlap_samples(HOP)
    bounds = window_bounds(x.shape[0], window, overlap, HOP)
    assert len(bounds) >= 4
    got = enhance_long(se, x, SMALL)
    assert got.shape == x.shape and got.dtype == np.float32
    pieces = [alone(se, x[a:b]) for a, b in bounds]
    rise = fade_in(overlap)
    np.testing.assert_allclose(rise + rise[::-1], 1.0, rtol=0, atol=1e-6)  # complementary weights
    expected = np.zeros_like(x)
    for k, ((a, b), y) in enumerate(zip(bounds, pieces, strict=True)):
        w = np.ones(b - a, np.float32)
        if k > 0:
            w[:overlap] = rise
        if k < len(bounds) - 1:
            w[-overlap:] = rise[::-1]
        expected[a:b] += w * y
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_no_click_at_the_seams(se):
    x = speech_like(6.0, seed=5)
    window, overlap = SMALL.window_samples(HOP), SMALL.overlap_samples(HOP)
    bounds = window_bounds(x.shape[0], window, overlap, HOP)
    got = enhance_long(se, x, SMALL)
    step = np.abs(np.diff(got))
    seams = np.zeros(step.shape[0], bool)
    for (_, stop), (start, _) in pairwise(bounds):
        seams[start - 64 : stop + 64] = True  # each overlap and a little either side
    assert len(bounds) >= 6 and seams.sum() >= (len(bounds) - 1) * overlap
    assert step[seams].max() <= step[~seams].max()


def test_windows_agree_with_the_whole_recording_on_a_steady_signal(se):
    # 4 full windows (8 periods each, starting every 7) and a rest of 13 periods split into two of 7
    x = steady((4 * 7 * 4096 + 13 * 4096) / SR)
    policy = EnhancePolicy(max_whole_s=2.048, window_s=2.048, overlap_s=0.256)
    window, overlap = policy.window_samples(HOP), policy.overlap_samples(HOP)
    assert [b - a for a, b in window_bounds(x.shape[0], window, overlap, HOP)] == [32_768] * 4 + [28_672] * 2
    windowed = enhance_long(se, x, policy)
    whole = alone(se, x)
    inner = slice(4_800, -4_800)  # away from the recording's own edges
    err = windowed[inner] - whole[inner]
    assert np.sqrt(np.mean(err**2)) < 0.02 * np.sqrt(np.mean(whole[inner] ** 2))


def test_stream_is_independent_of_blocks_and_bounded(se):
    x = speech_like(6.0, seed=6)
    reference = enhance_long(se, x, SMALL)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, x.shape[0]), size=40, replace=False))
    blocks = np.split(x, cuts)
    consumed = [0]

    def source():
        for b in blocks:
            consumed[0] += b.shape[0]
            yield b

    window, overlap = SMALL.window_samples(HOP), SMALL.overlap_samples(HOP)
    out, first_after = [], None
    for piece in enhance_stream(se, source(), SMALL):
        first_after = consumed[0] if first_after is None else first_after
        out.append(piece)
    np.testing.assert_allclose(np.concatenate(out), reference, rtol=0, atol=1e-6)
    # output starts once two windows' worth is in: the input is not buffered whole
    assert first_after <= 2 * window - overlap + max(b.shape[0] for b in blocks)


def test_cross_fade_passes_single_windows_through():
    fade = CrossFade(4)
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fade.add(y, last=True), y)


def test_streamed_file_equals_in_memory(se, tmp_path):
    """A file longer than the whole limit is read in blocks and windowed, like the same samples in memory."""
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([speech_like(4.0, sr=22_050, seed=7)] * 2, axis=1), 22_050, subtype="PCM_16")
    model = vqscore.Model(se, name="tiny", enhance_policy=SMALL)
    got = model.enhance(path)
    samples = load_audio(path).samples
    assert got.shape == samples.shape
    np.testing.assert_allclose(got, enhance_long(se, samples, SMALL), rtol=0, atol=1e-5)
    streamed = np.concatenate(list(enhance_stream(se, read_blocks(path, block=5_000), SMALL)))
    np.testing.assert_allclose(streamed, got, rtol=0, atol=1e-6)
    # and it was windowed: enhancing the whole recording at once differs
    assert np.abs(got - alone(se, samples)).max() > 1e-4


def test_policy_is_checked():
    with pytest.raises(ValueError, match="less than half the window"):
        EnhancePolicy(window_s=1.0, overlap_s=0.5)
    with pytest.raises(ValueError, match="must be positive"):
        EnhancePolicy(max_whole_s=0)


def test_default_se_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [])
    message = (
        "no SE model is shipped in pretrained/ (default-se: no vqscore-se-cleanspeech bundle; searched: no pretrained "
        "directory exists); pass model= (--model) an SE bundle JSON or an official SE checkpoint path"
    )
    with pytest.raises(BundleError) as info:
        find_shipped("default-se")
    assert str(info.value) == message
    with pytest.raises(BundleError) as info:
        vqscore.enhance(speech_like(1.0), sr=SR, model="default-se")
    assert str(info.value) == message


def test_default_se_is_the_newest_cleanspeech_enhancer(tmp_path, monkeypatch):
    directory = tmp_path / "pretrained"
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [directory])
    qe = save_bundle(tiny_network("qe"), directory, name="tiny-qe", version="9.0.0")
    save_bundle(tiny_network("se"), directory, name="other-se", version="9.0.0")
    with pytest.raises(BundleError, match="searched: .*pretrained"):
        find_shipped("default-se")  # another enhancer is not the default
    save_bundle(tiny_network("se"), directory, name="vqscore-se-cleanspeech", version="1.0.0", json_name="se-1.json")
    newest = save_bundle(
        tiny_network("se", seed=1), directory, name="vqscore-se-cleanspeech", version="1.1.0", json_name="se-2.json"
    )
    assert find_shipped("default-se").path == newest
    assert find_shipped("default").path == qe
    model = vqscore.load("default-se")
    assert (model.kind, model.info.version) == ("se", "1.1.0")


def mask_network(exponent: float = 1.0):
    """The tiny SE network with mask resynthesis (same weights)."""
    import dataclasses

    plain = tiny_network("se")
    network = build_model(dataclasses.replace(plain.config, resynthesis="mask", mask_exponent=exponent))
    network.load_state_dict(plain.state_dict())
    return network.eval()


def test_mask_resynthesis_is_a_bounded_gain_on_the_noisy_stft():
    from vqscore.enhance import resynthesize
    from vqscore.features import batch_spectrum

    network = mask_network(exponent=0.5)
    x = torch.from_numpy(speech_like(1.0, seed=3))
    spec, _ = batch_spectrum([x], network.features)
    analysis = torch.expm1(spec)
    # a decoder that returns the input (or more) leaves it unchanged: the gain is capped at 1
    for magnitude in (analysis, 3 * analysis):
        np.testing.assert_allclose(resynthesize(magnitude, x[None], network, analysis)[0], x, rtol=0, atol=1e-5)
    # a quarter of the input's magnitude, with exponent 0.5: half the waveform
    np.testing.assert_allclose(resynthesize(analysis / 4, x[None], network, analysis)[0], x / 2, rtol=0, atol=1e-5)
    assert not resynthesize(0 * analysis, x[None], network, analysis).any()
    with pytest.raises(ValueError, match="mask resynthesis needs the analysis magnitude"):
        resynthesize(analysis, x[None], network)


def test_mask_resynthesis_batches_like_one_by_one_and_round_trips_a_bundle(tmp_path):
    network = mask_network()
    wavs = [speech_like(s, seed=i) for i, s in enumerate((0.4, 1.3))]
    for out, wav in zip(enhance_batch(network, wavs), wavs, strict=True):
        np.testing.assert_allclose(out, alone(network, wav), rtol=0, atol=1e-5)
    loaded, _ = load_bundle(save_bundle(network, tmp_path, name="mask-se", version="1.0.0"))
    assert (loaded.config.resynthesis, loaded.config.mask_exponent) == ("mask", 1.0)
    np.testing.assert_allclose(enhance_batch(loaded, wavs[:1])[0], enhance_batch(network, wavs[:1])[0], rtol=0, atol=1e-6)


def test_unknown_resynthesis_is_refused():
    with pytest.raises(ValueError, match=r"unknown resynthesis 'phase'; expected one of \('decoder', 'mask'\)"):
        SEConfig(resynthesis="phase")
