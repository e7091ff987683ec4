"""Soft selection benchmark (issue 11, eighth round): the members' outputs mixed per file with softmax weights of
their VQScores (`vqscore.selectors.weights`, what `Ensemble.select` does when the ensemble's selector has a
temperature), against each member, the hard pick, the plain average (equal weights: what the mix gains without the
score) and the PESQ oracle.

    python benchmarks/soft_selection.py --set out/noisy-val-wide --temperature 0.001 0.003 0.01 \\
        --out benchmarks/results/soft-selection-val-wide

Members and their labels come from the cache `benchmarks/selection.py` keeps (SET/enhanced/<member>-<hash>/, computed
here where missing); each mix is written and labelled the same way under SET/enhanced/mix-<hash of the members, the
weights' rule and the selector>/, so a rerun only labels what is new. PESQ/STOI/SI-SDR/DNSMOS as `selection.py`;
margins over the best single member and over the plain average with paired bootstrap intervals over files, per
input-SNR band and per source corpus (a `--rated-references` set's LibriSpeech and MUSHRA-reference parts); a bar
plot of mean PESQ per band (OUT/soft-selection.png).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks import build_quality_set as Q  # noqa: E402
from benchmarks.enhance import System, band_of, fingerprint, load_entries, pick, save_json  # noqa: E402
from benchmarks.selection import (  # noqa: E402
    METRICS,
    bootstrap_ci,
    collect,
    enhancer_system,
    fmt,
    mean,
    measure,
    metric_by_member,
    selector_model,
)
from benchmarks.speed import machine, shown  # noqa: E402
from vqscore.ensemble import EnsembleSpec, find_ensemble  # noqa: E402

RATE = Q.RATE
AVERAGE = "average"


def mix_label(temperature: float | None) -> str:
    return AVERAGE if temperature is None else f"soft:{temperature:g}"


def mix_system(members: list[str], folders: dict[str, Path], temperature: float | None, selector: str) -> System:
    rule = "equal weights" if temperature is None else f"softmax of the VQScores / {temperature:g}"
    digest = hashlib.sha256(json.dumps([[folders[m].name for m in members], rule, selector]).encode()).hexdigest()[:10]

    def run(x: np.ndarray) -> np.ndarray:  # never called (mix_all writes the outputs); not None, which means "the input"
        raise RuntimeError("mixes are made from the members' cached outputs")

    return System(mix_label(temperature), f"mix-{digest}", f"{', '.join(members)} mixed per file, {rule} ({selector})", run)


def mix_weights(scores: np.ndarray, temperature: float | None) -> np.ndarray:
    """(K,) weights of one file: equal for the average, else the library's soft pick."""
    if temperature is None:
        return np.full(scores.shape[0], 1.0 / scores.shape[0])
    return vqscore.selectors.weights(scores, temperature)


