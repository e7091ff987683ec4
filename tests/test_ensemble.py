"""Ensembles as data and the per-utterance pick: file parsing with exact errors, members built through the
enhancer registry, the argmax with first-listed ties, failing members named, the VQScore selector on real speech,
and `vqscore select` on a folder (a bad file gets a row, the run resumes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import SR, read_rows, speech_like

import vqscore
import vqscore.enhancers as enhancers
from vqscore.cli import main
from vqscore.cli_select import select_columns
from vqscore.ensemble import Ensemble, EnsembleError, EnsembleSpec, find_ensemble
from vqscore.selectors import pick, weights


class Gain:
    def __init__(self, gain: float = 1.0):
        self.gain, self.name = gain, f"gain {gain}"

    def enhance(self, wav):
        return (self.gain * wav).astype(np.float32)


class Boom:
    name = "boom"

    def enhance(self, wav):
        raise RuntimeError("out of cheese")


class Loudest:
    """A selector for tests: the output with the most energy wins."""

    name = "energy"
    needs_reference = False

    def scores(self, outputs, reference=None):
        return np.array([float(np.sum(y.astype(np.float64) ** 2)) for y in outputs])


@pytest.fixture
def kinds(monkeypatch):
    monkeypatch.setitem(enhancers.BUILDERS, "gain", Gain)
    monkeypatch.setitem(enhancers.BUILDERS, "boom", Boom)


def spec(*members, selector="vqscore") -> EnsembleSpec:
    return EnsembleSpec.from_dict({"name": "t", "selector": {"kind": selector}, "members": list(members)})


def test_spec_round_trips_and_names_its_errors(tmp_path):
    data = {
        "name": "t",
        "description": "d",
        "selector": {"kind": "ae-error", "options": {}},
        "members": [{"name": "a", "kind": "passthrough", "options": {}}],
    }
    parsed = EnsembleSpec.from_dict(data)
    assert parsed.to_dict() == data and EnsembleSpec.from_dict(parsed.to_dict()) == parsed
    cases = [
        ({"name": "t", "members": []}, "x.json: 'members' must be a non-empty list"),
        (
            {"name": "t", "members": [{"name": "a"}]},
            "x.json: member 1 must have 'name' and 'kind' (and optional 'options'), got {'name': 'a'}",
        ),
        (
            {"name": "t", "members": [{"name": "a", "kind": "passthrough"}] * 2},
            "x.json: member names must be unique; repeated: ['a']",
        ),
        (
            {"name": "t", "members": [{"name": "a", "kind": "passthrough"}], "extra": 1},
            "x.json: unknown ensemble fields ['extra']",
        ),
    ]
    for data, message in cases:
        with pytest.raises(EnsembleError) as info:
            EnsembleSpec.from_dict(data, "x.json")
        assert str(info.value) == message
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(EnsembleError, match=r"bad.json: not valid JSON"):
        EnsembleSpec.read(bad)
    with pytest.raises(EnsembleError, match=r"no shipped ensemble named 'nope' \(shipped: "):
        find_ensemble("nope")


def test_pick_is_the_first_best_and_ignores_non_finite():
    assert pick(np.array([1.0, 3.0, 3.0])) == 1
    assert pick(np.array([np.nan, -np.inf, 0.5])) == 2
    assert pick(np.array([np.nan, np.nan])) == 0


def test_weights_are_the_pick_or_a_softmax_of_the_finite_scores():
    np.testing.assert_array_equal(weights(np.array([1.0, 3.0, 3.0])), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(weights(np.array([np.nan, np.nan]), 0.01), [1.0, 0.0])
    w = weights(np.array([0.800, 0.803, np.nan, 0.797]), 0.003)
    e = np.exp(1.0)
    np.testing.assert_allclose(w, np.array([1 / e, 1.0, 0.0, 1 / e**2]) / (1 + 1 / e + 1 / e**2), rtol=1e-12)
    np.testing.assert_allclose(weights(np.array([0.8, 0.8]), 0.003), [0.5, 0.5], rtol=1e-12)
    assert weights(np.array([0.0, 1.0]), 1e-6)[1] == 1.0  # a tiny temperature is the hard pick, without overflow


def test_a_temperature_mixes_the_outputs_by_their_weights(kinds):
    members = [
        {"name": "half", "kind": "gain", "options": {"gain": 0.5}},
        {"name": "double", "kind": "gain", "options": {"gain": 2.0}},
    ]
    data = {"name": "t", "selector": {"kind": "vqscore", "temperature": 0.5}, "members": members}
    parsed = EnsembleSpec.from_dict(data)
    assert parsed.selector.temperature == 0.5 and EnsembleSpec.from_dict(parsed.to_dict()) == parsed
    assert "temperature" not in spec(*members).to_dict()["selector"]  # a hard ensemble's hash is as before

    class Fixed:
        name, needs_reference = "fixed", False

        def scores(self, outputs, reference=None):
            return np.array([0.0, 0.5])

    ensemble = Ensemble(parsed, selector=Fixed())
    assert ensemble.temperature is None  # an overriding selector has other units: it picks hard
    ensemble.temperature = 0.5
    wav = speech_like(1.0, seed=3)
    sel = ensemble.enhance(wav, sr=SR)
    w = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose([m.weight for m in sel.members], w, rtol=1e-12)
    np.testing.assert_allclose(sel.audio, (w[0] * 0.5 + w[1] * 2.0) * wav, rtol=1e-5, atol=1e-7)
    assert sel.chosen == "double" and sel.audio.dtype == np.float32
    assert [row["weight"] for row in sel.table()] == [m.weight for m in sel.members]
    for bad in (0, -1.0, "0.1", True, float("inf")):
        with pytest.raises(EnsembleError) as info:
            EnsembleSpec.from_dict({**data, "selector": {"kind": "vqscore", "temperature": bad}}, "x.json")
        assert str(info.value) == f"x.json: the selector's temperature must be a positive number, got {bad!r}"


def test_every_member_runs_and_the_selector_picks(kinds):
    ensemble = Ensemble(
        spec(
            {"name": "noisy", "kind": "passthrough"},
            {"name": "half", "kind": "gain", "options": {"gain": 0.5}},
            {"name": "double", "kind": "gain", "options": {"gain": 2.0}},
        ),
        selector=Loudest(),
    )
    wav = speech_like(1.0, seed=1)
    sel = ensemble.enhance(wav, sr=SR)
    assert ensemble.member_names == ("noisy", "half", "double") and sel.chosen == "double"
    np.testing.assert_array_equal(sel.audio, 2 * wav)
    assert [m.chosen for m in sel.members] == [False, False, True] and sel.sample_rate == 16_000
    assert [m.weight for m in sel.members] == [0.0, 0.0, 1.0]
    assert set(sel.outputs) == {"noisy", "half", "double"} and all(m.seconds >= 0 for m in sel.members)
    assert [row["member"] for row in sel.table()] == ["noisy", "half", "double"]
    # input at another rate is resampled to 16 kHz first, as for scoring
    assert ensemble.enhance(np.repeat(wav, 3), sr=48_000).audio.shape == wav.shape


def test_members_that_cannot_be_built_or_fail_are_named(kinds):
    with pytest.raises(EnsembleError) as info:
        Ensemble(spec({"name": "se", "kind": "bundle", "options": {"model": "no-such-bundle"}}), selector=Loudest())
    assert str(info.value).startswith("ensemble 't': member 'se' (kind 'bundle') cannot be built: ")
    assert "no-such-bundle" in str(info.value)
    with pytest.raises(
        EnsembleError, match=r"ensemble 't': member 'x' \(kind 'nope'\) cannot be built: unknown enhancer kind 'nope'"
    ):
        Ensemble(spec({"name": "x", "kind": "nope"}), selector=Loudest())
    ensemble = Ensemble(spec({"name": "noisy", "kind": "passthrough"}, {"name": "bad", "kind": "boom"}), selector=Loudest())
    with pytest.raises(EnsembleError) as info:
        ensemble.enhance(speech_like(0.5), sr=SR)
    assert str(info.value) == "<array of shape (8000,)>: member 'bad' (boom) failed: RuntimeError: out of cheese"


@pytest.mark.usefixtures("kinds")
def test_vqscore_selector_prefers_clean_speech(reference_dir):
    from vqscore.audio import load_audio

    rng = np.random.default_rng(0)
    clean = load_audio(reference_dir / "clean_p232_005.wav").samples
    noisy = clean + 0.1 * np.std(clean) * 10 ** (5 / 20) * rng.standard_normal(clean.shape).astype(np.float32)
    cleaner = noisy - (noisy - clean)  # a member that "enhances" perfectly

    class Oracle:
        name = "perfect"

        def enhance(self, wav):
            return cleaner.astype(np.float32)

    enhancers.BUILDERS["perfect"] = Oracle
    try:
        ensemble = Ensemble(spec({"name": "noisy", "kind": "passthrough"}, {"name": "perfect", "kind": "perfect"}))
        sel = ensemble.enhance(noisy.astype(np.float32), sr=SR)
    finally:
        del enhancers.BUILDERS["perfect"]
    assert sel.chosen == "perfect" and sel.members[1].score > sel.members[0].score
    assert sel.selector.startswith("vqscore (vqscore-qe-cleanspeech@")


def test_vqscore_selector_pools_as_its_options_say(tmp_path):
    """The selector's `pooling` option replaces the model's pooling; its scores are the model's VQScores."""
    from tests.helpers import tiny_network
    from vqscore.bundle import save_bundle
    from vqscore.selectors import build_selector

    save_bundle(tiny_network("qe"), tmp_path, "qe", "0.0.1", {"source": "test"})
    rng = np.random.default_rng(1)
    outputs = [(0.1 * rng.standard_normal(8000)).astype(np.float32) for _ in range(3)]
    model = vqscore.load(str(tmp_path / "qe.json"))
    for pooling in ("mean", "p10"):
        selector = build_selector("vqscore", model=str(tmp_path / "qe.json"), pooling=pooling)
        assert selector.name.endswith(f", pooling {pooling})")
        expected = model.with_pooling(pooling).vqscore(outputs, sr=SR)
        np.testing.assert_allclose(selector.scores(outputs), expected, rtol=0, atol=1e-12)
    mean, p10 = (
        build_selector("vqscore", model=str(tmp_path / "qe.json"), pooling=p).scores(outputs) for p in ("mean", "p10")
    )
    assert np.all(p10 < mean)  # a low percentile of the frames, not their mean
    with pytest.raises(ValueError, match="pooling"):
        build_selector("vqscore", model=str(tmp_path / "qe.json"), pooling="max")


