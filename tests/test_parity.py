"""Exact parity with the official VQScore code (../shared/reference): scores, arrays, ties, checkpoint import."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import assert_close_to_reference, reference_atol

import vqscore
from vqscore.audio import load_audio
from vqscore.features import batch_spectrum, spectrum
from vqscore.models import QEConfig, SEConfig, build_model
from vqscore.official import OfficialCheckpointError, convert_state, infer_config, load_official, read_official_state

KINDS = ("qe", "se")
FILES = ("clean_p232_005", "noisy_p232_005")
SCORE_KEYS = ("cos_z", "l2_z", "cos_x", "l2_x")


def forward_arrays(model: vqscore.Model, wav_path):
    """X, z, zq, indices, Xhat of one file, [T, D] each, through the library's public pieces."""
    samples = torch.from_numpy(load_audio(wav_path).samples)
    network = model.network
    with torch.inference_mode():
        X = spectrum(samples[None], network.features)
        z = network.encode(X)
        q = network.quantize(z, update=False)
        Xhat = network.decode(q.zq)
    return {
        "X": X[0].numpy(),
        "z": z[0].numpy(),
        "zq": q.zq[0].numpy(),
        "indices": q.indices[0].numpy(),
        "Xhat": Xhat[0].numpy(),
    }


@pytest.fixture(scope="module")
def models(reference_dir):
    return {kind: vqscore.load(reference_dir / f"{kind}_seed0.pkl") for kind in KINDS}


