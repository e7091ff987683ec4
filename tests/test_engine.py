"""The fast engine's pieces agree with the plain definitions: quantizer, spectra, masked norms, encoder, pipeline."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from helpers import SR, speech_like

from vqscore.audio import load_audio
from vqscore.corpus import default_workers, plan_tasks, score_paths_in_order
from vqscore.engine import (
    Engine,
    _first_argmax,
    _masked_instance_norm_,
    configure_threads,
    physical_cores,
    plan_batches,
    spectra_batch,
    utterance_spectrum,
)
from vqscore.features import QE_FEATURES, SE_FEATURES, batch_spectrum
from vqscore.longform import LongformPolicy
from vqscore.nn import masked_instance_norm
from vqscore.scoring import engine_for, score_utterances


@pytest.mark.parametrize("shape", [(300, 2048), (7, 2048), (50, 64), (20, 1000), (33, 512)])
def test_first_argmax_is_argmax_with_ties_to_the_lowest_index(shape):
    g = torch.Generator().manual_seed(shape[0])
    for _ in range(20):
        sims = torch.randint(-3, 4, shape, generator=g).float()  # many exact ties
        assert torch.equal(_first_argmax(sims), sims.argmax(dim=-1))
    sims = torch.randn(shape, generator=g)
    assert torch.equal(_first_argmax(sims), sims.argmax(dim=-1))


def test_nearest_equals_the_quantizer_with_ties(ref_qe):
    """Chunked GEMM + two-level argmax give the quantizer's codes, ties included: duplicated codewords and
    all-zero codewords (the reference codebook has 1656), which win for frames whose similarities are all < 0."""
    network = copy.deepcopy(ref_qe.network)
    g = torch.Generator().manual_seed(0)
    codebook = torch.zeros(2048, 32)
    positive = F.normalize(torch.rand(300, 32, generator=g) + 0.1, dim=-1)
    codebook[100:400] = positive
    codebook[1000:1300] = positive  # exact duplicates: the lower index must win
    with torch.no_grad():
        network.quantizer.codebook.copy_(codebook)
    engine = Engine(network)
    z = torch.randn(3 * engine.quant_chunk + 17, 32, generator=g)
    z[:50] = -(torch.rand(50, 32, generator=g) + 0.1)  # every similarity with a non-zero codeword < 0
    want = network.quantizer.nearest(z[None])[0]
    got = engine.nearest(z)
    assert torch.equal(got, want)
    assert (want[:50] == 0).all()  # the first zero codeword
    assert not ((want >= 400) & (want < 2048)).any()  # never a later duplicate or a later zero codeword
    assert ((want[50:] >= 100) & (want[50:] < 400)).any()


@pytest.mark.parametrize("features", [QE_FEATURES, SE_FEATURES], ids=["qe", "se"])
def test_spectra_batch_is_bit_identical_to_the_padded_batch_stft(features):
    wavs = [torch.from_numpy(speech_like(n / SR, seed=i)[:n]) for i, n in enumerate((16_000, 5_000, 777, 16_256))]
    want, frames = batch_spectrum(wavs, features)
    batch = spectra_batch(wavs, features, normalize=False, keep_raw=True)
    assert batch.frames == frames.tolist()
    assert torch.equal(batch.spec.transpose(1, 2), want)  # zero tails included
    assert batch.raw is batch.spec
    shared = spectra_batch(wavs, features, normalize=True, keep_raw=True, shared=True)
    assert shared.spec.is_shared() and torch.equal(shared.raw, batch.spec)
    for i, n in enumerate(frames.tolist()):
        one = utterance_spectrum(wavs[i], features)
        assert torch.equal(one, want[i, :n].T)
        assert torch.equal(shared.spec[i, :, :n], F.instance_norm(one[None], eps=1e-5)[0])
        assert not shared.spec[i, :, n:].any()


def test_masked_norm_equals_the_module_norm():
    g = torch.Generator().manual_seed(1)
    frames = torch.tensor([50, 17, 3, 50])
    y = torch.randn(4, 12, 50, generator=g) * 3 + 2
    mask = (torch.arange(50)[None, :] < frames[:, None]).float()[:, None, :]
    want = masked_instance_norm(y * mask, mask) * mask
    got = _masked_instance_norm_(y.clone(), mask, frames.float()[:, None, None])
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)
    assert not got[1, :, 17:].any()


def test_engine_encoder_equals_the_module_encoder(ref_qe, reference_dir):
    noisy = load_audio(reference_dir / "noisy_p232_005.wav").samples
    wavs = [noisy, noisy[:5_000], noisy[20_000:33_333]]
    network = ref_qe.network
    engine = Engine(network)
    batch = engine.prepare(wavs, keep_raw=True)
    with torch.inference_mode():
        z = engine.encode(batch)
        for i, w in enumerate(wavs):
            n = batch.frames[i]
            alone = network.encode(batch_spectrum([torch.from_numpy(w)], network.features)[0])[0]  # (T, D)
            torch.testing.assert_close(z[i, :, :n].T, alone, atol=2e-5, rtol=0)
            assert not z[i, :, n:].any()


def test_engine_cache_follows_codebook_and_device(tiny_qe):
    network = tiny_qe.network
    first = engine_for(network)
    assert engine_for(network) is first
    with torch.no_grad():
        network.quantizer.codebook.mul_(1.0)  # an in-place update (as EMA training does)
    assert engine_for(network) is not first


def test_model_loaded_under_inference_mode_scores(tmp_path, tiny_qe):
    from vqscore.api import load
    from vqscore.bundle import save_bundle

    bundle = save_bundle(tiny_qe.network, tmp_path, name="tiny-qe", version="0.0.1")
    x = speech_like(1.0)
    with torch.inference_mode():  # its weights are inference tensors, which have no version counter
        model = load(bundle)
        got = model.vqscore(x, sr=SR)
    assert got == pytest.approx(tiny_qe.vqscore(x, sr=SR), abs=1e-6)
    assert model.vqscore(x, sr=SR) == got


def test_plans_cover_every_utterance_once():
    lengths = [int(x) for x in np.random.default_rng(0).integers(512, 400_000, 300)]
    batches = plan_batches(lengths, 256, 8192)
    assert sorted(i for b in batches for i in b) == list(range(300))
    for b in batches:
        assert len(b) == 1 or len(b) * max(1 + lengths[i] // 256 for i in b) <= 8192
    tasks = plan_tasks(lengths + [None], [f"f{i}" for i in range(301)], 256, 8192, LongformPolicy(max_whole_s=20.0))
    named = [p for t in tasks for p in t.paths]
    assert sorted(named) == sorted(f"f{i}" for i in range(301))
    assert {t.paths[0] for t in tasks if t.long} == {f"f{i}" for i, n in enumerate(lengths) if n > 19 * SR}


def test_threads():
    assert physical_cores() >= 1
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert default_workers(torch.device("cpu")) >= 1


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, (seconds, sr, channels) in enumerate(
        [(1.0, SR, 1), (0.5, 44_100, 2), (2.3, 22_050, 1), (0.04, SR, 1), (1.7, SR, 1)]
    ):
        x = speech_like(seconds, sr=sr, seed=i)
        if channels > 1:
            x = np.stack([x, 0.5 * x], axis=1)
        path = tmp_path / f"f{i}.wav"
        sf.write(path, x, sr)
        paths.append(str(path))
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not really" * 10)
    return paths + [str(silent), str(broken), str(tmp_path / "missing.flac")]


@pytest.mark.parametrize("workers, lanes", [(0, 1), (1, 2), (2, 1)])
def test_pipeline_equals_api(tiny_qe, files, workers, lanes):
    results = score_paths_in_order(tiny_qe.network, files, num_workers=workers, lanes=lanes, batch_frames=200)
    assert [r.path for r in results] == files
    for path, r in zip(files, results, strict=True):
        try:
            want = tiny_qe.score(path)
        except ValueError as exc:
            assert r.error == str(exc) and r.score is None
            continue
        assert r.error == ""
        audio = load_audio(path)
        assert (r.duration_s, r.sample_rate, r.channels) == (audio.duration_s, audio.source_rate, audio.source_channels)
        if np.isnan(want.cos_z):
            assert np.isnan(r.score.cos_z) and np.isnan(r.score.frames).all()
            continue
        assert r.score.cos_z == pytest.approx(want.cos_z, abs=1e-5) and r.score.l2_z == pytest.approx(want.l2_z, abs=1e-5)
        np.testing.assert_allclose(r.score.frames, want.frames, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(r.score.frame_times, want.frame_times)
        assert np.isnan(r.score.cos_x)  # encoder + codebook only


def test_pipeline_with_decoder(tiny_qe, files):
    results = score_paths_in_order(tiny_qe.network, files[:3], num_workers=0, with_decoder=True)
    for path, r in zip(files[:3], results, strict=True):
        want = tiny_qe.score(path)
        assert r.score.cos_x == pytest.approx(want.cos_x, abs=1e-5) and r.score.l2_x == pytest.approx(want.l2_x, abs=1e-5)


def test_se_model_takes_the_generic_path(tiny_se):
    wavs = [speech_like(n / SR, seed=n)[:n] for n in (3_000, 9_000)]
    assert not Engine(tiny_se.network).fast
    batched = score_utterances(tiny_se.network, wavs)
    for w, b in zip(wavs, batched, strict=True):
        assert b.cos_z == pytest.approx(tiny_se.score(w, sr=SR).cos_z, abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(ref_qe, reference_dir, tmp_path):
    paths = [str(reference_dir / "noisy_p232_005.wav"), str(reference_dir / "clean_p232_005.wav")]
    cpu = score_paths_in_order(ref_qe.network, paths, num_workers=1)
    gpu_network = copy.deepcopy(ref_qe.network).to("cuda")
    gpu = score_paths_in_order(gpu_network, paths, num_workers=1)
    for a, b in zip(cpu, gpu, strict=True):
        assert b.score.cos_z == pytest.approx(a.score.cos_z, abs=1e-4)
    from vqscore.cli import main

    out = tmp_path / "gpu.csv"
    assert main(["score", *paths, "-o", str(out), "--model", str(reference_dir / "qe_seed0.pkl"), "--device", "cuda"]) == 0


def test_scoring_leaves_the_train_mode_alone(tiny_qe):
    """A training loop scores its model during validation (recipes/qe): scoring must not switch it to eval."""
    network = tiny_qe.network.train()
    try:
        score_utterances(network, [speech_like(0.5, seed=2)], with_decoder=False)
        assert network.training
    finally:
        network.eval()
