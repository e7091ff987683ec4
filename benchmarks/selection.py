"""Selection and ranking benchmark (SSEMS, METHOD.md section 3): each ensemble member alone, the general model,
the pick of each selector, the oracle; and the ranking of enhancement systems by VQScore and by DNSMOS against
their PESQ ranking.

    python benchmarks/build_noisy_set.py --split test --out out/noisy-test
    python benchmarks/selection.py --set out/noisy-test                     # -> benchmarks/results/selection/

Every member of `--ensemble` (default: the shipped "default") enhances every noisy file of the set; each output
gets PESQ/STOI/SI-SDR against its clean reference and DNSMOS OVRL exactly as `benchmarks/enhance.py` labels them,
the VQScore and the reconstruction error (l2_x) of the default QE model. Outputs and labels are cached under
SET/enhanced/<member>-<hash of its definition and weights> (the cache `enhance.py` uses), so a rerun only computes
what is missing. The selectors then pick per file among the members (ties: the first listed): `vqscore`
(highest VQScore), `dnsmos` (highest DNSMOS OVRL), `ae-error` (lowest reconstruction error, the paper's baseline)
and `oracle` (highest PESQ). Selection accuracy is how often a selector's pick is the oracle's; "PESQ lost" is the
oracle's PESQ minus the pick's, averaged over the files where they differ. `--general` names the general model; the
share of the general-to-oracle gap a selector closes is (sel - general) / (oracle - general) in mean PESQ.
`--subset NAME=m1,m2,...` repeats the selection over fewer members (e.g. the U-Nets only, the paper's setting).

Ranking: the members, the extra `--system LABEL=KIND[:OPTION=VALUE,...]` enhancers (e.g. the stage-1 SE model, the
peers) and degraded variants of the general model's output (band-limited to 4 kHz, clipped at a quarter of its
peak, with white noise at 10 dB SNR) are ranked by mean PESQ, by `vqscore.ranking.rank_systems` with the VQScore
scorer (the code path of `vqscore rank`) and by mean DNSMOS OVRL; Kendall tau of each against the PESQ ranking.

Cost: `--cost-files N` files (default 20) go through `Ensemble.enhance` as a user would call it, timing the
members' enhancements and the selector's scoring separately.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks import build_noisy_set as N  # noqa: E402
from benchmarks import build_quality_set as Q  # noqa: E402
from benchmarks.enhance import (  # noqa: E402
    BANDS,
    System,
    band_of,
    enhance_all,
    fingerprint,
    label_all,
    load_entries,
    output_path,
    pick,
    save_json,
    vqscore_all,
    weights_fingerprint,
)
from benchmarks.speed import machine, shown  # noqa: E402
from recipes.common.metrics import spearman  # noqa: E402
from recipes.common.mixing import band_limit  # noqa: E402
from vqscore.bag import load_scorer  # noqa: E402
from vqscore.enhancers import build_enhancer  # noqa: E402
from vqscore.enhancers.base import EnhancerSpec  # noqa: E402
from vqscore.ensemble import Ensemble, EnsembleSpec, find_ensemble  # noqa: E402
from vqscore.ranking import LEVEL, RESAMPLES, model_scorer, rank_systems  # noqa: E402
from vqscore.selectors import build_selector  # noqa: E402

RATE = Q.RATE
METRICS = ("pesq", "stoi", "si_sdr", "dnsmos_ovrl", "vqscore")
SHOWN = {"pesq": "PESQ", "stoi": "STOI", "si_sdr": "SI-SDR", "dnsmos_ovrl": "DNSMOS", "vqscore": "VQScore"}
# selector -> (metric it maximises, sign): the AE baseline minimises the reconstruction error
SELECTORS = {"vqscore": ("vqscore", 1.0), "dnsmos": ("dnsmos_ovrl", 1.0), "ae-error": ("l2_x", -1.0), "oracle": ("pesq", 1.0)}


# ---------------------------------------------------------------- systems


def enhancer_system(name: str, kind: str, options: dict) -> System:
    """A member as a benchmark system, cached under its name and a hash of its definition and weights."""
    enhancer = build_enhancer(EnhancerSpec(kind, options))
    definition = json.dumps({"kind": kind, "options": options}, sort_keys=True) + weights_fingerprint(enhancer)
    key = f"{name}-{hashlib.sha1(definition.encode()).hexdigest()[:10]}"
    run = None if kind == "passthrough" else enhancer.enhance  # the noisy files themselves
    return System(name, key, enhancer.name, run, {"kind": kind, **options})


def parse_system(text: str) -> tuple[str, str, dict]:
    """LABEL=KIND[:OPTION=VALUE,...] -> (label, kind, options)."""
    label, _, rest = text.partition("=")
    kind, _, opts = rest.partition(":")
    options = dict(item.split("=", 1) for item in opts.split(",") if item)
    return label, kind, options


@dataclass(frozen=True)
class Degradation:
    label: str
    describe: str
    apply: object  # (samples,) -> (samples,)


def white_noise(y: np.ndarray, snr_db: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(int(np.abs(y[:64]).sum() * 1e6) % (2**32))
    noise = rng.standard_normal(y.shape).astype(np.float32)
    scale = np.sqrt(np.mean(y.astype(np.float64) ** 2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (y + scale * noise).astype(np.float32)


DEGRADATIONS = (
    Degradation(
        "lowpass-4k", "band-limited to 4 kHz (8th-order Butterworth)", lambda y: band_limit(y, 4000, "lowpass", order=8)
    ),
    Degradation(
        "clipped", "clipped at a quarter of its peak", lambda y: np.clip(y, -0.25 * np.abs(y).max(), 0.25 * np.abs(y).max())
    ),
    Degradation("white-10dB", "white noise added at 10 dB SNR", white_noise),
)


def degraded_system(base: System, d: Degradation) -> System:
    def run(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("degraded systems are made from the cached base outputs")  # never called: see degrade_all

    return System(f"{base.label}+{d.label}", f"{base.key}+{d.label}", f"{base.label} output, {d.describe}", run, {})


def degrade_all(system: System, base_folder: Path, d: Degradation, rows: list[dict], folder: Path) -> set[str]:
    """Write the degraded copies of the base system's cached outputs; returns the ids written now."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    timing = load_entries(folder / "timing.json", rows, fresh=False)
    todo = [r for r in rows if r["id"] not in timing or not (folder / f"{r['id']}.wav").is_file()]
    for r in todo:
        y, _ = Q.read_mono(base_folder / f"{r['id']}.wav")
        sf.write(os.fspath(folder / f"{r['id']}.wav"), np.asarray(d.apply(y), np.float32), RATE, subtype="FLOAT")
        timing[r["id"]] = {"fp": r["fp"], "seconds": 0.0}
    if todo:
        save_json(folder / "timing.json", timing)
    return {r["id"] for r in todo}


