"""Inputs that cannot be scored fail with exact, named messages; edge cases give their documented results."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import SR, speech_like

import vqscore
import vqscore.api
import vqscore.bundle
from vqscore import AudioError, BundleError


def exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def test_audio_error_is_value_error():
    assert issubclass(AudioError, ValueError)
    assert issubclass(BundleError, ValueError)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(0, np.float32), "<array of shape (0,)>: empty audio (0 samples)"),
        (np.zeros((2, 0), np.float32), "<array of shape (2, 0)>: empty audio (0 samples)"),
        (np.zeros((0, 2), np.float32), "<array of shape (0, 2)>: empty audio (0 samples)"),
        (
            np.full(511, 0.1, np.float32),
            "<array of shape (511,)>: too short (511 samples at 16 kHz); at least 512 samples (32 ms, one STFT window) are needed",
        ),
        (np.array([0.1, np.nan, 0.2] * 300, np.float32), "<array of shape (900,)>: 300 NaN or Inf samples"),
        (np.array([0.1, np.inf, -np.inf, 0.0] * 200, np.float32), "<array of shape (800,)>: 400 NaN or Inf samples"),
        (
            np.zeros((16000, 2), np.float32),
            "<array of shape (16000, 2)>: the last axis holds the samples, so this is 16000 rows of 2 samples; "
            "for (samples, channels) audio pass channel_axis=-1",
        ),
        (np.array(0.5, np.float32), "<array of shape ()>: a scalar is not audio; expected (..., samples)"),
        (np.full((2, 3, 600), 1e30, np.float32), "<array of shape (2, 3, 600)>[0, 0]: samples reach 1e+30; float audio "
         "is expected in [-1, 1] and at most 1.1e+12 is accepted (larger values overflow the float32 spectrum)"),
        (np.ones(1000, bool), "<array of shape (1000,)>: boolean array is not audio"),
        (
            np.zeros((2, 300), np.float32),
            "<array of shape (2, 300)>[0]: too short (300 samples at 16 kHz); at least 512 samples (32 ms, one STFT "
            "window) are needed",
        ),
        (np.ones(1000, np.complex64), "<array of shape (1000,)>: unsupported sample type complex64"),
    ],
)
def test_bad_arrays(tiny_qe, array, message):
    with pytest.raises(AudioError, match=exact(message)):
        tiny_qe.score(array, sr=SR)


def test_too_short_is_judged_at_16k(tiny_qe):
    # 1300 samples at 44.1 kHz are about 472 samples at 16 kHz: shorter than one 512-sample window
    with pytest.raises(AudioError, match=r"^<array of shape \(1300,\)>: too short \(47\d samples at 16 kHz\)"):
        tiny_qe.score(speech_like(1300 / 44_100, sr=44_100), sr=44_100)
    # exactly 512 samples is enough
    assert np.isfinite(tiny_qe.score(speech_like(512 / SR)[:512], sr=SR).cos_z)


@pytest.mark.parametrize("sr", [500, 1_000_000])
def test_unsupported_rate(tiny_qe, sr):
    with pytest.raises(
        AudioError, match=exact(f"<array of shape (4000,)>: sample rate {sr} Hz is outside the supported 1000-768000 Hz")
    ):
        tiny_qe.score(np.ones(4000, np.float32), sr=sr)


def test_tensor_names_itself(tiny_qe):
    with pytest.raises(
        AudioError,
        match=exact(
            "<tensor of shape (100,)>: too short (100 samples at 16 kHz); at least 512 samples (32 ms, one STFT window) are needed"
        ),
    ):
        tiny_qe.score(torch.ones(100), sr=SR)
    with pytest.raises(AudioError, match=exact("<tensor of shape (1000,)>: 1 NaN or Inf samples")):
        tiny_qe.score(torch.cat([torch.ones(999), torch.tensor([float("nan")])]), sr=SR)


def test_missing_sr_with_array(tiny_qe):
    with pytest.raises(
        AudioError, match=exact("<array of shape (1000,)>: sr (the sample rate in Hz) is required with an array or tensor")
    ):
        tiny_qe.score(np.ones(1000, np.float32))
    with pytest.raises(
        AudioError, match=exact("<array of shape (1000,)>: sr (the sample rate in Hz) is required with an array or tensor")
    ):
        vqscore.score(np.ones(1000, np.float32), model=tiny_qe)


def test_sr_with_a_path_is_refused(tiny_qe, make_wav):
    path = make_wav("a.wav")
    with pytest.raises(AudioError, match=exact(f"{path}: sr is read from the file; do not pass sr with a path")):
        tiny_qe.score(path, sr=SR)


def test_missing_file(tiny_qe, tmp_path):
    path = tmp_path / "nowhere" / "missing.wav"
    with pytest.raises(AudioError, match=exact(f"{path}: no such file")):
        tiny_qe.score(path)
    with pytest.raises(AudioError, match=exact(f"{path}: no such file")):
        tiny_qe.score(str(path))


def test_corrupt_wav(tiny_qe, tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match="^" + re.escape(f"{path}: cannot read audio (")) as info:
        tiny_qe.score(path)
    assert "Format not recognised" in str(info.value)


def test_text_file_named_wav(tiny_qe, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not audio\n" * 50)
    with pytest.raises(AudioError, match="^" + re.escape(f"{path}: cannot read audio (")):
        tiny_qe.score(path)


def test_empty_and_short_files(tiny_qe, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match=exact(f"{empty}: empty audio (0 samples)")):
        tiny_qe.score(empty)
    short = tmp_path / "short.wav"
    sf.write(short, speech_like(0.02), SR)
    with pytest.raises(
        AudioError,
        match=exact(f"{short}: too short (320 samples at 16 kHz); at least 512 samples (32 ms, one STFT window) are needed"),
    ):
        tiny_qe.score(short)


def test_error_in_a_list_names_that_item(tiny_qe, make_wav):
    missing = make_wav("good.wav").with_name("gone.wav")
    with pytest.raises(AudioError, match=r"^<array of shape \(10,\)>: too short"):
        tiny_qe.score([np.ones(1000, np.float32), np.ones(10, np.float32)], sr=SR)
    with pytest.raises(AudioError, match=exact(f"{missing}: no such file")):
        tiny_qe.score([make_wav("other.wav"), missing])


@pytest.mark.parametrize("which", ["tiny_qe", "tiny_se"])
def test_digital_silence_is_nan(request, which):
    model = request.getfixturevalue(which)
    n = 16_000
    score = model.score(np.zeros(n, np.float32), sr=SR)
    for key in ("cos_z", "l2_z", "cos_x", "l2_x"):
        assert np.isnan(getattr(score, key)), key
    hop = model.network.features.hop_length
    assert score.frames.shape == (1 + n // hop,)
    assert np.all(np.isnan(score.frames))
    np.testing.assert_allclose(score.frame_times, np.arange(1 + n // hop) * hop / SR)
    assert np.isnan(model.vqscore(np.zeros(n, np.int16), sr=SR))
    # in a batch, silence stays NaN and does not disturb its neighbours
    speech = speech_like(1.0)
    alone = model.score(speech, sr=SR)
    mixed = model.score([np.zeros(n, np.float32), speech], sr=SR)
    assert np.isnan(mixed[0].cos_z)
    assert mixed[1].cos_z == pytest.approx(alone.cos_z, abs=1e-6)
    # a single non-zero sample is not silence
    almost = np.zeros(n, np.float32)
    almost[5000] = 1e-3
    assert np.isfinite(model.score(almost, sr=SR).cos_z)


def test_clipped_speech_scores_lower(ref_qe, reference_dir):
    clean, sr = sf.read(reference_dir / "clean_p232_005.wav", dtype="float32")
    limit = 0.1 * float(np.abs(clean).max())
    clipped = np.clip(clean, -limit, limit)
    assert np.mean(np.abs(clipped) == limit) > 0.01  # really clipped
    base = ref_qe.score(clean, sr=sr)
    got = ref_qe.score(clipped, sr=sr)
    assert base.cos_z == pytest.approx(0.9999878, abs=1e-5)  # the codebook was fitted on this file
    assert np.isfinite(got.cos_z)
    assert got.cos_z < base.cos_z - 0.05
    assert got.l2_z > base.l2_z


def test_enhance_needs_an_se_model(tiny_qe, tiny_se):
    with pytest.raises(TypeError, match=exact("tiny is a QE model; enhance() needs an SE (enhancement) model")):
        tiny_qe.enhance(speech_like(1.0), sr=SR)
    with pytest.raises(TypeError):
        vqscore.enhance(speech_like(1.0), sr=SR, model=tiny_qe)
    out = tiny_se.enhance(speech_like(1.0, sr=22_050), sr=22_050)
    assert out.dtype == np.float32 and abs(out.shape[0] - SR) <= 1 and np.all(np.isfinite(out))
    with pytest.raises(AudioError, match=r"^<array of shape \(100,\)>: too short"):
        tiny_se.enhance(np.ones(100, np.float32), sr=SR)


def test_default_model_without_shipped_bundle(monkeypatch, tmp_path):
    empty = tmp_path / "pretrained"
    empty.mkdir()
    monkeypatch.setenv("VQSCORE_PRETRAINED", str(empty))
    monkeypatch.setattr(vqscore.bundle, "pretrained_dirs", lambda: [empty])
    vqscore.api.cached_model.cache_clear()
    try:
        with pytest.raises(BundleError, match=r"^no pretrained QE bundle is shipped \(searched: ") as info:
            vqscore.score(speech_like(1.0), sr=SR, model="default")
        assert str(empty) in str(info.value)
        with pytest.raises(BundleError, match=r"^no shipped bundle named 'nope' \(shipped: none\)$"):
            vqscore.load("nope")
    finally:
        vqscore.api.cached_model.cache_clear()


@pytest.mark.parametrize(
    "audio, error, message",
    [
        (None, TypeError, "audio: expected a path, an open binary file, a numpy array or a torch tensor, got NoneType"),
        (
            [0.1, 0.2, 0.3],
            TypeError,
            "audio[0]: expected a path, an open binary file, a numpy array or a torch tensor, got float "
            "(a list is a batch of inputs: pass samples as a numpy array)",
        ),
        (
            b"RIFF....WAVEfmt ",
            TypeError,
            "audio: got bytes; expected a path, an open binary file, a numpy array or a torch tensor "
            "(wrap encoded audio in io.BytesIO)",
        ),
        ({"wav": 1}, TypeError, "audio: expected a path, an open binary file, a numpy array or a torch tensor, got dict"),
    ],
)
def test_wrong_input_types_name_what_is_accepted(tiny_qe, audio, error, message):
    for call in (tiny_qe.score, tiny_qe.vqscore, lambda a: vqscore.score(a, model=tiny_qe)):
        with pytest.raises(error, match=exact(message)):
            call(audio)


@pytest.mark.parametrize(
    "sr, error, message",
    [
        ("16000", TypeError, "<array of shape (4000,)>: sr must be the sample rate in Hz as an int, got str '16000'"),
        (16000.5, AudioError, "<array of shape (4000,)>: sr must be a whole number of Hz, got 16000.5"),
        (True, TypeError, "<array of shape (4000,)>: sr must be the sample rate in Hz as an int, got bool True"),
    ],
)
def test_wrong_sample_rates(tiny_qe, sr, error, message):
    with pytest.raises(error, match=exact(message)):
        tiny_qe.score(np.ones(4000, np.float32), sr=sr)


def test_whole_float_and_numpy_rates_are_accepted(tiny_qe):
    x = speech_like(0.5)
    want = tiny_qe.vqscore(x, sr=SR)
    assert tiny_qe.vqscore(x, sr=16000.0) == want
    assert tiny_qe.vqscore(x, sr=np.int64(SR)) == want


def test_open_file_objects_are_read(tiny_qe, make_wav):
    path = make_wav("a.wav", seconds=0.5)
    want = tiny_qe.vqscore(path)
    with open(path, "rb") as f:
        assert tiny_qe.vqscore(f) == want
    with open(path, "rb") as f:
        assert vqscore.score(io.BytesIO(f.read()), model=tiny_qe) == want
    with open(path, "rb") as f, pytest.raises(AudioError, match=exact(f"{path}: sr is read from the file; do not pass sr with a file object")):
        tiny_qe.score(f, sr=SR)
    with pytest.raises(AudioError, match=r"^<BytesIO>: cannot read audio \("):
        tiny_qe.score(io.BytesIO(b"not audio at all" * 100))


def test_too_many_channels_with_channel_axis(tiny_qe):
    with pytest.raises(
        AudioError, match=exact("<array of shape (100, 1000)>: 100 channels; at most 64 are accepted (is the array transposed?)")
    ):
        tiny_qe.score(np.zeros((100, 1000), np.float32), sr=SR, channel_axis=0)


def test_non_normalised_float_input(tiny_qe):
    """Float input is expected in [-1, 1]; larger values are scored as given (level barely matters) up to 2**40,
    beyond which float32 spectra would overflow into NaN: refused with the peak named."""
    x = speech_like(1.0)
    base = tiny_qe.vqscore(x, sr=SR)
    assert tiny_qe.vqscore(x * 32768, sr=SR) == pytest.approx(base, abs=1e-3)  # int16-range floats
    assert np.isfinite(tiny_qe.vqscore(x / np.abs(x).max() * 2.0**40, sr=SR))
    with pytest.raises(AudioError, match=r"^<array of shape \(16000,\)>: samples reach 1e\+30; float audio is expected"):
        tiny_qe.vqscore(x / np.abs(x).max() * 1e30, sr=SR)
