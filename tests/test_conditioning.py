"""Input conditioning: "paper" scores the waveform as given (official parity); "robust" makes the score level- and
digital-silence-invariant, through the API and the command line alike, with frame times still in the input's time."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import SR, read_rows, speech_like, tiny_network

import vqscore
from vqscore.bundle import save_bundle
from vqscore.cli import main
from vqscore.conditioning import PAPER, ROBUST, condition, get_conditioning, speech_span


def test_speech_span_trims_only_digital_silence_at_the_ends():
    x = np.zeros(10_000, np.float32)
    x[2_000:3_000] = 0.5
    x[5_000:6_000] = -0.25  # an interior gap stays
    x[1_999] = 0.5e-6  # exactly at the threshold: silence
    x[6_000] = 1e-6  # above it: kept
    assert speech_span(x, 512) == (2_000, 6_001)
    assert speech_span(np.zeros(600, np.float32), 512) == (0, 600)
    short = np.zeros(4_000, np.float32)
    short[100:110] = 0.3
    start, stop = speech_span(short, 512)  # widened to one window, within the utterance
    assert stop - start == 512 and start == 0
    edge = np.zeros(4_000, np.float32)
    edge[3_990:] = 0.3
    assert speech_span(edge, 512) == (3_488, 4_000)


def test_condition_scales_to_the_target_rms():
    x = speech_like(1.0) * 1e-4
    padded = np.concatenate([np.zeros(800, np.float32), x, np.zeros(300, np.float32)])
    out, offset = condition(padded, ROBUST, 512)
    assert offset == 800 and out.shape == x.shape and out.dtype == np.float32
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(ROBUST.target_rms, rel=1e-6)
    same, offset = condition(padded, PAPER, 512)
    assert offset == 0 and np.array_equal(same, padded)


def test_get_conditioning():
    assert get_conditioning("robust") is ROBUST and get_conditioning(None) is PAPER
    assert get_conditioning({"name": "x", "trim_silence": True}).trim_silence
    with pytest.raises(ValueError, match=r"^unknown conditioning 'loud'; expected one of \['paper', 'robust'\]$"):
        get_conditioning("loud")


@pytest.fixture(scope="module")
def robust_model():
    return vqscore.api.Model(tiny_network("qe"), name="tiny", conditioning=ROBUST)


def test_robust_score_ignores_level_and_surrounding_silence(robust_model):
    x = speech_like(1.5, seed=3) + 0.01 * np.random.default_rng(0).standard_normal(24_000).astype(np.float32)
    base = robust_model.score(x, sr=SR)
    for variant in (
        x * np.float32(1e-3),  # -60 dB
        x * np.float32(20.0),
        np.concatenate([x, np.zeros(5 * SR, np.float32)]),
        np.concatenate([np.zeros(SR, np.float32), x, np.zeros(SR // 3, np.float32)]),
    ):
        got = robust_model.score(variant, sr=SR)
        for key in ("cos_z", "l2_z", "cos_x", "l2_x"):
            assert getattr(got, key) == pytest.approx(getattr(base, key), abs=1e-5), key
    # the same model as given ("paper") is moved by both
    paper = robust_model.with_conditioning("paper")
    assert abs(paper.vqscore(np.concatenate([x, np.zeros(5 * SR, np.float32)]), sr=SR) - paper.vqscore(x, sr=SR)) > 1e-3


def test_frame_times_stay_in_the_input_time(robust_model):
    x = speech_like(1.0, seed=4)
    lead = 4_000
    got = robust_model.score(np.concatenate([np.zeros(lead, np.float32), x]), sr=SR)
    alone = robust_model.score(x, sr=SR)
    assert len(got.frames) == len(alone.frames)
    np.testing.assert_allclose(got.frame_times, alone.frame_times + lead / SR)
    np.testing.assert_allclose(got.frames, alone.frames, atol=1e-5)


def test_cli_and_api_agree_in_robust_mode(tmp_path, capsys):
    network = tiny_network("qe")
    bundle = save_bundle(network, tmp_path / "m", name="tiny-robust", version="0.0.1", conditioning="robust")
    model = vqscore.load(bundle)
    assert model.conditioning is ROBUST and "robust" in repr(model)
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(3):
        x = np.concatenate([np.zeros(1_000 * (i + 1), np.float32), speech_like(0.7, seed=i) * (0.1 + 0.3 * i)])
        sf.write(folder / f"f{i}.wav", x, SR, subtype="FLOAT")
    out = tmp_path / "s.csv"
    assert main(["score", str(folder), "-o", str(out), "--model", str(bundle), "--workers", "1"]) == 0
    rows = read_rows(out)
    assert {r["scoring"] for r in rows} == {"robust; pooling mean; whole<=1800s; windows 60s"}
    api = model.vqscore(sorted(folder.iterdir()))
    np.testing.assert_allclose([float(r["vqscore"]) for r in rows], api, atol=2e-6)
    # --conditioning overrides the bundle's declaration
    paper_out = tmp_path / "p.csv"
    assert main(["score", str(folder), "-o", str(paper_out), "--model", str(bundle), "--conditioning", "paper"]) == 0
    paper_api = model.with_conditioning("paper").vqscore(sorted(folder.iterdir()))
    np.testing.assert_allclose([float(r["vqscore"]) for r in read_rows(paper_out)], paper_api, atol=2e-6)
    assert not np.allclose(paper_api, api, atol=1e-4)


def test_which_models_score_how(reference_dir):
    """Official checkpoints score as the paper defines (their parity is tested in that mode); the shipped default
    declares "robust"; both can be overridden."""
    official = vqscore.load(reference_dir / "qe_seed0.pkl")
    assert official.conditioning is PAPER
    assert vqscore.load(reference_dir / "qe_seed0.pkl", conditioning="robust").conditioning is ROBUST
    assert vqscore.load("default").conditioning is ROBUST
    assert vqscore.load("default", conditioning="paper").conditioning is PAPER
    path = reference_dir / "noisy_p232_005.wav"
    assert vqscore.score(path, model=reference_dir / "qe_seed0.pkl") == pytest.approx(0.8300763, abs=1e-5)
    # at a normal level and without padding, robust differs from paper only by the eps terms
    robust = vqscore.score(path, model=reference_dir / "qe_seed0.pkl", conditioning="robust")
    assert robust == pytest.approx(0.8300763, abs=5e-3)