def ae_errors(system: System, rows: list[dict], root: Path, folder: Path, qe, redo: set[str]) -> dict:
    """l2_x (the QE model's reconstruction error) of every output, cached like the VQScores."""
    path = folder / f"l2x-{qe.weights_sha256[:12]}.json"
    cache = load_entries(path, rows, fresh=False)
    todo = [r for r in rows if r["id"] in redo or r["id"] not in cache]
    for start in range(0, len(todo), 32):
        chunk = todo[start : start + 32]
        scores = qe.score([Q.read_mono(output_path(system, r, root, folder))[0] for r in chunk], sr=RATE)
        for r, s in zip(chunk, scores, strict=True):
            cache[r["id"]] = {"fp": r["fp"], "l2_x": float(s.l2_x)}
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        save_json(path, cache)
    return cache


def measure(system: System, rows, root, cache_root, qe, selector_qe, workers) -> dict[str, dict]:
    """{id: {pesq, stoi, si_sdr, dnsmos_*, vqscore, l2_x}} of one system, computing only what is not cached;
    vqscore by `selector_qe` (the ensemble's selector: its model and pooling), l2_x by `qe`."""
    folder = cache_root / system.key
    print(f"{system.label} ({system.source})", flush=True)
    _, redo = enhance_all(system, rows, root, folder, False) if system.enhance is not None else (None, set())
    return collect(system, rows, root, folder, qe, selector_qe, workers, redo)


def collect(system, rows, root, folder, qe, selector_qe, workers, redo) -> dict[str, dict]:
    labels = label_all(system, rows, root, folder, True, workers, False, redo)
    scores = vqscore_all(system, rows, root, folder, selector_qe, False, redo)
    errors = ae_errors(system, rows, root, folder, qe, redo)
    return {r["id"]: {**labels[r["id"]], **scores[r["id"]], **errors[r["id"]]} for r in rows}


# ---------------------------------------------------------------- selection