@pytest.mark.parametrize("fname", FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_scores_match_official(models, reference_dir, expected, kind, fname):
    score = models[kind].score(reference_dir / f"{fname}.wav")
    want = expected["models"][kind]["files"][f"{fname}.wav"]
    for key in SCORE_KEYS:
        assert getattr(score, key) == pytest.approx(want[f"VQScore_{key}"], abs=1e-5), key
    assert len(score.frames) == want["num_frames"]
    assert float(np.mean(score.frames)) == pytest.approx(want["VQScore_cos_z"], abs=1e-5)


def test_load_and_score_official_entry_points(reference_dir, expected):
    """vqscore.load(path).score(path) and the module-level vqscore.score(path, model=path) agree with the reference."""
    want = expected["models"]["qe"]["files"]["noisy_p232_005.wav"]["VQScore_cos_z"]
    assert want == pytest.approx(0.8300763, abs=1e-7)
    value = vqscore.score(reference_dir / "noisy_p232_005.wav", model=reference_dir / "qe_seed0.pkl")
    assert isinstance(value, float)
    assert value == pytest.approx(want, abs=1e-5)


def near_tie_flips(got: np.ndarray, ref: np.ndarray, ref_z: np.ndarray, codebook: np.ndarray, distance: str, z_atol: float):
    """Frames whose codebook index differs from the reference's; asserts each one is a near-tie.

    With z only known to within `z_atol` per element (reordering), ||dz|| <= sqrt(D) z_atol, so a frame's similarity to
    any codeword moves by at most 2 ||dz|| / ||z|| (cosine, unit codewords) or ||dz|| (negative Euclidean distance).
    The argmax can only swap two codewords whose reference similarities are within twice that: anything else must
    match exactly. Identical codewords are never a near-tie: their exact tie goes to the lowest index on any CPU.
    """
    flips = np.flatnonzero(got != ref)
    z = ref_z.astype(np.float64)
    cb = codebook.astype(np.float64)
    slack = np.sqrt(z.shape[1]) * z_atol
    for t in flips:
        a, b = int(ref[t]), int(got[t])
        assert not np.array_equal(codebook[a], codebook[b]), f"frame {t}: {b} instead of the identical, lower {a}"
        if distance == "cosine":
            unit = z[t] / np.linalg.norm(z[t])
            sims = [unit @ (cb[i] / max(np.linalg.norm(cb[i]), 1e-12)) for i in (a, b)]
            tau = 2 * 2 * slack / np.linalg.norm(z[t])
        else:
            sims = [-np.linalg.norm(z[t] - cb[i]) for i in (a, b)]
            tau = 2 * slack
        gap = sims[0] - sims[1]
        assert gap <= tau, f"frame {t}: index {b} instead of {a}, but the reference gap {gap:.3g} > {tau:.3g}"
        print(f"near-tie at frame {t}: {a} -> {b}, reference gap {gap:.3g} (tau {tau:.3g})")
    return flips


@pytest.mark.parametrize("fname", FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_arrays_match_official(models, reference_dir, ref_arrays, expected, kind, fname):
    """X, z and Xhat up to float32 reordering (helpers.REORDER_ULPS says what was measured on which CPU);
    indices and zq exactly, except at near-ties of z between two different codewords."""
    network = models[kind].network
    got = forward_arrays(models[kind], reference_dir / f"{fname}.wav")
    ref = {key: ref_arrays[f"{kind}/{fname}/{key}"] for key in ("X", "z", "zq", "indices", "Xhat")}
    for key in ("X", "z"):
        assert_close_to_reference(got[key], ref[key], key)

    # Indices: exact wherever the assignment is unambiguous. Seen here (Intel AVX-512): QE clean frame 367 takes
    # codeword 1952 instead of 225, reference gap 1.3e-15; the two are k-means copies of one frame, 3e-8 apart.
    codebook = network.quantizer.codebook.numpy()
    flips = near_tie_flips(
        got["indices"], ref["indices"], ref["z"], codebook, network.quantizer.distance, reference_atol(ref["z"], "z")
    )
    assert len(flips) <= 0.01 * len(ref["indices"]), f"{len(flips)} near-tie flips: {flips.tolist()}"
    want = expected["models"][kind]["files"][f"{fname}.wav"]
    assert ref["indices"][:20].tolist() == want["indices_first20"]
    assert len(np.unique(ref["indices"])) == want["num_distinct_indices"]
    assert abs(len(np.unique(got["indices"])) - want["num_distinct_indices"]) <= len(flips)

    # zq is a lookup into the same stored codebook, no arithmetic: exact, frame by frame, on both sides.
    np.testing.assert_array_equal(got["zq"], codebook[got["indices"]])
    np.testing.assert_array_equal(ref["zq"], codebook[ref["indices"]])
    same = got["indices"] == ref["indices"]
    np.testing.assert_array_equal(got["zq"][same], ref["zq"][same])

    # Xhat: the decoder run on the reference zq, i.e. our own zq with any near-tie frame given the reference's
    # codeword, so that a legitimate flip between two different codewords cannot move it.
    with torch.inference_mode():
        Xhat = network.decode(torch.from_numpy(ref["zq"])[None])[0].numpy()
    assert_close_to_reference(Xhat, ref["Xhat"], "Xhat")
    if len(flips) == 0:
        np.testing.assert_array_equal(got["Xhat"], Xhat)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_spectrum_equals_official_input(models, reference_dir, ref_arrays, kind):
    """The scoring path's padded-batch STFT gives the same X as the official centred reflect-padded STFT."""
    features = models[kind].network.features
    clean = torch.from_numpy(load_audio(reference_dir / "clean_p232_005.wav").samples)
    noisy = torch.from_numpy(load_audio(reference_dir / "noisy_p232_005.wav").samples)
    short = noisy[:20_000]
    spec, frames = batch_spectrum([short, clean, noisy], features)
    assert frames.tolist() == [1 + 20_000 // features.hop_length] + [1 + 99946 // features.hop_length] * 2
    assert_close_to_reference(spec[1].numpy(), ref_arrays[f"{kind}/clean_p232_005/X"], "X")
    assert_close_to_reference(spec[2].numpy(), ref_arrays[f"{kind}/noisy_p232_005/X"], "X")
    n = int(frames[0])
    np.testing.assert_allclose(spec[0, :n].numpy(), spectrum(short[None], features)[0].numpy(), rtol=0, atol=1e-6)
    assert torch.all(spec[0, n:] == 0)


@pytest.mark.parametrize("fname", FILES)
def test_enhance_matches_official(models, reference_dir, ref_arrays, fname):
    out = models["se"].enhance(reference_dir / f"{fname}.wav")
    ref = ref_arrays[f"se/{fname}/enhanced"]
    assert out.dtype == np.float32
    assert out.shape == ref.shape == (99946,)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
    # the reference wav written by the official code, compared by samples
    if fname == "noisy_p232_005" and (reference_dir / "enhanced_noisy_p232_005.wav").is_file():
        written, sr = sf.read(reference_dir / "enhanced_noisy_p232_005.wav", dtype="float32")
        assert sr == 16000
        np.testing.assert_allclose(out, written, rtol=0, atol=1e-4)


def test_enhance_list_and_module_function(models, reference_dir, ref_arrays):
    path = reference_dir / "noisy_p232_005.wav"
    outs = vqscore.enhance([path, path], model=models["se"])
    assert isinstance(outs, list) and len(outs) == 2
    for out in outs:
        np.testing.assert_allclose(out, ref_arrays["se/noisy_p232_005/enhanced"], rtol=0, atol=1e-4)


def test_se_noisy_tie_goes_to_lowest_zero_codeword(models, reference_dir, expected):
    network = models["se"].network
    codebook = network.quantizer.codebook
    zero_rows = torch.nonzero(codebook.norm(dim=1) == 0).flatten()
    assert len(zero_rows) == expected["models"]["se"]["codebook"]["num_zero_codewords"] == 3315
    assert int(zero_rows[0]) == 37
    got = forward_arrays(models["se"], reference_dir / "noisy_p232_005.wav")
    at_zero = np.linalg.norm(got["zq"], axis=1) == 0
    assert int(at_zero.sum()) == 33
    assert set(got["indices"][at_zero].tolist()) == {37}
    assert int((got["indices"] == 37).sum()) == 33


@pytest.mark.parametrize("kind", KINDS)
def test_codebook_matches_official_summary(models, expected, kind):
    q = models[kind].network.quantizer
    summary = expected["models"][kind]["codebook"]
    assert bool(q.initialized)
    assert int((q.codebook.norm(dim=1) == 0).sum()) == summary["num_zero_codewords"]
    assert float(q.cluster_size.sum()) == pytest.approx(summary["cluster_size_sum"], abs=1e-3)
    np.testing.assert_allclose(q.codebook[:3, :5].numpy(), np.array(summary["embed_first3x5"]), rtol=0, atol=1e-6)
    lo, hi = summary["codeword_norm_min_max"]
    norms = q.codebook.norm(dim=1)
    assert float(norms.min()) == pytest.approx(lo, abs=1e-6)
    assert float(norms.max()) == pytest.approx(hi, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_official_state_dict_maps_completely(reference_dir, expected, kind):
    path = reference_dir / f"{kind}_seed0.pkl"
    state = read_official_state(path)
    want_keys = expected["models"][kind]["state_dict_keys"]
    assert {k: list(v.shape) for k, v in state.items()} == want_keys

    config = infer_config(state)
    assert config.kind == kind
    assert config == (QEConfig() if kind == "qe" else SEConfig())

    converted = convert_state(state)
    assert len(converted) == len(state)
    network = build_model(config)
    assert set(converted) == set(network.state_dict())
    result = network.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in network.state_dict().items():
        assert torch.equal(value, converted[key]), key
    assert network.quantizer.codebook.shape == ((2048, 32) if kind == "qe" else (4096, 128))
    assert network.quantizer.initialized.dtype == torch.bool and network.quantizer.initialized.shape == ()

    loaded_config, loaded_state = load_official(path)
    assert loaded_config == config and set(loaded_state) == set(converted)
    assert vqscore.load(path).kind == kind


def test_parameter_counts_match_method(models):
    """METHOD.md section 1: QE encoder 452,928 (+ codebook 2048x32), whole VQ-VAE 906,081 trainable parameters."""
    network = models["qe"].network
    assert network.num_parameters("encoder") == 452_928
    assert sum(p.numel() for p in network.parameters()) == 906_081
    # num_parameters() also counts the codebook buffer (2048 x 32)
    assert network.num_parameters() == 906_081 + 2048 * 32
    assert network.num_parameters("quantizer") == 2048 * 32


def test_not_a_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "bogus.pkl"
    bogus.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(OfficialCheckpointError, match=r"bogus\.pkl: not a readable official VQScore checkpoint"):
        vqscore.load(bogus)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(OfficialCheckpointError, match=r"no \['model'\]\['VQVAE'\] state_dict"):
        vqscore.load(other)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        vqscore.load(tmp_path / "missing.pkl")
