"""The demo page's script run headless (Streamlit's AppTest, no browser): every input path (upload, microphone
recording, example clip), the messages for bad input and for a model or an ensemble that fails to load, and the
page going on after each."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import vqscore
from vqscore.demo import examples as E

pytest.importorskip("streamlit", reason="the demo needs the 'demo' extra: pip install -e '.[demo]'")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = Path(vqscore.__file__).parent / "demo" / "app.py"
CHEAP = {
    "name": "cheap",
    "members": [{"name": "noisy", "kind": "passthrough"}, {"name": "spectral-gating", "kind": "spectral-gating"}],
}


@pytest.fixture
def page(tmp_path, monkeypatch):
    ensemble = tmp_path / "cheap.json"
    ensemble.write_text(json.dumps(CHEAP))
    monkeypatch.setenv("VQSCORE_DEMO_ENSEMBLE", str(ensemble))
    monkeypatch.setenv("VQSCORE_DEMO_MODEL", "default")
    monkeypatch.setenv("VQSCORE_DEMO_MAX_UPLOAD_MB", "7")

    def make() -> AppTest:
        app = AppTest.from_file(str(APP), default_timeout=120)
        app.run()
        assert not app.exception
        return app

    return make


def blocks(app: AppTest) -> list[str]:
    return [h.proto.body for h in app.get("html")]


def score_of(app: AppTest) -> float | None:
    for body in blocks(app):
        found = re.search(r'id="vq-score"[^>]*data-score="([^"]*)"', body)
        if found:
            return float(found.group(1))
    return None


def members_of(app: AppTest) -> dict[str, tuple[float, bool]]:
    found = {}
    for body in blocks(app):
        m = re.search(r'data-member="([^"]*)" data-score="([^"]*)" data-chosen="([01])"', body)
        if m:
            found[m.group(1)] = (float(m.group(2)), m.group(3) == "1")
    return found


def regions_of(app: AppTest) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for body in blocks(app) for a, b in re.findall(r'data-start="([^"]*)" data-end="([^"]*)"', body)]


def errors(app: AppTest) -> str:
    """The messages on the page as a reader sees them (the page escapes Markdown in them)."""
    return " ".join(re.sub(r"\\(.)", r"\1", e.value) for e in app.error)


def test_landing_page_asks_for_audio(page):
    app = page()
    assert "Upload a recording" in app.info[0].value
    assert "up to 7 MB" in app.file_uploader(key="upload").label
    assert app.radio(key="source").options == ["Upload a file", "Record from the microphone", "Example clip"]


def test_example_clip_scores_enhances_and_marks_drops(page):
    app = page()
    app.radio(key="source").set_value("Example clip").run()
    app.selectbox(key="example").set_value("voice-noise-burst").run()
    assert not app.exception and not app.error
    expected = vqscore.load("default").score(io.BytesIO(E.example_wav("voice-noise-burst"))).cos_z
    assert abs(score_of(app) - expected) <= 1e-5
    members = members_of(app)
    assert set(members) == {"noisy", "spectral-gating"} and sum(chosen for _, chosen in members.values()) == 1
    assert abs(members["noisy"][0] - expected) <= 1e-5  # the passthrough member scores as the input
    regions = regions_of(app)
    assert any(start < 7 and end > 4 for start, end in regions)
    assert [b.label for b in app.get("download_button")][:1] == ["Per-frame scores (CSV)"]
    # moving the threshold down marks less, without rescoring
    app.slider(key="threshold").set_value(0.68).run()
    assert score_of(app) == pytest.approx(expected, abs=1e-5)
    lower = regions_of(app)
    assert sum(b - a for a, b in lower) < sum(b - a for a, b in regions)


def test_upload_errors_then_a_good_file(page):
    app = page()
    uploader = app.file_uploader(key="upload")
    uploader.upload("broken.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200))).run()
    assert "broken.wav could not be read as audio" in errors(app) and score_of(app) is None
    buffer = io.BytesIO()
    sf.write(buffer, np.full(200, 0.1, dtype=np.float32), 16000, format="WAV")
    app.file_uploader(key="upload").upload("tiny.wav", buffer.getvalue()).run()
    assert "tiny.wav is too short to score" in errors(app) and "32 ms" in errors(app)
    good = io.BytesIO()
    x = E.add_noise(E.synthetic_voice(3.0), 10.0)
    sf.write(good, x, 16000, format="FLAC")
    app.file_uploader(key="upload").upload("good.flac", good.getvalue()).run()
    assert not app.exception and not app.error
    assert abs(score_of(app) - vqscore.load("default").score(io.BytesIO(good.getvalue())).cos_z) <= 1e-5


def test_microphone_recording(page):
    app = page()
    app.radio(key="source").set_value("Record from the microphone").run()
    recording = io.BytesIO()
    sf.write(recording, E.synthetic_voice(2.0, seed=3), 16000, format="WAV")
    app.audio_input(key="recording").upload("recording.wav", recording.getvalue()).run()
    assert not app.exception and not app.error
    expected = vqscore.load("default").score(io.BytesIO(recording.getvalue())).cos_z
    assert abs(score_of(app) - expected) <= 1e-5


def test_model_that_fails_to_load(page, monkeypatch, tmp_path):
    monkeypatch.setenv("VQSCORE_DEMO_MODEL", str(tmp_path / "no-such-model.json"))
    app = page()
    app.radio(key="source").set_value("Example clip").run()
    assert not app.exception
    assert "The scoring model" in errors(app) and "could not be loaded" in errors(app)
    assert score_of(app) is None
    # the page keeps working: the next run with a good model scores
    monkeypatch.setenv("VQSCORE_DEMO_MODEL", "default")
    app.run()
    assert not app.error and score_of(app) is not None


def test_long_recording_is_scored_not_enhanced(page, monkeypatch):
    from vqscore.demo import analysis as A

    monkeypatch.setattr(A, "MAX_ENHANCE_S", 5.0)
    app = page()
    app.radio(key="source").set_value("Example clip").run()
    assert not app.exception and not app.error
    assert score_of(app) is not None and members_of(app) == {}
    assert "enhances recordings up to" in " ".join(i.value for i in app.info)


def test_messages_show_names_as_typed(page):
    app = page()
    app.file_uploader(key="upload").upload("my_file*$x$.wav", b"not audio").run()
    assert "my_file*$x$.wav could not be read as audio" in errors(app)


def test_ensemble_that_fails_to_load_keeps_the_score(page, monkeypatch, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "members": [{"name": "ghost", "kind": "bundle", "options": {"model": "no-such-bundle"}}]}))
    monkeypatch.setenv("VQSCORE_DEMO_ENSEMBLE", str(bad))
    app = page()
    app.radio(key="source").set_value("Example clip").run()
    assert not app.exception
    assert score_of(app) is not None
    assert "could not be loaded" in errors(app) and "ghost" in errors(app)
    assert [b.label for b in app.get("download_button")] == ["Per-frame scores (CSV)", "Scores (CSV)"]