def selector_model(spec: EnsembleSpec) -> vqscore.Model:
    """The model whose VQScores the `vqscore` selector compares: the ensemble's own selector's (its model and
    pooling) when it selects by VQScore, else the default's."""
    options = spec.selector.options if spec.selector.kind == "vqscore" else {}
    return build_selector("vqscore", **options).model


def mean(values) -> float | None:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    return float(x.mean()) if x.size else None


def metric_by_member(per_member: dict[str, dict[str, dict]], members: list[str], rows: list[dict], metric: str) -> np.ndarray:
    """(members, rows) float64 of one metric; NaN where a member's file lacks it."""
    return np.array([[per_member[m][r["id"]].get(metric, math.nan) for r in rows] for m in members], dtype=np.float64)


def choose(per_member: dict[str, dict[str, dict]], members: list[str], rows: list[dict]) -> dict[str, list[str]]:
    """selector -> the member picked for each row (ties and NaNs: the first member listed)."""
    picks = {}
    for selector, (metric, sign) in SELECTORS.items():
        values = sign * metric_by_member(per_member, members, rows, metric)
        picks[selector] = [members[vqscore.selectors.pick(values[:, k])] for k in range(len(rows))]
    return picks


def summarise_selection(per_member, members, rows, general) -> dict:
    picks = choose(per_member, members, rows)
    bands = {}
    for k, r in enumerate(rows):
        bands.setdefault(band_of(r), []).append(k)
    out = {"members": members, "systems": {}, "accuracy": {}, "picked": {}}

    def stats(chosen_of: list[str], index: list[int]) -> dict:
        return {m: mean(per_member[chosen_of[k]][rows[k]["id"]].get(m) for k in index) for m in METRICS}

    everything = list(range(len(rows)))
    for m in members:
        out["systems"][m] = {
            "overall": stats([m] * len(rows), everything),
            **{b: stats([m] * len(rows), i)["pesq"] for b, i in bands.items()},
        }
    for s, chosen in picks.items():
        out["systems"][f"select:{s}"] = {
            "overall": stats(chosen, everything),
            **{b: stats(chosen, i)["pesq"] for b, i in bands.items()},
        }
        out["picked"][s] = {m: chosen.count(m) for m in members}
    oracle = picks["oracle"]
    for s in ("vqscore", "dnsmos", "ae-error"):
        chosen = picks[s]
        acc = {}
        for b, index in [("overall", everything), *bands.items()]:
            agree = [k for k in index if chosen[k] == oracle[k]]
            lost = [
                per_member[oracle[k]][rows[k]["id"]]["pesq"] - per_member[chosen[k]][rows[k]["id"]]["pesq"]
                for k in index
                if chosen[k] != oracle[k]
            ]
            acc[b] = {"accuracy": len(agree) / len(index), "pesq_lost_when_wrong": mean(lost), "n": len(index)}
        out["accuracy"][s] = acc
    out["uncertainty"] = selection_uncertainty(per_member, members, rows, picks, general)
    out["agreement"] = paired_agreement(per_member, members, rows)
    g = out["systems"][general]["overall"]["pesq"] if general in members else None
    o = out["systems"]["select:oracle"]["overall"]["pesq"]
    out["gap_closed"] = {
        s: (out["systems"][f"select:{s}"]["overall"]["pesq"] - g) / (o - g) if g is not None and o > g else None
        for s in ("vqscore", "dnsmos", "ae-error")
    }
    out["bands"] = [b for b, _ in BANDS if b in bands] + ([N.REAL] if N.REAL in bands else [])
    return out


