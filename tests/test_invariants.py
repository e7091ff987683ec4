"""Properties every score must have: batching does not matter, nor the input's rate, layout or sample type."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from helpers import SR, speech_like

import vqscore
from vqscore.audio import load_audio
from vqscore.scoring import score_batch, score_utterances

SCORE_KEYS = ("cos_z", "l2_z", "cos_x", "l2_x")
# very different lengths, unsorted, including the 512-sample minimum and lengths that are not multiples of the hop
LENGTHS = (SR * 3 + 37, 512, 5_000, 777, SR, 2 * SR + 255, 1_300)


def utterances(lengths=LENGTHS):
    return [speech_like(n / SR, seed=i, f0=100 + 15 * i)[:n] for i, n in enumerate(lengths)]


def assert_same_scores(batched, singles, tol=1e-5):
    assert len(batched) == len(singles)
    for i, (b, s) in enumerate(zip(batched, singles, strict=True)):
        for key in SCORE_KEYS:
            assert np.isfinite(getattr(s, key)), (i, key)
            assert getattr(b, key) == pytest.approx(getattr(s, key), abs=tol), (i, key)
        assert b.frames.shape == s.frames.shape, i
        np.testing.assert_allclose(b.frames, s.frames, rtol=0, atol=tol, err_msg=f"utterance {i}")
        np.testing.assert_array_equal(b.frame_times, s.frame_times)


@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_batched_equals_one_by_one_tiny(request, which):
    model = request.getfixturevalue(which)
    wavs = utterances()
    singles = [model.score(w, sr=SR) for w in wavs]
    # Model.score on a list (length-sorted batching inside)
    assert_same_scores(model.score(wavs, sr=SR), singles)
    # one forward pass over all of them, padded to the longest
    assert_same_scores(score_batch(model.network, wavs), singles)
    # a tiny frame budget forces several batches; results stay in input order
    assert_same_scores(score_utterances(model.network, wavs, max_batch_frames=400), singles)
    # a batch of equal lengths (no padding mask at all) agrees too
    same = [speech_like(1.0, seed=s) for s in range(3)]
    assert_same_scores(score_batch(model.network, same), [model.score(w, sr=SR) for w in same])


def test_batched_equals_one_by_one_reference_qe(ref_qe, reference_dir):
    noisy = load_audio(reference_dir / "noisy_p232_005.wav").samples
    clean = load_audio(reference_dir / "clean_p232_005.wav").samples
    wavs = [noisy, clean[:600], noisy[10_000:13_001], clean, noisy[:40_000], speech_like(0.5, seed=3)]
    singles = [ref_qe.score(w, sr=SR) for w in wavs]
    assert_same_scores(ref_qe.score(wavs, sr=SR), singles)
    assert_same_scores(score_batch(ref_qe.network, wavs), singles)


def test_batched_equals_one_by_one_reference_se(ref_se, reference_dir):
    noisy = load_audio(reference_dir / "noisy_p232_005.wav").samples
    clean = load_audio(reference_dir / "clean_p232_005.wav").samples
    wavs = [noisy[:30_000], clean[20_000:21_000], noisy[50_000:58_001]]
    singles = [ref_se.score(w, sr=SR) for w in wavs]
    assert_same_scores(ref_se.score(wavs, sr=SR), singles)


def test_padding_would_matter_without_masks(ref_qe, reference_dir):
    """The check above is meaningful: the noisy file's first 40000 samples score differently from the whole file
    (InstanceNorm statistics span the utterance), so a batch that leaked padding would be caught."""
    noisy = load_audio(reference_dir / "noisy_p232_005.wav").samples
    whole, part = ref_qe.score([noisy, noisy[:40_000]], sr=SR)
    assert abs(whole.cos_z - part.cos_z) > 1e-3


def test_44k_stereo_file_scores_like_16k_mono(ref_qe, reference_dir, tmp_path):
    original = reference_dir / "noisy_p232_005.wav"
    mono, sr = sf.read(original, dtype="float32")
    assert sr == SR and mono.ndim == 1
    up = soxr.resample(mono, SR, 44_100, quality="VHQ")
    stereo = np.stack([0.9 * up, 1.1 * up], axis=1).astype(np.float32)
    path = tmp_path / "stereo44k.wav"
    sf.write(path, stereo, 44_100, subtype="FLOAT")

    base = ref_qe.score(original)
    got = ref_qe.score(path)
    assert got.cos_z == pytest.approx(base.cos_z, abs=0.01)
    assert got.l2_z == pytest.approx(base.l2_z, abs=0.01)
    assert len(got.frames) == len(base.frames) == 391
    # the file path and the same samples given as an array agree exactly
    from_array = ref_qe.score(stereo, sr=44_100, channel_axis=-1)
    assert from_array.cos_z == got.cos_z
    audio = load_audio(path)
    assert (audio.source_rate, audio.source_channels) == (44_100, 2)
    assert abs(audio.samples.shape[0] - mono.shape[0]) <= 1


@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_integer_input_equals_float_input(request, which):
    model = request.getfixturevalue(which)
    pcm16 = np.round(speech_like(1.2, seed=5) * 32767).astype(np.int16)
    as_float = pcm16.astype(np.float32) / 32768.0
    want = model.score(as_float, sr=SR)
    got16 = model.score(pcm16, sr=SR)
    got32 = model.score(pcm16.astype(np.int32) << 16, sr=SR)
    for got in (got16, got32):
        for key in SCORE_KEYS:
            assert getattr(got, key) == getattr(want, key), key
        np.testing.assert_array_equal(got.frames, want.frames)
    # a uint8 signal is centred on 128
    u8 = (np.round(as_float * 127) + 128).astype(np.uint8)
    assert model.score(u8, sr=SR).cos_z == model.score((u8.astype(np.float32) - 128) / 128, sr=SR).cos_z


def test_int16_file_equals_int16_array(ref_qe, reference_dir):
    path = reference_dir / "noisy_p232_005.wav"
    pcm, sr = sf.read(path, dtype="int16")
    assert pcm.dtype == np.int16
    assert ref_qe.score(pcm, sr=sr).cos_z == ref_qe.score(path).cos_z


@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_channel_layout_does_not_matter(request, which):
    model = request.getfixturevalue(which)
    left, right = speech_like(1.0, seed=1), 0.7 * speech_like(1.0, seed=2)
    channels_first = np.stack([left, right])  # (2, samples)
    channels_last = np.ascontiguousarray(channels_first.T)  # (samples, 2)
    a = model.score(channels_first, sr=SR, channel_axis=0)
    b = model.score(channels_last, sr=SR, channel_axis=-1)
    mono = model.score(((left.astype(np.float64) + right) / 2).astype(np.float32), sr=SR)
    for key in SCORE_KEYS:
        assert getattr(a, key) == getattr(b, key) == getattr(mono, key), key
    # a torch tensor is the same as the array
    assert model.score(torch.from_numpy(channels_first), sr=SR, channel_axis=0).cos_z == a.cos_z
    # channels inside a batch: (batch, channels, samples)
    batch = np.stack([channels_first, channels_first[::-1]])
    got = model.vqscore(batch, sr=SR, channel_axis=1)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, [a.cos_z, a.cos_z], rtol=0, atol=1e-5)  # batched: within the batching bound


@pytest.mark.parametrize("as_tensor", [False, True])
def test_leading_axes_are_a_batch(tiny_qe, as_tensor):
    """(batch, samples) gives one score per row, like torchmetrics' functional metrics; (a, b, samples) gives (a, b)."""
    rows = np.stack([speech_like(1.0, seed=s) * g for s, g in ((1, 1.0), (2, 0.5), (3, 0.8), (4, 0.3))]).astype(np.float32)
    one_by_one = [tiny_qe.vqscore(r, sr=SR) for r in rows]
    batch = torch.from_numpy(rows) if as_tensor else rows
    got = vqscore.score(batch, sr=SR, model=tiny_qe)
    assert isinstance(got, np.ndarray) and got.shape == (4,)
    np.testing.assert_allclose(got, one_by_one, rtol=0, atol=1e-5)
    assert abs(got[0] - got[1]) > 1e-4  # rows are not averaged into one
    grid = tiny_qe.vqscore(rows.reshape(2, 2, -1), sr=SR)
    assert grid.shape == (2, 2)
    np.testing.assert_allclose(grid.ravel(), got, rtol=0, atol=1e-5)
    scores = tiny_qe.score(rows.reshape(2, 2, -1), sr=SR)
    assert [[type(s).__name__ for s in row] for row in scores] == [["Score", "Score"], ["Score", "Score"]]
    assert scores[1][0].cos_z == pytest.approx(got[2], abs=1e-5)
    assert tiny_qe.vqscore(rows[:1], sr=SR).shape == (1,)  # (1, samples) is a batch of one
    assert isinstance(tiny_qe.vqscore(rows[0], sr=SR), float)


