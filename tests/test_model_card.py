"""benchmarks/model_card.py: an enhancer's '## Measured quality' section is its own row of a selection benchmark,
written in place of the old section (the rest of the card kept)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

model_card = pytest.importorskip("benchmarks.model_card")


def row(pesq: float) -> dict:
    overall = {"pesq": pesq, "stoi": 0.85, "si_sdr": 10.0, "dnsmos_ovrl": 2.5, "vqscore": 0.776}
    return {"overall": overall, "-5..0 dB": pesq - 0.5, "15..20 dB": pesq + 0.5}


RESULTS = {
    "command": "python benchmarks/selection.py --set out/noisy-test",
    "set": {"path": "out/noisy-test", "files": 307},
    "selector_model": "vqscore-qe-cleanspeech@2.0.0#68445b182438, pooling mean",
    "machine": {"cpu_model": "AMD EPYC", "cpu_count": 2},
    "selections": {"the candidates ensemble": {"systems": {"unet-a": row(1.8), "unet-b": row(1.7)}}},
    "ranking": {"systems": [{"system": "noisy", "pesq": 1.49, "dnsmos_ovrl": 2.1}]},
}


def card_and_results(tmp_path, title: str, results: dict) -> tuple[Path, Path]:
    """A card with an unmeasured section between a title and notes, and a results file beside it."""
    card = tmp_path / "card.md"
    card.write_text(f"# {title}\n\n## Measured quality\nNot measured yet.\n\n## Notes\nkept\n")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return card, path


def test_enhancer_card_gets_its_own_row(tmp_path):
    card, results = card_and_results(tmp_path, "unet-b", RESULTS)
    model_card.main([str(card), str(results), "--system", "unet-b"])
    text = card.read_text()
    assert "| 1.700 | 0.850 | 10.00 | 2.50 | 0.776 | 1.200 | 2.200 |" in text
    assert "PESQ -5..0 dB | PESQ 15..20 dB |" in text and "unprocessed input: PESQ 1.490" in text
    assert "Not measured yet" not in text and text.endswith("## Notes\nkept\n")


def test_unknown_enhancer_is_named():
    with pytest.raises(SystemExit, match="'unet-z' is not a member measured in this selection benchmark"):
        model_card.enhancer_section(RESULTS, "unet-z")


def bag_row(tcd: float) -> dict:
    quality = {
        f"quality_{k}_srcc": v for k, v in zip(("pesq", "stoi", "si_sdr", "dnsmos_ovrl"), (0.6, 0.65, 0.55, 0.66), strict=True)
    }
    return {"tcd_srcc": tcd, "mushra_srcc": -0.01, "voicebank_pairs": 7, **quality}


BAG_RESULTS = {
    "command": "python benchmarks/bag.py",
    "members": ["m@1.0.0", "m-seed-1@1.0.0"],
    "machine": {"cpu_model": "Intel Xeon", "cpu_count": 2},
    "results": {
        "p25": {"m@1.0.0#aaaa": bag_row(0.57), "m-seed-1@1.0.0#bbbb": bag_row(0.49), "bag b (mean of 2)": bag_row(0.62)}
    },
}


def test_bag_member_card_gets_its_row_and_the_bags(tmp_path):
    card, results = card_and_results(tmp_path, "m-seed-1", BAG_RESULTS)
    model_card.main([str(card), str(results), "--member", "m-seed-1@1.0.0"])
    text = card.read_text()
    assert "| m-seed-1@1.0.0#bbbb | 0.490 | -0.010 | 7/7 | 0.600 | 0.650 | 0.550 | 0.660 |" in text
    assert "| bag b (mean of 2) | 0.620 |" in text and "m@1.0.0#aaaa" not in text
    assert "Not measured yet" not in text and text.endswith("## Notes\nkept\n")


def test_bag_member_card_refuses_a_stranger(tmp_path):
    card = tmp_path / "card.md"
    card.write_text("# x\n")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(BAG_RESULTS))
    with pytest.raises(SystemExit, match="'x@1.0.0' is not a member measured in this bag benchmark"):
        model_card.main([str(card), str(results), "--member", "x@1.0.0"])