def bootstrap_ci(n: int, statistic, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> list[float]:
    """Percentile bootstrap interval of `statistic(index)` over n files drawn with replacement; index: (n,) ints.
    Paired: every quantity inside one statistic sees the same draw of files."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(resamples)], dtype=np.float64)
    tail = (1.0 - level) / 2.0
    return [float(v) for v in np.nanquantile(values, [tail, 1.0 - tail])]


def selection_uncertainty(per_member, members: list[str], rows: list[dict], picks: dict[str, list[str]], general: str) -> dict:
    """How sure the two headline numbers are over this set of files: each selector's mean PESQ minus the best
    single member's (the member best over the resampled files, so the comparison is the target's), and its share
    of the general-to-oracle gap, with paired bootstrap intervals over files."""
    pesq = metric_by_member(per_member, members, rows, "pesq")
    column = np.arange(len(rows))
    chosen = {s: pesq[[members.index(m) for m in picks[s]], column] for s in ("vqscore", "dnsmos", "ae-error", "oracle")}
    g = members.index(general) if general in members else None

    def margin(s: str):
        return lambda i: chosen[s][i].mean() - pesq[:, i].mean(axis=1).max()

    def gap(s: str):
        def share(i):
            base, top = pesq[g, i].mean(), chosen["oracle"][i].mean()
            return (chosen[s][i].mean() - base) / (top - base) if top > base else math.nan

        return share

    out = {}
    for s in ("vqscore", "dnsmos", "ae-error"):
        out[s] = {"minus_best_member": margin(s)(column), "minus_best_member_ci": bootstrap_ci(len(rows), margin(s))}
        if g is not None:
            out[s] |= {"gap_closed": gap(s)(column), "gap_closed_ci": bootstrap_ci(len(rows), gap(s))}
    return out


def paired_agreement(per_member, members: list[str], rows: list[dict]) -> dict:
    """How well each selector's score tells, file by file, which of two outputs has the higher PESQ: for every member
    against the best single member (mean PESQ), the Spearman correlation over files between the two outputs' score
    difference and their PESQ difference, and the share of files where the two differences have the same sign
    (files where either is zero left out). A selector can only beat its best member by as much as this resolves."""
    pesq = metric_by_member(per_member, members, rows, "pesq")
    best = int(np.nanargmax(np.nanmean(pesq, axis=1)))
    out = {"reference": members[best], "selectors": {}}
    for s, (metric, sign) in SELECTORS.items():
        if s == "oracle":
            continue
        score = sign * metric_by_member(per_member, members, rows, metric)
        pairs = {}
        for k, m in enumerate(members):
            if k == best:
                continue
            dp, ds = pesq[k] - pesq[best], score[k] - score[best]
            ok = np.isfinite(dp) & np.isfinite(ds)
            moved = ok & (dp != 0) & (ds != 0)
            rho = spearman(ds[ok], dp[ok]) if ok.sum() > 2 else math.nan  # NaN too when either side is constant
            pairs[m] = {
                "spearman": rho if math.isfinite(rho) else None,
                "sign_agreement": float(np.mean(np.sign(ds[moved]) == np.sign(dp[moved]))) if moved.any() else None,
            }
        out["selectors"][s] = {
            "pairs": pairs,
            "spearman": mean(p["spearman"] for p in pairs.values()),
            "sign_agreement": mean(p["sign_agreement"] for p in pairs.values()),
        }
    return out


def selected_pesq(per_member: dict[str, dict[str, dict]], members: list[str], rows: list[dict]) -> float:
    """Mean PESQ of the VQScore selector's picks among `members`."""
    chosen = choose(per_member, members, rows)["vqscore"]
    return mean(per_member[m][r["id"]]["pesq"] for m, r in zip(chosen, rows, strict=True))


def prune(per_member: dict[str, dict[str, dict]], members: list[str], rows: list[dict], keep: str, tolerance: float) -> dict:
    """Backward elimination of members (never `keep`, the general model): drop, one at a time, the member whose
    removal leaves the highest VQScore-selection PESQ, while that stays within `tolerance` of the best reached so far
    (each member costs one enhancement per file, so a member that buys less than the tolerance goes). Meant for a
    validation set: the kept members define the shipped ensemble, the test set only reports."""
    current = list(members)
    best = selected_pesq(per_member, current, rows)
    steps = [{"dropped": None, "members": list(current), "pesq": best}]
    while len(current) > 2:
        candidates = [(selected_pesq(per_member, [m for m in current if m != x], rows), x) for x in current if x != keep]
        value, dropped = max(candidates)
        if value < best - tolerance:
            break
        current.remove(dropped)
        best = max(best, value)
        steps.append({"dropped": dropped, "members": list(current), "pesq": value})
    return {"tolerance": tolerance, "keep": keep, "steps": steps, "members": current}


# ---------------------------------------------------------------- ranking


def kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def ranking(systems: list[tuple[System, Path]], per_system: dict[str, dict], rows, root, qe) -> dict:
    """Mean PESQ, VQScore (through `rank_systems`, the code path of `vqscore rank`) and DNSMOS of every system."""
    import tempfile

    names = [s.label for s, _ in systems]
    with tempfile.TemporaryDirectory() as tmp:
        # each system's outputs for exactly these rows (a cache folder may hold more, from a larger run)
        folders = []
        for k, (s, folder) in enumerate(systems):
            linked = Path(tmp) / str(k)
            linked.mkdir()
            for r in rows:
                (linked / f"{r['id']}.wav").symlink_to(output_path(s, r, root, folder))
            folders.append(linked)
        ranked = rank_systems(folders, model_scorer(qe), names=names, resamples=1000, seed=0)
    by_name = {s.name: s for s in ranked.systems}
    ids = [Path(f).stem for f in ranked.files]

    def per_file(label: str) -> np.ndarray:
        """(systems, files) in the ranking's order, for the bootstrap."""
        return np.array([[per_system[s.name][i][label] for i in ids] for s in ranked.systems], dtype=np.float64)

    table = []
    for name in names:
        table.append(
            {
                "system": name,
                "pesq": mean(per_system[name][r["id"]]["pesq"] for r in rows),
                "dnsmos_ovrl": mean(per_system[name][r["id"]].get("dnsmos_ovrl") for r in rows),
                "vqscore": by_name[name].mean,
                "vqscore_ci": [by_name[name].ci_low, by_name[name].ci_high],
            }
        )
    pesq = [t["pesq"] for t in table]
    return {
        "systems": table,
        "files": ranked.common,
        "kendall_tau_vqscore": kendall_tau(pesq, [t["vqscore"] for t in table]),
        "kendall_tau_vqscore_ci": tau_interval(per_file("pesq"), ranked.scores),
        "kendall_tau_dnsmos": kendall_tau(pesq, [t["dnsmos_ovrl"] for t in table]),
        "kendall_tau_dnsmos_ci": tau_interval(per_file("pesq"), per_file("dnsmos_ovrl")),
    }


def tau_interval(labels: np.ndarray, scores: np.ndarray) -> list[float]:
    """Bootstrap interval of the Kendall tau between systems' mean label and mean score; both (systems, files),
    each draw of files recomputing every system's two means on the same files."""
    return bootstrap_ci(labels.shape[1], lambda i: kendall_tau(labels[:, i].mean(axis=1), scores[:, i].mean(axis=1)))


# ---------------------------------------------------------------- cost


def cost(ensemble: Ensemble, rows: list[dict], root: Path, count: int) -> dict:
    chosen = pick(rows, count)
    audio = [Q.read_mono(root / r["noisy"])[0] for r in chosen]
    ensemble.enhance(audio[0], sr=RATE)  # untimed warm-up
    members = {m: 0.0 for m in ensemble.member_names}
    scoring = total = 0.0
    for x in audio:
        start = time.perf_counter()
        sel = ensemble.enhance(x, sr=RATE)
        total += time.perf_counter() - start
        scoring += sel.score_seconds
        for m in sel.members:
            members[m.member] += m.seconds
    seconds = sum(len(x) for x in audio) / RATE
    return {
        "files": len(audio),
        "audio_seconds": round(seconds, 2),
        "total_seconds": round(total, 3),
        "member_seconds": {m: round(v, 3) for m, v in members.items()},
        "enhance_seconds": round(sum(members.values()), 3),
        "score_seconds": round(scoring, 3),
        "rtf": seconds / total,
    }


# ---------------------------------------------------------------- report


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def selection_table(sel: dict) -> list[str]:
    bands = sel["bands"]
    lines = ["| system | " + " | ".join(SHOWN[m] for m in METRICS) + " | " + " | ".join(f"PESQ {b}" for b in bands) + " |"]
    lines.append("|---" * (1 + len(METRICS) + len(bands)) + "|")
    for name, s in sel["systems"].items():
        cells = [fmt(s["overall"][m], 3 if m in ("pesq", "stoi", "vqscore") else 2) for m in METRICS]
        cells += [fmt(s.get(b), 3) for b in bands]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def accuracy_table(sel: dict) -> list[str]:
    cols = ["overall", *sel["bands"]]
    lines = ["| selector | " + " | ".join(cols) + " |", "|---" * (1 + len(cols)) + "|"]
    for s, acc in sel["accuracy"].items():
        cells = [f"{acc[c]['accuracy']:.0%} (−{fmt(acc[c]['pesq_lost_when_wrong'])})" for c in cols]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def interval(ci: list[float], digits: int) -> str:
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def uncertainty_lines(u: dict | None) -> list[str]:
    """The selection's margin over the best single member and its gap share, with 95% bootstrap intervals."""
    if not u:
        return []
    return [
        "Over resampled files (paired bootstrap, 95% intervals): selection minus the best single member, mean PESQ: "
        + ", ".join(f"{s} {v['minus_best_member']:+.3f} ({interval(v['minus_best_member_ci'], 3)})" for s, v in u.items())
        + "; gap share: "
        + ", ".join(f"{s} {interval(v['gap_closed_ci'], 2)}" for s, v in u.items() if "gap_closed_ci" in v)
        + ".",
        "",
    ]


