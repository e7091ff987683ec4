"""recipes/unet/pitch_split.py: the split of a corpus into low- and high-pitch manifests by speaker (held-out
speakers left out)."""

from __future__ import annotations

import csv
import json

import pytest
import soundfile as sf
from test_pitch import voice

pitch_split = pytest.importorskip("recipes.unet.pitch_split")


def test_split_writes_manifests_by_speaker(tmp_path):
    corpus = tmp_path / "corpus"
    for speaker, f0 in (("mlow", 110.0), ("fhigh", 230.0), ("kid", 300.0), ("heldout", 120.0)):
        (corpus / speaker).mkdir(parents=True)
        for k in range(2):
            sf.write(str(corpus / speaker / f"{k}.wav"), voice(f0, seed=k), 16000)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"toy": {"val": ["heldout"], "test": []}}))
    out = tmp_path / "pitch"
    assert pitch_split.main(["--sources", str(corpus), "--split", str(split), "--out", str(out)]) == 0

    def speakers(name):
        with open(out / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert all((out / r["path"]).is_file() for r in rows)  # paths relative to the manifest
        return sorted({r["speaker"] for r in rows})

    assert speakers("low") == ["mlow"]
    assert speakers("high") == ["fhigh", "kid"]
    with open(out / "speakers.csv", newline="") as f:
        table = {r["speaker"]: r for r in csv.DictReader(f)}
    assert set(table) == {"mlow", "fhigh", "kid"} and float(table["mlow"]["f0_hz"]) == pytest.approx(110.0, rel=0.03)