def mix_all(system, members, folders, scores, temperature, rows, folder: Path) -> set[str]:
    """Write each file's mix of the members' cached outputs; returns the ids written now (to label)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    timing = load_entries(folder / "timing.json", rows, fresh=False)
    todo = [k for k, r in enumerate(rows) if r["id"] not in timing or not (folder / f"{r['id']}.wav").is_file()]
    for k in todo:
        r = rows[k]
        outputs = [Q.read_mono(folders[m] / f"{r['id']}.wav")[0] for m in members]
        y = vqscore.selectors.mix(outputs, mix_weights(scores[:, k], temperature))
        sf.write(os.fspath(folder / f"{r['id']}.wav"), y, RATE, subtype="FLOAT")
        timing[r["id"]] = {"fp": r["fp"], "seconds": 0.0}
    if todo:
        save_json(folder / "timing.json", timing)
    return {rows[k]["id"] for k in todo}


def groups(rows: list[dict]) -> dict[str, list[int]]:
    """'all', each input-SNR band and each source corpus -> row indices."""
    out: dict[str, list[int]] = {"all": list(range(len(rows)))}
    for k, r in enumerate(rows):
        out.setdefault(f"band {band_of(r)}", []).append(k)
    sources = {r.get("source", "") for r in rows}
    if len(sources) > 1:
        for k, r in enumerate(rows):
            out.setdefault(f"source {r['source']}", []).append(k)
    return out


def summarise(per_system: dict, members: list[str], mixes: list[str], rows: list[dict], general: str) -> dict:
    pesq = {s: metric_by_member(per_system, [s], rows, "pesq")[0] for s in per_system}
    member_pesq = np.stack([pesq[m] for m in members])
    scores = metric_by_member(per_system, members, rows, "vqscore")
    column = np.arange(len(rows))
    pesq["select:vqscore"] = member_pesq[[vqscore.selectors.pick(scores[:, k]) for k in column], column]
    pesq["select:oracle"] = member_pesq.max(axis=0)
    out: dict = {"members": members, "groups": {}, "metrics": {}}
    for s in per_system:
        out["metrics"][s] = {m: mean(metric_by_member(per_system, [s], rows, m)[0]) for m in METRICS}
    for name, index in groups(rows).items():
        i = np.asarray(index)
        g: dict = {"n": len(index), "pesq": {s: float(v[i].mean()) for s, v in pesq.items()}}
        everything = np.arange(len(i))
        for s in [*mixes, "select:vqscore"]:

            def over_best(j, s=s, i=i):  # j: positions within the group (a bootstrap draw, or all of them)
                return pesq[s][i[j]].mean() - member_pesq[:, i[j]].mean(axis=1).max()

            def over_average(j, s=s, i=i):
                return (pesq[s][i[j]] - pesq[AVERAGE][i[j]]).mean()

            row = {"minus_best_member": float(over_best(everything)), "minus_best_member_ci": bootstrap_ci(len(i), over_best)}
            if s != AVERAGE and AVERAGE in pesq:
                row["minus_average"] = float(over_average(everything))
                row["minus_average_ci"] = bootstrap_ci(len(i), over_average)
            if general in members:
                base, top = pesq[general][i].mean(), pesq["select:oracle"][i].mean()
                row["gap_closed"] = float((pesq[s][i].mean() - base) / (top - base)) if top > base else None
            g[s] = row
        out["groups"][name] = g
    return out


def ci(v: list[float]) -> str:
    return f"[{v[0]:+.3f}, {v[1]:+.3f}]"


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        "# Soft selection benchmark",
        "",
        f"`{result['command']}`",
        "",
        f"Set `{result['set']['path']}`: {result['set']['files']} pairs. Ensemble `{result['ensemble']}` "
        f"({', '.join(s['members'])}); VQScore by `{result['selector_model']}`. Machine: "
        f"{result['machine']['cpu_model'] or result['machine']['processor']}, {result['machine']['cpu_count']} CPUs, "
        f"torch {result['machine']['torch']}. {result['wall_seconds']:.0f} s.",
        "",
        "Mean per file over the whole set (`soft:T`: the outputs mixed with softmax(VQScore / T) weights; `average`: "
        "equal weights; `select:vqscore`: the hard pick):",
        "",
        "| system | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for name, m in s["metrics"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(m[k], 3) for k in METRICS) + " |")
    lines += ["", "Mean PESQ per group, and the margins with paired bootstrap 95 % intervals over the group's files:", ""]
    for name, g in s["groups"].items():
        pes = ", ".join(f"{k} {v:.3f}" for k, v in g["pesq"].items())
        lines += [f"- **{name}** ({g['n']} files): {pes}."]
        for sysname in [*result["mixes"], "select:vqscore"]:
            r = g[sysname]
            text = f"  - {sysname}: minus the best member {r['minus_best_member']:+.3f} {ci(r['minus_best_member_ci'])}"
            if "minus_average" in r:
                text += f", minus the average {r['minus_average']:+.3f} {ci(r['minus_average_ci'])}"
            if r.get("gap_closed") is not None:
                text += f", general-to-oracle gap closed {r['gap_closed']:.0%}"
            lines.append(text)
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Mean PESQ per input-SNR band of each member, the hard pick, the plain average, each soft pick and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    bands = [g for g in s["groups"] if g.startswith("band ")]
    shown_systems = [*s["members"], "select:vqscore", *result["mixes"], "select:oracle"]
    fig, ax = plt.subplots(figsize=(11, 4))
    x, width = np.arange(len(bands)), 0.8 / len(shown_systems)
    for k, name in enumerate(shown_systems):
        offset = (k - (len(shown_systems) - 1) / 2) * width
        ax.bar(x + offset, [s["groups"][b]["pesq"][name] for b in bands], width, label=name)
    ax.set_xticks(x, [b.removeprefix("band ") for b in bands])
    ax.set_ylabel("mean PESQ (wb)")
    ax.set_title(f"{result['ensemble']} on {result['set']['path']}: members, hard pick, mixes, oracle")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, required=True, help="a build_noisy_set.py output folder (manifest.csv)")
    parser.add_argument("--ensemble", default="default", help="shipped ensemble name or ensemble file (default: default)")
    parser.add_argument("--general", default="unet-general", help="the member that is the general model")
    parser.add_argument("--temperature", type=float, nargs="+", required=True, help="soft-pick temperatures (VQScore units)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-files", type=int, default=None, help="N files spread evenly over the set (development)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads while enhancing (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="label processes (default 2)")
    args = parser.parse_args(argv)
    if any(not t > 0 for t in args.temperature):
        parser.error("--temperature: every temperature must be positive")

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    root = args.set.resolve()
    rows = pick(Q.read_manifest(root / "manifest.csv"), args.max_files)
    for r in rows:
        r["fp"] = fingerprint(root, r)
    cache_root = root / "enhanced"
    spec = EnsembleSpec.read(find_ensemble(args.ensemble))
    qe, selector_qe = vqscore.load("default"), selector_model(spec)
    members = [m.name for m in spec.members]
    per_system, folders = {}, {}
    for m in spec.members:
        system = enhancer_system(m.name, m.kind, m.options)
        per_system[m.name] = measure(system, rows, root, cache_root, qe, selector_qe, args.workers)
        folders[m.name] = cache_root / system.key
    scores = metric_by_member(per_system, members, rows, "vqscore")
    mixes = []
    for t in [None, *args.temperature]:
        system = mix_system(members, folders, t, selector_qe.tag)
        folder = cache_root / system.key
        print(f"{system.label} ({system.source})", flush=True)
        redo = mix_all(system, members, folders, scores, t, rows, folder)
        per_system[system.label] = collect(system, rows, root, folder, qe, selector_qe, args.workers, redo)
        mixes.append(system.label)

    script = shown(sys.argv[0]) if argv is None else "benchmarks/soft_selection.py"
    result = {
        "command": shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)]),
        "set": {"path": shown(root), "files": len(rows)},
        "ensemble": spec.name,
        "selector_model": f"{selector_qe.tag}, pooling {selector_qe.pooling}",
        "machine": machine(),
        "mixes": mixes,
        "summary": summarise(per_system, members, mixes, rows, args.general),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(result))
    plot(result, args.out / "soft-selection.png")
    print(f"wrote {args.out / 'results.md'} ({result['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