def agreement_lines(a: dict | None) -> list[str]:
    """Per-file agreement of each selector with PESQ on pairs of outputs (see `paired_agreement`)."""
    if not a:
        return []
    return [
        f"Per file, each member against the best single member (`{a['reference']}`): Spearman correlation of the "
        "score difference with the PESQ difference, and the share of files where their signs agree: "
        + ", ".join(f"{s} {fmt(v['spearman'])} ({fmt(v['sign_agreement'])})" for s, v in a["selectors"].items())
        + " (mean over the members).",
        "",
    ]


def markdown(result: dict) -> str:
    lines = [
        "# Selection and ranking benchmark",
        "",
        f"`{result['command']}`",
        "",
        f"Set `{result['set']['path']}`: {result['set']['files']} noisy/clean pairs. Ensemble `{result['ensemble']}`; VQScore "
        f"(the tables' and the selector's) by `{result['selector_model']}`; reconstruction error by `{result['qe_model']}`. Machine: {result['machine']['cpu_model'] or result['machine']['processor']}, "
        f"{result['machine']['cpu_count']} CPUs, torch {result['machine']['torch']}.",
        "",
    ]
    for name, sel in result["selections"].items():
        lines += [
            f"## Selection among {name}: {', '.join(sel['members'])}",
            "",
            "Mean per file; `select:X` keeps, per file, the member selector X prefers; higher is better everywhere.",
            "",
            *selection_table(sel),
            "",
            "Selection accuracy (agreement with the PESQ oracle) and, in brackets, the mean PESQ lost on the files "
            "where the pick differs from the oracle's:",
            "",
            *accuracy_table(sel),
            "",
            f"Share of the general-to-oracle PESQ gap closed (general: `{result['general']}`): "
            + ", ".join(f"{s} {fmt(v, 2)}" for s, v in sel["gap_closed"].items()),
            "",
            *uncertainty_lines(sel.get("uncertainty")),
            *agreement_lines(sel.get("agreement")),
            "Picks per member: "
            + "; ".join(f"{s}: " + ", ".join(f"{m} {n}" for m, n in counts.items()) for s, counts in sel["picked"].items()),
            "",
        ]
    if result.get("pruned"):
        pr = result["pruned"]
        lines += [
            f"## Pruning the members (backward elimination, tolerance {pr['tolerance']:g} PESQ)",
            "",
            "Mean PESQ of the VQScore selection as members are dropped (the general model always stays): "
            + "; ".join(f"{'all' if st['dropped'] is None else '- ' + st['dropped']}: {st['pesq']:.3f}" for st in pr["steps"])
            + f". Kept: {', '.join(pr['members'])} (written to `pruned.json`).",
            "",
        ]
    rk = result["ranking"]
    lines += [
        "## Ranking systems without references",
        "",
        f"{len(rk['systems'])} systems on {rk['files']} files. Kendall tau against the PESQ ranking: VQScore "
        f"(`vqscore rank`, {rk.get('model', result['qe_model'])}) **{rk['kendall_tau_vqscore']:.3f}**"
        + (f" (95% CI {interval(rk['kendall_tau_vqscore_ci'], 2)} over files)" if "kendall_tau_vqscore_ci" in rk else "")
        + ", DNSMOS OVRL "
        + f"{rk['kendall_tau_dnsmos']:.3f}"
        + (f" ({interval(rk['kendall_tau_dnsmos_ci'], 2)})" if "kendall_tau_dnsmos_ci" in rk else "")
        + "".join(f"; with pooling {p}: {tau:.3f}" for p, tau in rk.get("other_poolings", {}).items())
        + ".",
        "",
        "| system | PESQ | VQScore (95% CI) | DNSMOS OVRL |",
        "|---|---|---|---|",
    ]
    for t in sorted(rk["systems"], key=lambda t: -t["pesq"]):
        lines.append(
            f"| {t['system']} | {fmt(t['pesq'], 3)} | {fmt(t['vqscore'], 4)} ({fmt(t['vqscore_ci'][0], 4)}–{fmt(t['vqscore_ci'][1], 4)}) "
            f"| {fmt(t['dnsmos_ovrl'], 3)} |"
        )
    c = result["cost"]
    lines += [
        "",
        "## Cost of a selection",
        "",
        f"`Ensemble.enhance` of `{c.get('ensemble', result['ensemble'])}` on {c['files']} files ({c['audio_seconds']:.0f} s of audio): {c['total_seconds']:.1f} s in all "
        f"(RTF {c['rtf']:.1f}), of which the members' enhancements {c['enhance_seconds']:.1f} s and the selector's "
        f"scoring of the {len(c['member_seconds'])} outputs {c['score_seconds']:.1f} s. Per member: "
        + ", ".join(f"{m} {v:.1f} s" for m, v in c["member_seconds"].items())
        + ".",
        "",
        "## Systems",
        "",
    ]
    for label, source in result["sources"].items():
        lines.append(f"- `{label}`: {source}")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the shipped ensemble's selection when it is among them (a --subset named "default"), else the first
    sel = result["selections"].get("default") or next(iter(result["selections"].values()))
    bands = sel["bands"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(bands))
    shown_systems = [result["general"], "select:ae-error", "select:dnsmos", "select:vqscore", "select:oracle"]
    for k, name in enumerate(s for s in shown_systems if s in sel["systems"]):
        left.bar(x + (k - 2) * 0.16, [sel["systems"][name].get(b) or 0 for b in bands], 0.16, label=name)
    left.set_xticks(x, bands)
    left.set_ylabel("mean PESQ (wb)")
    left.set_title("Enhanced PESQ per input SNR band")
    left.legend(fontsize=8)
    for s in ("vqscore", "dnsmos", "ae-error"):
        right.plot(bands, [sel["accuracy"][s][b]["accuracy"] for b in bands], marker="o", label=s)
    right.set_ylim(0, 1)
    right.set_ylabel("agreement with the PESQ oracle")
    right.set_title("Selection accuracy per input SNR band")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, required=True, help="a build_noisy_set.py output folder (manifest.csv)")
    parser.add_argument("--ensemble", default="default", help="shipped ensemble name or ensemble file (default: default)")
    parser.add_argument("--general", default="unet-general", help="the member that is the general model")
    parser.add_argument(
        "--subset", action="append", default=[], metavar="NAME=m1,m2,...", help="also select among these members"
    )
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="LABEL=KIND[:OPTION=VALUE,...]",
        help="an extra system for the ranking (repeat), e.g. stage1=bundle:model=vqscore-se-cleanspeech-stage1",
    )
    parser.add_argument(
        "--degradations",
        default=",".join(d.label for d in DEGRADATIONS),
        help=f"degraded variants of the general model for the ranking, among {', '.join(d.label for d in DEGRADATIONS)} (default all)",
    )
    parser.add_argument(
        "--selector-pooling",
        choices=vqscore.pooling.POOLINGS,
        help="pool the VQScore selector's frames this way instead of as the ensemble file says (validation sweeps)",
    )
    parser.add_argument(
        "--prune",
        type=float,
        metavar="TOLERANCE",
        help="also drop members while the VQScore selection's mean PESQ stays within TOLERANCE of its best; writes "
        "OUT/pruned.json, the ensemble of the kept members (run it on a validation set)",
    )
    parser.add_argument(
        "--rank-model",
        default="default",
        help="the QE model or bag of models `vqscore rank` ranks with (`vqscore rank --model`; default: default)",
    )
    parser.add_argument(
        "--rank-pooling",
        nargs="+",
        choices=vqscore.pooling.POOLINGS,
        help="rank with this pooling (`vqscore rank --pooling`) instead of the model's; more than one: the table is "
        "the first's, the Kendall tau of the others is reported beside it",
    )
    parser.add_argument("--cost-ensemble", help="time this ensemble (name or file) instead of --ensemble")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "selection")
    parser.add_argument("--max-files", type=int, default=None, help="N files spread evenly over the set (development)")
    parser.add_argument("--cost-files", type=int, default=20, help="files timed through Ensemble.enhance (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads while enhancing (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="label processes (default 2)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    root = args.set.resolve()
    rows = pick(Q.read_manifest(root / "manifest.csv"), args.max_files)
    for r in rows:
        r["fp"] = fingerprint(root, r)
    cache_root = root / "enhanced"
    spec = EnsembleSpec.read(find_ensemble(args.ensemble))
    if args.selector_pooling:
        if spec.selector.kind != "vqscore":
            parser.error(f"--selector-pooling: the selector of {spec.name} is {spec.selector.kind!r}, not 'vqscore'")
        spec = dataclasses.replace(
            spec,
            selector=dataclasses.replace(spec.selector, options={**spec.selector.options, "pooling": args.selector_pooling}),
        )
    qe = vqscore.load("default")
    selector_qe = selector_model(spec)
    started = time.perf_counter()

    members = [enhancer_system(m.name, m.kind, m.options) for m in spec.members]
    extra = [enhancer_system(*parse_system(text)) for text in args.system]
    per_system, folders = {}, {}
    for s in members + extra:
        per_system[s.label] = measure(s, rows, root, cache_root, qe, selector_qe, args.workers)
        folders[s.label] = cache_root / s.key
    general = next((s for s in members if s.label == args.general), None)
    degraded = []
    if general is not None and general.enhance is not None:
        for d in (d for d in DEGRADATIONS if d.label in args.degradations.split(",")):
            s = degraded_system(general, d)
            folder = cache_root / s.key
            print(f"{s.label} ({s.source})", flush=True)
            redo = degrade_all(s, folders[general.label], d, rows, folder)
            per_system[s.label] = collect(s, rows, root, folder, qe, selector_qe, args.workers, redo)
            folders[s.label] = folder
            degraded.append(s)

    names = [m.name for m in spec.members]
    subsets = {f"the {spec.name} ensemble": names}
    for text in args.subset:
        label, _, listed = text.partition("=")
        subsets[label] = [m for m in listed.split(",") if m]
        unknown = sorted(set(subsets[label]) - set(names))
        if unknown:
            parser.error(f"--subset {label}: {unknown} are not members of {spec.name}")
    selections = {
        label: summarise_selection({m: per_system[m] for m in subset}, subset, rows, args.general)
        for label, subset in subsets.items()
    }
    pruned = None
    if args.prune is not None:
        pruned = prune({m: per_system[m] for m in names}, names, rows, args.general, args.prune)
        kept = set(pruned["members"])
        pruned_spec = dataclasses.replace(
            spec,
            name=f"{spec.name}-pruned",
            members=tuple(m for m in spec.members if m.name in kept),
            description=f"{spec.name} pruned on {shown(root)} by benchmarks/selection.py --prune {args.prune:g}",
        )
    ranked_systems = [(s, folders[s.label]) for s in members + extra + degraded]
    rank_model = load_scorer(args.rank_model)
    rankers = (
        {p: rank_model.with_pooling(p) for p in args.rank_pooling} if args.rank_pooling else {rank_model.pooling: rank_model}
    )
    ranks = {p: ranking(ranked_systems, per_system, rows, root, r) for p, r in rankers.items()}
    first = next(iter(ranks))
    rank = ranks[first] | {
        "model": f"{rankers[first].tag}, pooling {first}",
        "other_poolings": {p: r["kendall_tau_vqscore"] for p, r in ranks.items() if p != first},
    }
    ensemble = Ensemble(EnsembleSpec.read(find_ensemble(args.cost_ensemble)) if args.cost_ensemble else spec)
    timing = cost(ensemble, rows, root, args.cost_files)

    script = shown(sys.argv[0]) if argv is None else "benchmarks/selection.py"
    result = {
        "command": shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)]),
        "set": {"path": shown(root), "files": len(rows)},
        "ensemble": spec.name,
        "ensemble_definition": spec.to_dict(),
        "general": args.general,
        "qe_model": qe.tag,
        "selector_model": f"{selector_qe.tag}, pooling {selector_qe.pooling}",
        "machine": machine(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "selections": selections,
        "pruned": pruned,
        "ranking": rank,
        "cost": {"ensemble": ensemble.spec.name, **timing},
        "sources": {s.label: s.source for s, _ in ranked_systems},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(result))
    if pruned is not None:
        (args.out / "pruned.json").write_text(json.dumps(pruned_spec.to_dict(), indent=2) + "\n")
    plot(result, args.out / "selection.png")
    print(f"wrote {args.out / 'results.md'} ({result['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
