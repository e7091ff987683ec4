"""The demo's computations without a browser: reading uploads, scores equal to the API's, drop regions, the
plots' data, enhancement through the ensemble API, downloads and the example clips."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import soundfile as sf
from demo_support import FALLBACK_ENSEMBLE, REAL_NOISY

import vqscore
from vqscore.demo import analysis as A
from vqscore.demo import examples as E


@pytest.fixture(scope="module")
def model():
    return A.get_model("default")


def wav(samples: np.ndarray, rate: int = 16000, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def test_decode_any_rate_and_channels():
    x = np.stack([E.synthetic_voice(2.0, rate=44100), 0.5 * E.synthetic_voice(2.0, rate=44100)], axis=1)
    clip = A.decode(wav(x, 44100, "FLAC"), "stereo.flac")
    assert (clip.source_rate, clip.source_channels) == (44100, 2)
    assert clip.samples.dtype == np.float32 and abs(clip.duration_s - 2.0) < 1e-3


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8, "could not be read as audio"),
        (b"%PDF-1.4 not audio at all", "could not be read as audio"),
    ],
)
def test_decode_refuses_empty_and_corrupt(data, message):
    with pytest.raises(A.DemoError, match=message) as caught:
        A.decode(data, "bad.wav")
    assert caught.value.title.startswith("bad.wav")


def test_too_short_is_a_clear_message(model):
    clip = A.decode(wav(np.full(300, 0.1, dtype=np.float32)), "short.wav")
    with pytest.raises(A.DemoError, match="too short to score") as caught:
        A.analyse(model, clip)
    assert "32 ms" in caught.value.detail


def test_score_equals_the_api(model, tmp_path):
    path = tmp_path / "voice.wav"
    path.write_bytes(E.example_wav("voice-noise-burst"))
    analysis = A.analyse(model, A.decode(path.read_bytes(), path.name))
    expected = vqscore.load("default").score(path)
    assert abs(analysis.score - expected.cos_z) <= 1e-6
    assert abs(analysis.score - vqscore.score(path)) <= 1e-6
    np.testing.assert_allclose(analysis.frames, expected.frames, atol=1e-6)
    np.testing.assert_allclose(analysis.frame_times, expected.frame_times)
    assert analysis.mos is not None and 1.0 <= analysis.mos <= 5.0
    assert analysis.model_tag == model.tag


@pytest.mark.skipif(not REAL_NOISY.is_file(), reason="shared data (../shared/data) not available")
def test_real_recording_scores_like_the_api(model):
    clip = A.decode(REAL_NOISY.read_bytes(), REAL_NOISY.name)
    assert abs(A.analyse(model, clip).score - vqscore.load("default").score(REAL_NOISY).cos_z) <= 1e-6


def test_silence_is_nothing_to_judge(model):
    analysis = A.analyse(model, A.decode(wav(np.zeros(16000, dtype=np.float32)), "silence.wav"))
    assert analysis.nothing_to_judge and analysis.regions == () and analysis.mos is None
    assert A.band(analysis.score) == ""


def test_smooth_ignores_nan_and_keeps_length():
    frames = np.array([0.8] * 10 + [np.nan] + [0.6] * 10)
    out = A.smooth(frames, window_s=5 * A.HOP_S)
    assert out.shape == frames.shape and np.isfinite(out).all()
    assert out[0] == pytest.approx(0.8) and out[-1] == pytest.approx(0.6)
    assert np.isnan(A.smooth(np.full(4, np.nan))).all()


def test_drop_regions_merge_and_minimum_length():
    times = np.arange(200) * A.HOP_S
    curve = np.full(200, 0.8)
    curve[20:40] = 0.7  # 0.32 s: kept
    curve[43:60] = 0.7  # 3 frames later (48 ms gap): merged with the one before
    curve[100:105] = 0.7  # 80 ms: too short
    curve[150:180] = 0.74  # equal to the threshold is not below it
    regions = A.drop_regions(times, curve, threshold=0.74, min_s=0.25, merge_gap_s=0.15)
    assert len(regions) == 1
    (region,) = regions
    assert region.start_s == pytest.approx(times[20] - A.HOP_S / 2)
    assert region.end_s == pytest.approx(times[59] + A.HOP_S / 2)
    assert 0.7 < region.mean < 0.71 and region.lowest == pytest.approx(0.7)  # the 3 merged-over frames count
    assert A.drop_regions(times, np.full(200, 0.8)) == ()


def test_noise_burst_is_found_where_it_is(model):
    burst = A.analyse(model, A.decode(E.example_wav("voice-noise-burst"), "burst.wav"))
    clean = A.analyse(model, A.decode(E.example_wav("voice-clean"), "clean.wav"))
    assert clean.score > burst.score
    inside = sum(max(0.0, min(r.end_s, 7.0) - max(r.start_s, 4.0)) for r in burst.regions)
    outside = sum(r.duration_s for r in burst.regions) - inside
    assert inside > 2.5 and outside < 1.0, burst.regions
    assert sum(r.duration_s for r in clean.regions) < 1.0, clean.regions
    lower = A.with_threshold(burst, 0.60)
    assert lower.threshold == 0.60 and sum(r.duration_s for r in lower.regions) < inside


def test_band_reading():
    assert "bad" in A.band(0.70) and "fair" in A.band(0.752) and "good" in A.band(0.77)


def test_spectrogram_columns_line_up_with_frames(model):
    clip = A.decode(E.example_wav("voice-clean"), "clean.wav")
    times, freqs, db = A.spectrogram(clip.samples)
    frames = model.score(clip.samples, sr=16000)
    assert db.shape == (A.N_FFT // 2 + 1, times.shape[0]) and freqs[-1] == 8000
    assert abs(times.shape[0] - frames.frames.shape[0]) <= 1
    # frame_times are shifted by the digital silence the robust conditioning trims (here a few samples)
    np.testing.assert_allclose(times[: frames.frames.shape[0]], frames.frame_times[: times.shape[0]], atol=0.002)
    long_times, _, long_db = A.spectrogram(np.tile(clip.samples, 10), max_columns=500)
    assert long_db.shape[1] <= 500 and np.all(np.diff(long_times) > 0)


def test_envelope_bounds_the_waveform():
    x = E.synthetic_voice(1.0)
    times, lows, highs = A.envelope(x, columns=100)
    assert times.shape == lows.shape == highs.shape == (100,)
    assert lows.min() == x.min() and highs.max() == x.max() and np.all(lows <= highs)


class FakeSelection:
    def __init__(self, outputs, scores, chosen):
        from vqscore.ensemble import MemberResult

        self.outputs = outputs
        self.chosen = chosen
        self.audio = outputs[chosen]
        self.sample_rate = 16000
        self.selector = "fake"
        self.members = tuple(MemberResult(m, scores[m], m == chosen, 0.01, float(m == chosen)) for m in outputs)


class FakeEnsemble:
    name = "fake"
    member_names = ("a", "b")

    def __init__(self, fail: bool = False):
        self.fail = fail

    def enhance(self, wav, sr):
        if self.fail:
            from vqscore.ensemble import EnsembleError

            raise EnsembleError("x.wav: member 'b' (broken) failed: RuntimeError: boom")
        return FakeSelection({"a": wav.copy(), "b": 0.5 * wav}, {"a": 0.7, "b": 0.75}, "b")


def test_enhance_clip_keeps_the_selection():
    clip = A.decode(E.example_wav("voice-clean"), "clean.wav")
    result = A.enhance_clip(FakeEnsemble(), clip)
    assert result.chosen == "b" and [m.name for m in result.members] == ["a", "b"]
    assert [m.chosen for m in result.members] == [False, True]
    np.testing.assert_array_equal(result.audio, 0.5 * clip.samples)
    with pytest.raises(A.DemoError, match="member 'b'"):
        A.enhance_clip(FakeEnsemble(fail=True), clip)


def test_real_ensemble(tmp_path, model):
    from vqscore.api import load_audio
    from vqscore.ensemble import Ensemble

    path = tmp_path / "ensemble.json"
    path.write_text(
        json.dumps({**FALLBACK_ENSEMBLE, "members": [FALLBACK_ENSEMBLE["members"][0], FALLBACK_ENSEMBLE["members"][2]]})
    )
    clip = A.decode(E.example_wav("voice-noisy-5db"), "noisy.wav")
    result = A.enhance_clip(A.get_ensemble(str(path)), clip)
    selection = Ensemble.load(path).enhance(load_audio(io.BytesIO(E.example_wav("voice-noisy-5db"))).samples, 16000)
    assert result.chosen == selection.chosen
    for mine, theirs in zip(result.members, selection.members, strict=True):
        assert mine.name == theirs.member and abs(mine.score - theirs.score) <= 1e-5 and mine.chosen == theirs.chosen
    noisy = next(m for m in result.members if m.name == "noisy")
    assert abs(noisy.score - A.analyse(model, clip).score) <= 1e-5  # the passthrough scores as the input


def test_model_and_ensemble_that_fail_to_load(tmp_path):
    with pytest.raises(A.DemoError, match="scoring model .* could not be loaded"):
        A.get_model(str(tmp_path / "missing.json"))
    with pytest.raises(A.DemoError, match="SE model"):
        A.get_model("default-se")
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"name": "bad", "members": [{"name": "ghost", "kind": "bundle", "options": {"model": "no-such-bundle"}}]})
    )
    with pytest.raises(A.DemoError, match="ghost") as caught:
        A.get_ensemble(str(bad))
    assert "could not be loaded" in caught.value.title
    with pytest.raises(A.DemoError, match="could not be loaded"):
        A.get_ensemble(str(tmp_path / "missing.json"))


def test_downloads(model):
    clip = A.decode(E.example_wav("voice-noise-burst"), "burst.wav")
    analysis = A.analyse(model, clip)
    enhancement = A.enhance_clip(FakeEnsemble(), clip)
    rows = list(csv.DictReader(io.StringIO(A.scores_csv(clip, analysis, enhancement))))
    assert tuple(rows[0]) == A.SCORE_COLUMNS
    assert [r["audio"] for r in rows] == ["input", "a", "b"] and [r["chosen"] for r in rows] == ["", "0", "1"]
    assert [r["weight"] for r in rows] == ["", "0.000000", "1.000000"]
    assert abs(float(rows[0]["vqscore"]) - analysis.score) <= 1e-6
    frames = list(csv.DictReader(io.StringIO(A.frames_csv(clip, analysis))))
    assert len(frames) == analysis.frames.shape[0]
    assert any(r["in_drop"] == "1" for r in frames) and any(r["in_drop"] == "0" for r in frames)
    exact, rate = sf.read(io.BytesIO(A.wav_bytes(enhancement.audio, subtype="FLOAT")), dtype="float32")
    assert rate == 16000 and np.array_equal(exact, enhancement.audio)
    loud, _ = sf.read(io.BytesIO(A.wav_bytes(np.array([2.0, -2.0, 0.5], dtype=np.float32))), dtype="float32")
    assert loud.tolist() == pytest.approx([1.0, -1.0, 0.5], abs=1e-4)
    assert A.fmt(float("nan")) == "" and A.fmt(0.1234567) == "0.123457"


def test_examples_are_synthesised_and_deterministic(model):
    assert len(E.EXAMPLES) >= 3
    scores = {}
    for example in E.EXAMPLES:
        data = E.example_wav(example.key)
        x, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == 16000 and x.shape == (160000,) and 0.1 < np.max(np.abs(x)) <= 1.0
        assert np.array_equal(x, sf.read(io.BytesIO(wav(example.make(), subtype="PCM_16")), dtype="float32")[0])
        scores[example.key] = A.analyse(model, A.decode(data, example.key)).score
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["voice-clean"] == max(scores.values())  # every degradation scores below the clean voice
    with pytest.raises(KeyError):
        E.example_wav("nope")


def test_figures_render(model):
    pytest.importorskip("matplotlib", reason="the demo's figures need the 'demo' extra")
    from vqscore.demo import plots as P

    clip = A.decode(E.example_wav("voice-noise-burst"), "burst.wav")
    analysis = A.analyse(model, clip)
    quality = P.png(P.quality_figure(clip, analysis))
    after = P.png(P.before_after_figure(clip, A.enhance_clip(FakeEnsemble(), clip)))
    silent = A.analyse(model, A.decode(wav(np.zeros(8000, dtype=np.float32)), "silence.wav"))
    nothing = P.png(P.quality_figure(A.decode(wav(np.zeros(8000, dtype=np.float32)), "silence.wav"), silent))
    for image in (quality, after, nothing):
        assert image.startswith(b"\x89PNG")


def test_cli_registers_demo():
    from vqscore.cli import build_parser

    args = build_parser().parse_args(["demo", "--port", "9999", "--ensemble", "x.json"])
    assert (args.port, args.host, args.ensemble, args.model, args.max_upload_mb) == (
        9999,
        "127.0.0.1",
        "x.json",
        "default",
        50,
    )
    from vqscore.demo.command import cmd_demo

    assert args.func is cmd_demo
    bad = build_parser().parse_args(["demo", "--port", "0"])
    assert cmd_demo(bad) == 2


def test_busy_port_is_refused_before_loading(capsys):
    import socket

    pytest.importorskip("streamlit", reason="the demo needs the 'demo' extra")

    from vqscore.cli import main
    from vqscore.demo.command import port_problem

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "in use" in port_problem("127.0.0.1", port)
        assert main(["demo", "--port", str(port)]) == 2
        assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert port_problem("127.0.0.1", port) == ""


def test_demo_imports_only_the_library_front_door():
    import ast
    from pathlib import Path

    allowed = {"vqscore.api", "vqscore.ensemble", "vqscore.demo"}
    for path in Path(A.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("vqscore"):
                assert node.module in allowed or node.module.startswith("vqscore.demo"), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("lightning", "recipes", "benchmarks")), (path.name, alias.name)