def test_select_command_writes_the_choice_and_a_row_per_file(kinds, tmp_path, capsys):
    import soundfile as sf

    data = tmp_path / "in"
    (data / "sub").mkdir(parents=True)
    sf.write(data / "a.wav", speech_like(1.0, seed=1), SR)
    sf.write(data / "sub" / "b.flac", speech_like(0.7, seed=2), 22_050)
    (data / "broken.wav").write_bytes(b"RIFF not audio")
    ens = tmp_path / "ens.json"
    ens.write_text(
        json.dumps(
            {
                "name": "t",
                "members": [
                    {"name": "noisy", "kind": "passthrough"},
                    {"name": "half", "kind": "gain", "options": {"gain": 0.5}},
                ],
            }
        )
    )
    out = tmp_path / "out"
    assert main(["select", str(data), "-o", str(out), "--ensemble", str(ens)]) == 1
    rows = read_rows(out / "select.csv", select_columns(("noisy", "half")))
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert set(by_name) == {"a.wav", "b.flac", "broken.wav"}
    assert by_name["broken.wav"]["error"] and not by_name["broken.wav"]["output"]
    for name in ("a.wav", "b.flac"):
        row = by_name[name]
        assert row["chosen"] in ("noisy", "half") and row["score:noisy"] and row["score:half"] and not row["error"]
        assert float(row[f"weight:{row['chosen']}"]) == 1.0 and float(row["weight:noisy"]) + float(row["weight:half"]) == 1.0
    y, rate = sf.read(out / "sub" / "b.wav")
    assert rate == 22_050  # the input's rate unless --rate
    assert (out / "a.wav").is_file()
    # a second run resumes: nothing is redone, the table keeps one row per file
    capsys.readouterr()
    assert main(["select", str(data), "-o", str(out), "--ensemble", str(ens)]) == 1
    assert "(3 already in" in capsys.readouterr().err
    assert len(read_rows(out / "select.csv", select_columns(("noisy", "half")))) == 3