def test_batched_enhance_keeps_the_leading_axes(tiny_se):
    rows = np.stack([speech_like(0.5, seed=s) for s in (1, 2)]).astype(np.float32)
    out = tiny_se.enhance(rows, sr=SR)
    assert out.shape == rows.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[1], tiny_se.enhance(rows[1], sr=SR), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [512, 1_000, 16_000, 16_001, 16_255, 16_256])
@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_frames_and_frame_times(request, which, n):
    model = request.getfixturevalue(which)
    hop = model.network.features.hop_length
    assert hop == (256 if which == "tiny_qe" else 128)
    score = model.score(speech_like(1.1, seed=0)[:n], sr=SR)
    assert len(score.frames) == 1 + n // hop
    np.testing.assert_allclose(score.frame_times, np.arange(1 + n // hop) * hop / 16000, rtol=0, atol=1e-12)
    assert score.frame_times.dtype == np.float64
    assert float(np.mean(score.frames.astype(np.float64))) == pytest.approx(score.cos_z, abs=1e-6)
    assert np.all(score.frames <= 1 + 1e-6) and np.all(score.frames >= -1 - 1e-6)


@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_vqscore_equals_score_cos_z(request, which):
    model = request.getfixturevalue(which)
    wavs = utterances((SR, 3_000, SR * 2 + 5))
    full = model.score(wavs, sr=SR)
    fast = model.vqscore(wavs, sr=SR)
    assert isinstance(fast, list) and len(fast) == 3
    for f, s in zip(fast, full, strict=True):
        assert isinstance(f, float)
        assert f == pytest.approx(s.cos_z, abs=1e-7)
    single = model.vqscore(wavs[0], sr=SR)
    assert isinstance(single, float) and single == pytest.approx(full[0].cos_z, abs=1e-6)
    # without the decoder the x-scores are not computed
    no_decoder = score_utterances(model.network, wavs[:1], with_decoder=False)[0]
    assert np.isnan(no_decoder.cos_x) and np.isnan(no_decoder.l2_x)
    assert no_decoder.cos_z == pytest.approx(full[0].cos_z, abs=1e-6)


def test_module_score_returns_list_for_list(tiny_qe, make_wav):
    paths = [make_wav(f"u{i}.wav", seconds=0.5 + 0.3 * i, seed=i) for i in range(3)]
    values = vqscore.score(paths, model=tiny_qe)
    assert isinstance(values, list) and len(values) == 3
    assert all(isinstance(v, float) for v in values)
    singles = [tiny_qe.vqscore(p) for p in paths]
    assert values == pytest.approx(singles, abs=1e-6)
    assert vqscore.score(tuple(paths), model=tiny_qe) == values
    one = vqscore.score(paths[1], model=tiny_qe)
    assert isinstance(one, float) and one == singles[1]
    as_dict = tiny_qe.score(paths[0]).as_dict()
    assert list(as_dict) == ["cos_z", "l2_z", "cos_x", "l2_x"] and as_dict["cos_z"] == pytest.approx(singles[0], abs=1e-7)
