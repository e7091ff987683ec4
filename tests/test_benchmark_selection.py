"""benchmarks/selection.py's bookkeeping on hand-made per-file labels: the selectors' picks (first listed on a tie),
the share of the general-to-oracle gap, and the backward elimination that chose the shipped ensemble's members."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

selection = pytest.importorskip("benchmarks.selection")

ROWS = [{"id": f"f{k}", "condition": "noise:x", "snr_db": "0"} for k in range(4)]


def member(pesq: list[float], vq: list[float]) -> dict[str, dict]:
    return {
        f"f{k}": {"pesq": p, "vqscore": v, "dnsmos_ovrl": v, "l2_x": -v} for k, (p, v) in enumerate(zip(pesq, vq, strict=True))
    }


# "general" is good everywhere; "a" wins f0 and f1 and VQScore sees it; "b" wins f2 but VQScore prefers it on f3,
# where it is bad; "c" is never picked.
MEMBERS = {
    "general": member([2.0, 2.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.5]),
    "a": member([2.5, 2.4, 1.0, 1.0], [0.6, 0.6, 0.1, 0.1]),
    "b": member([1.0, 1.0, 2.6, 1.2], [0.1, 0.1, 0.4, 0.9]),
    "c": member([1.5, 1.5, 1.5, 1.5], [0.5, 0.5, 0.5, 0.5]),
}


def test_picks_gap_and_first_listed_ties():
    names = list(MEMBERS)
    picks = selection.choose(MEMBERS, names, ROWS)
    assert picks["vqscore"] == ["a", "a", "general", "b"]
    assert picks["oracle"] == ["a", "a", "b", "general"]
    assert selection.choose(MEMBERS, ["general", "c"], ROWS)["vqscore"] == ["general"] * 4  # tie: first listed
    summary = selection.summarise_selection(MEMBERS, names, ROWS, "general")
    assert summary["systems"]["select:vqscore"]["overall"]["pesq"] == pytest.approx((2.5 + 2.4 + 2.0 + 1.2) / 4)
    oracle = (2.5 + 2.4 + 2.6 + 2.0) / 4
    assert summary["gap_closed"]["vqscore"] == pytest.approx(((2.5 + 2.4 + 2.0 + 1.2) / 4 - 2.0) / (oracle - 2.0))
    assert summary["accuracy"]["vqscore"]["overall"]["accuracy"] == pytest.approx(0.5)


def test_prune_drops_what_does_not_pay_and_keeps_the_general_model():
    names = list(MEMBERS)
    result = selection.prune(MEMBERS, names, ROWS, keep="general", tolerance=0.0)
    # dropping b removes its bad pick on f3 (2.025 -> 2.225), then c changes nothing; a is worth 0.425: kept
    assert [s["dropped"] for s in result["steps"]] == [None, "b", "c"]
    assert result["members"] == ["general", "a"]
    assert result["steps"][1]["pesq"] == pytest.approx((2.5 + 2.4 + 2.0 + 2.0) / 4)
    kept = selection.prune(MEMBERS, names, ROWS, keep="general", tolerance=1.0)["members"]
    assert "general" in kept and len(kept) == 2  # a large tolerance shrinks to two members, never below


def test_uncertainty_is_the_margin_over_the_best_member_and_collapses_on_identical_files():
    names = list(MEMBERS)
    u = selection.summarise_selection(MEMBERS, names, ROWS, "general")["uncertainty"]["vqscore"]
    assert u["minus_best_member"] == pytest.approx((2.5 + 2.4 + 2.0 + 1.2) / 4 - 2.0)  # general (2.0) is best alone
    oracle = (2.5 + 2.4 + 2.6 + 2.0) / 4
    assert u["gap_closed"] == pytest.approx(((2.5 + 2.4 + 2.0 + 1.2) / 4 - 2.0) / (oracle - 2.0))
    assert u["minus_best_member_ci"][0] < u["minus_best_member"] < u["minus_best_member_ci"][1]
    # four copies of f0 (a wins by 0.5 and VQScore picks it): every resample is the same set, so no spread
    same = {m: {f"f{k}": v["f0"] for k in range(4)} for m, v in MEMBERS.items()}
    u = selection.summarise_selection(same, names, ROWS, "general")["uncertainty"]["vqscore"]
    assert u["minus_best_member_ci"] == pytest.approx([0.0, 0.0])  # the selection is a's output: a is the best member
    assert u["gap_closed_ci"] == pytest.approx([1.0, 1.0])


def test_tau_interval_resamples_files_of_every_system_together():
    import numpy as np

    labels = np.array([[3.0 + 0.1 * k for k in range(5)], [2.0 + 0.1 * k for k in range(5)], [1.0] * 5])
    agree = np.array([[0.9] * 5, [0.8] * 5, [0.7] * 5])
    assert selection.tau_interval(labels, agree) == pytest.approx([1.0, 1.0])
    assert selection.tau_interval(labels, agree[::-1]) == pytest.approx([-1.0, -1.0])
    # file 0 reverses x and y: draws without it agree fully (tau 1, p = 0.8^5); with it, y ranks above x, and with
    # it three times or more (p = 0.058 > 2.5 %) x falls below z as well (tau -1/3)
    mixed = np.array([[0.5, 0.9, 0.9, 0.9, 0.9], [2.0, 0.8, 0.8, 0.8, 0.8], [0.7] * 5])
    low, high = selection.tau_interval(labels, mixed)
    assert low == pytest.approx(-1 / 3) and high == pytest.approx(1.0)


def test_paired_agreement_compares_every_member_with_the_best_one_file_by_file():
    names = list(MEMBERS)
    a = selection.summarise_selection(MEMBERS, names, ROWS, "general")["agreement"]
    assert a["reference"] == "general"  # mean PESQ 2.0, above a's 1.725
    vq = a["selectors"]["vqscore"]["pairs"]
    # a - general: PESQ +0.5 +0.4 -1 -1, VQScore +0.1 +0.1 -0.4 -0.4: same signs; ranks (4, 3, 1.5, 1.5) against
    # (3.5, 3.5, 1.5, 1.5), whose Pearson correlation is 4 / sqrt(18) (VQScore ties f0 and f1, PESQ does not)
    assert vq["a"] == {"spearman": pytest.approx(4 / 18**0.5), "sign_agreement": 1.0}
    # b - general: PESQ -1 -1 +0.6 -0.8, VQScore -0.4 -0.4 -0.1 +0.4: f2's and f3's signs are wrong
    assert vq["b"]["sign_agreement"] == pytest.approx(0.5)
    # c - general: PESQ -0.5 everywhere, VQScore difference 0 everywhere: no sign to agree with, no order
    assert vq["c"] == {"spearman": None, "sign_agreement": None}
    assert selection.mean([vq["a"]["spearman"], vq["b"]["spearman"]]) == pytest.approx(a["selectors"]["vqscore"]["spearman"])
    # the AE error is scored with its sign flipped (lower error is better): l2_x = -vq gives the same agreement
    assert a["selectors"]["ae-error"]["pairs"]["a"]["sign_agreement"] == 1.0
    assert "oracle" not in a["selectors"]


def test_soft_selection_mixes_cached_outputs_and_measures_against_the_average(tmp_path):
    import numpy as np
    import soundfile as sf

    soft = pytest.importorskip("benchmarks.soft_selection")
    rows = [{"id": f"f{k}", "fp": f"p{k}", "condition": "noise:x", "snr_db": "0", "source": "s"} for k in range(2)]
    folders = {m: tmp_path / m for m in ("a", "b")}
    for m, gain in (("a", 1.0), ("b", 3.0)):
        folders[m].mkdir()
        for r in rows:
            sf.write(folders[m] / f"{r['id']}.wav", np.full(160, 0.1 * gain, np.float32), 16000, subtype="FLOAT")
    scores = np.array([[0.0, 0.0], [1.0, 0.0]])  # (members, files): on f0 b scores 1 above a; on f1 a tie
    system = soft.mix_system(["a", "b"], folders, 1.0, "sel")
    assert system.enhance is not None  # None would mean "the noisy input" to the labeller
    assert (
        soft.mix_system(["a", "b"], folders, 0.5, "sel").key
        != system.key
        != soft.mix_system(["a", "b"], folders, None, "sel").key
    )
    assert soft.mix_all(system, ["a", "b"], folders, scores, 1.0, rows, tmp_path / "mix") == {"f0", "f1"}
    wb = np.e / (1 + np.e)
    np.testing.assert_allclose(sf.read(tmp_path / "mix" / "f0.wav")[0], 0.1 * ((1 - wb) + 3 * wb), rtol=1e-6)
    np.testing.assert_allclose(sf.read(tmp_path / "mix" / "f1.wav")[0], 0.2, rtol=1e-6)  # a tie: equal weights
    assert soft.mix_all(system, ["a", "b"], folders, scores, 1.0, rows, tmp_path / "mix") == set()  # cached

    per = {
        "a": member([2.0, 1.0, 2.0, 1.0], [0.1, 0.0, 0.1, 0.0]),
        "b": member([1.0, 2.0, 1.0, 2.0], [0.0, 0.1, 0.0, 0.1]),
        "average": member([1.6, 1.6, 1.6, 1.6], [0.0] * 4),
        "soft:1": member([1.9, 1.9, 1.9, 1.9], [0.0] * 4),
    }
    summary = soft.summarise(per, ["a", "b"], ["average", "soft:1"], ROWS, "a")
    g = summary["groups"]["all"]
    assert g["pesq"]["select:vqscore"] == pytest.approx(2.0) and g["pesq"]["select:oracle"] == pytest.approx(2.0)
    assert g["soft:1"]["minus_best_member"] == pytest.approx(0.4) and g["soft:1"]["minus_average"] == pytest.approx(0.3)
    assert g["average"]["minus_best_member"] == pytest.approx(0.1) and "minus_average" not in g["average"]
    assert g["soft:1"]["gap_closed"] == pytest.approx((1.9 - 1.5) / (2.0 - 1.5))
    assert list(summary["groups"]) == ["all", "band -5..0 dB"]
    pytest.importorskip("matplotlib")
    result = {"summary": summary, "mixes": ["average", "soft:1"], "ensemble": "t", "set": {"path": "x", "files": 4}}
    soft.plot(result, tmp_path / "soft.png")
    assert (tmp_path / "soft.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| soft:1 | 1.900 |" in soft.markdown(
        {
            **result,
            "command": "c",
            "machine": {"cpu_model": "m", "cpu_count": 2, "torch": "t"},
            "selector_model": "s",
            "wall_seconds": 1.0,
        }
    )
