"""Correlate VQScore (and baselines) with quality labels on a set made by build_quality_set.py.

    python benchmarks/quality.py --set out/quality-test --model default
    python benchmarks/quality.py --set out/quality-test --model /path/to/qe.pkl --out out/quality-results

Scores every file of DIR/manifest.csv with the model (all four variants: cos_z = VQScore, l2_z, cos_x, l2_x),
with the 'untrained' QE baseline (random weights, k-means codebook on ~60 s of train-speaker speech), WADA-SNR,
frame-energy SNR and DNSMOS OVRL (from the manifest), then writes to --out:
  results.md    LCC (Pearson) / SRCC (Spearman) of every score with PESQ, STOI, SI-SDR and DNSMOS OVRL; SRCC with
                PESQ per degradation type; mean scores per degradation type; the VoiceBank clean > noisy check
  results.json  all of those numbers, the command line and the machine
  scores.csv    every file's scores
  scatter_cos_z_pesq.png  VQScore against PESQ, coloured by degradation type
Signs are reported as they are: l2_z and l2_x are 'lower is better', so good l2 variants correlate negatively.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks import baselines  # noqa: E402
from benchmarks.build_quality_set import DEFAULT_DATA, read_manifest  # noqa: E402

VARIANTS = ("cos_z", "l2_z", "cos_x", "l2_x")
LOWER_IS_BETTER = {"l2_z", "l2_x", "untrained_l2_z", "untrained_l2_x"}
LABELS = ("pesq", "stoi", "si_sdr", "dnsmos_ovrl")
SI_SDR_CAP = 50.0  # clean rows are compared with themselves (~140 dB); capped so they do not dominate the LCC
BATCH_FILES = 64


def machine_info() -> dict:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "vqscore": vqscore.__version__,
        "git_commit": commit,
    }


def score_paths(model, paths: list[Path]) -> dict[str, np.ndarray]:
    out = {v: [] for v in VARIANTS}
    for start in range(0, len(paths), BATCH_FILES):
        for s in model.score([os.fspath(p) for p in paths[start : start + BATCH_FILES]]):
            for v in VARIANTS:
                out[v].append(getattr(s, v))
    return {v: np.asarray(x, dtype=np.float64) for v, x in out.items()}


def as_float(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")


def correlate(x: np.ndarray, y: np.ndarray) -> dict:
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return {"lcc": None, "srcc": None, "n": n}
    return {"lcc": float(stats.pearsonr(x[ok], y[ok])[0]), "srcc": float(stats.spearmanr(x[ok], y[ok])[0]), "n": n}


def f3(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def voicebank_pairs(rows: list[dict], scores: dict[str, np.ndarray]) -> list[dict]:
    index = {r["path"]: i for i, r in enumerate(rows)}
    pairs = []
    for i, r in enumerate(rows):
        if r["degradation"] != "real-voicebank":
            continue
        j = index[r["clean_path"]]
        entry = {"noisy": r["path"], "clean": r["clean_path"], "pesq_noisy": as_float(r["pesq"])}
        for name, values in scores.items():
            clean, noisy = float(values[j]), float(values[i])
            passed = clean < noisy if name in LOWER_IS_BETTER else clean > noisy
            entry[name] = {"clean": clean, "noisy": noisy, "pass": bool(passed)}
        pairs.append(entry)
    return pairs


def scatter(path: Path, rows: list[dict], x: np.ndarray, y: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(r["degradation"] for r in rows))
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(9, 6.5), dpi=110)
    for k, kind in enumerate(kinds):
        sel = np.array([r["degradation"] == kind for r in rows])
        marker = "*" if kind in ("clean", "real-voicebank") else "o"
        ax.scatter(
            x[sel],
            y[sel],
            s=40 if marker == "*" else 14,
            alpha=0.75,
            color=colours(k % 20),
            marker=marker,
            label=f"{kind} ({sel.sum()})",
        )
    ax.set_xlabel("VQScore (cos_z)")
    ax.set_ylabel("PESQ (wide band)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, required=True, help="folder with manifest.csv (from build_quality_set.py)")
    parser.add_argument("--model", default="default", help="shipped bundle name, bundle path or official checkpoint")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="shared data root, for the untrained baseline's codebook"
    )
    parser.add_argument("--no-untrained", action="store_true", help="skip the untrained-model baseline")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    # "python" rather than sys.executable: the record must not carry this machine's paths.
    command = shlex.join(["python", *(sys.argv if argv is None else ["benchmarks/quality.py", *argv])])

    manifest = args.set / "manifest.csv"
    rows = read_manifest(manifest)
    paths = [args.set / r["path"] for r in rows]
    labels = {k: np.array([as_float(r[k]) for r in rows]) for k in LABELS}
    labels["si_sdr"] = np.minimum(labels["si_sdr"], SI_SDR_CAP)

    model = vqscore.load(args.model)
    print(f"scoring {len(rows)} files with {model!r}", flush=True)
    scores: dict[str, np.ndarray] = score_paths(model, paths)
    model_seconds = time.perf_counter() - started

    if not args.no_untrained and not (args.data / "clean").is_dir():
        print(f"warning: no shared data at {args.data}; the untrained baseline is skipped", flush=True)
        args.no_untrained = True
    if not args.no_untrained:
        untrained = baselines.untrained_model(args.data)
        print("scoring with the untrained baseline", flush=True)
        scores.update({f"untrained_{k}": v for k, v in score_paths(untrained, paths).items()})
    wada, energy = [], []
    for p in paths:
        x = vqscore.audio.load_audio(p).samples
        wada.append(baselines.wada_snr(x))
        energy.append(baselines.energy_snr(x))
    scores["wada_snr"], scores["energy_snr"] = np.array(wada), np.array(energy)
    scores["dnsmos_ovrl"] = np.array([as_float(r["dnsmos_ovrl"]) for r in rows])

    # ------------------------------------------------------------ numbers
    overall = {name: {lab: correlate(values, labels[lab]) for lab in LABELS} for name, values in scores.items()}
    kinds = list(dict.fromkeys(r["degradation"] for r in rows))
    groups = {k: np.array([r["degradation"] == k for r in rows]) for k in kinds if k != "clean"}
    noise_all = np.array([r["degradation"].startswith("noise:") for r in rows])
    if noise_all.any():
        groups["noise:* (all)"] = noise_all
    per_degradation = {
        g: {name: correlate(values[sel], labels["pesq"][sel]) for name, values in scores.items()} for g, sel in groups.items()
    }
    means = {
        k: {
            "n": int(sel.sum()),
            **{name: float(np.nanmean(scores[name][sel])) for name in scores},
            "pesq": float(np.nanmean(labels["pesq"][sel])),
        }
        for k in kinds
        for sel in [np.array([r["degradation"] == k for r in rows])]
    }
    pairs = voicebank_pairs(rows, scores)
    counts = {k: int(sum(r["degradation"] == k for r in rows)) for k in kinds}

    # ------------------------------------------------------------ outputs
    args.out.mkdir(parents=True, exist_ok=True)
    info = {
        "command": command,
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "model": {
            "argument": args.model,
            "name": model.name,
            "kind": model.kind,
            "bundle": None if model.info is None else os.path.relpath(model.info.path, REPO),
            "version": None if model.info is None else model.info.version,
            "weights_sha256": None if model.info is None else model.info.sha256,
        },
        "set": {
            "dir": os.fspath(args.set),
            "files": len(rows),
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "per_degradation": counts,
        },
        "notes": [
            "LCC = Pearson, SRCC = Spearman, over all rows of the set with finite values, voicebank rows INCLUDED "
            "(their intrusive labels are against their real clean references).",
            "Signs as they are: l2_z, l2_x (and untrained_l2_*) are lower-is-better, so good ones correlate negatively.",
            f"SI-SDR capped at {SI_SDR_CAP:g} dB before correlating (clean rows are compared with themselves).",
            "per_degradation: SRCC with PESQ inside each degradation type; 'clean' rows are left out (PESQ constant).",
        ],
        "seconds": {"model_scoring": round(model_seconds, 1), "total": None},
        "overall": overall,
        "per_degradation_srcc_pesq": per_degradation,
        "means_per_degradation": means,
        "voicebank_pairs": pairs,
    }
    names = list(scores)
    with open(args.out / "scores.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "degradation", "source", "snr_db", *LABELS, *[f"score_{n}" for n in names]])
        for i, r in enumerate(rows):
            writer.writerow(
                [
                    r["path"],
                    r["degradation"],
                    r["source"],
                    r["snr_db"],
                    *(r[k] for k in LABELS),
                    *(f"{scores[n][i]:.6f}" for n in names),
                ]
            )
    scatter(
        args.out / "scatter_cos_z_pesq.png",
        rows,
        scores["cos_z"],
        labels["pesq"],
        f"{model.name}: cos_z vs PESQ  (LCC {f3(overall['cos_z']['pesq']['lcc'])}, SRCC {f3(overall['cos_z']['pesq']['srcc'])}, n={len(rows)})",
    )

    print("\nVoiceBank real pairs (VQScore cos_z, clean must score higher than noisy):")
    for p in pairs:
        c = p["cos_z"]
        print(
            f"  {'PASS' if c['pass'] else 'FAIL'}  {Path(p['noisy']).name:40s} clean {c['clean']:.4f}  noisy {c['noisy']:.4f}"
        )

    info["seconds"]["total"] = round(time.perf_counter() - started, 1)
    (args.out / "results.json").write_text(json.dumps(info, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(info, names))
    print(f"\nwrote {args.out / 'results.md'} ({info['seconds']['total']} s)")
    print(f"cos_z vs PESQ: LCC {f3(overall['cos_z']['pesq']['lcc'])}  SRCC {f3(overall['cos_z']['pesq']['srcc'])}")
    return 0


def markdown(info: dict, names: list[str]) -> str:
    m = info["machine"]
    lines = [
        f"# Quality benchmark: {info['model']['name']}",
        "",
        f"- command: `{info['command']}`",
        f"- date (UTC): {info['date_utc']}; machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']} "
        f"({m['torch_threads']} thread), python {m['python']}, vqscore {m['vqscore']} @ {m['git_commit'][:10]}",
        f"- set: `{info['set']['dir']}`, {info['set']['files']} files, manifest sha256 {info['set']['manifest_sha256'][:16]}",
        "- " + "\n- ".join(info["notes"]),
        "",
        "## Correlation with the labels (all rows, VoiceBank included)",
        "",
        "| score | " + " | ".join(f"{lab} LCC | {lab} SRCC" for lab in LABELS) + " |",
        "|---|" + "---:|---:|" * len(LABELS),
    ]
    for name in names:
        suffix = " (lower=better)" if name in LOWER_IS_BETTER else ""
        cells = [f"{f3(info['overall'][name][lab]['lcc'])} | {f3(info['overall'][name][lab]['srcc'])}" for lab in LABELS]
        lines.append(f"| {name}{suffix} | " + " | ".join(cells) + " |")
    groups = list(info["per_degradation_srcc_pesq"])
    lines += [
        "",
        "## SRCC with PESQ inside each degradation type",
        "",
        "| degradation | n | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for g in groups:
        row = info["per_degradation_srcc_pesq"][g]
        n = row[names[0]]["n"]
        lines.append(f"| {g} | {n} | " + " | ".join(f3(row[name]["srcc"]) for name in names) + " |")
    lines += [
        "",
        "## Mean per degradation type",
        "",
        "| degradation | n | pesq | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for k, row in info["means_per_degradation"].items():
        lines.append(f"| {k} | {row['n']} | {f3(row['pesq'])} | " + " | ".join(f3(row[name]) for name in names) + " |")
    pairs = info["voicebank_pairs"]
    if pairs:
        lines += ["", "## Real VoiceBank-DEMAND pairs: does the clean file score better than the noisy one?", ""]
        summary = [f"{name} {sum(p[name]['pass'] for p in pairs)}/{len(pairs)}" for name in names]
        lines += ["Passes per score: " + ", ".join(summary) + ".", ""]
        lines += ["| noisy file | PESQ noisy | cos_z clean | cos_z noisy | cos_z |", "|---|---:|---:|---:|---|"]
        for p in pairs:
            c = p["cos_z"]
            lines.append(
                f"| {Path(p['noisy']).name} | {f3(p['pesq_noisy'])} | {c['clean']:.4f} | {c['noisy']:.4f} | {'pass' if c['pass'] else 'FAIL'} |"
            )
    lines += [
        "",
        f"Scatter plot: `scatter_cos_z_pesq.png`. Per-file scores: `scores.csv`. Total time {info['seconds']['total']} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
