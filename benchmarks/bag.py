"""Does a bag of QE models (`vqscore.bag`) track quality better than its members? Every member and the bag, on the
human-rated sets and on the quality benchmark's test set, under the poolings that matter.

A member's frames are computed once per file (its declared conditioning) and pooled each way; the bag's score
of a file is the mean of its members' pooled scores (what `vqscore.bag.ModelBag` computes). Reported: Spearman
correlation with TCD-VoIP dev MOS (192 files; the set every member's checkpoint was chosen on, so optimistic), with
the MUSHRA codec ratings (128 files), the VoiceBank pairs ranked right (7), and on `--quality-set` (held out: the
674 files of `benchmarks/build_quality_set.py --split test`) the correlations with PESQ, STOI, SI-SDR and DNSMOS OVRL.

    python benchmarks/build_quality_set.py --split test --out out/quality-test --seed 0
    python benchmarks/bag.py [--bag vqscore-qe-seeds] [--quality-set out/quality-test]   # -> benchmarks/results/bag/
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks.build_quality_set import read_manifest  # noqa: E402
from benchmarks.quality import SI_SDR_CAP, as_float, correlate  # noqa: E402
from benchmarks.rated_sets import MUSHRA, TCD, read_rated, spearman, voicebank_pairs  # noqa: E402
from benchmarks.speed import machine  # noqa: E402
from vqscore.bag import BagSpec, find_bag  # noqa: E402
from vqscore.pooling import pool  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "bag"
POOLINGS = ("p25", "median", "mean")
QUALITY_LABELS = ("pesq", "stoi", "si_sdr", "dnsmos_ovrl")


def frames_of(model: vqscore.Model, paths: list[Path]) -> list[np.ndarray]:
    return [s.frames for s in model.score([str(p) for p in paths])]


def pooled(frames: list[np.ndarray], pooling: str) -> np.ndarray:
    return np.array([pool(f, pooling) for f in frames], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bag", default="vqscore-qe-seeds", help="shipped bag name or bag JSON (default: %(default)s)")
    parser.add_argument("--quality-set", type=Path, default=REPO / "out" / "quality-test")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/bag.py", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(1)
    path = find_bag(args.bag)
    if path is None:
        parser.error(f"--bag {args.bag}: not a shipped bag or bag file")
    spec = BagSpec.read(path)
    members = {m: vqscore.load(m) for m in spec.members}

    sets: dict[str, tuple[list[Path], np.ndarray | dict]] = {}
    tcd_paths, mos, _ = read_rated(TCD, "mos")
    sets["tcd"] = (tcd_paths, mos)
    mushra_paths, mushra, _ = read_rated(MUSHRA, "mushra_mean")
    sets["mushra"] = (mushra_paths, mushra)
    clean, noisy = voicebank_pairs()
    sets["voicebank"] = (clean + noisy, np.array([1.0] * len(clean) + [0.0] * len(noisy)))
    quality = (args.quality_set / "manifest.csv").is_file()
    if quality:
        rows = read_manifest(args.quality_set / "manifest.csv")
        labels = {k: np.array([as_float(r[k]) for r in rows]) for k in QUALITY_LABELS}
        labels["si_sdr"] = np.minimum(labels["si_sdr"], SI_SDR_CAP)
        sets["quality"] = ([args.quality_set / r["path"] for r in rows], labels)
    else:
        print(f"no quality set at {args.quality_set}: its columns are left out", flush=True)

    # (set, pooling) -> scorer label -> per-file scores
    scores: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for model in members.values():
        print(f"scoring with {model.tag}", flush=True)
        for set_name, (paths, _) in sets.items():
            frames = frames_of(model, paths)
            for p in POOLINGS:
                scores.setdefault((set_name, p), {})[model.tag] = pooled(frames, p)
    bag_label = f"bag {spec.name} (mean of {len(members)})"
    for table in scores.values():
        table[bag_label] = np.mean(list(table.values()), axis=0)

    results: dict[str, dict] = {}
    for p in POOLINGS:
        for label in scores[("tcd", p)]:
            row = {
                "tcd_srcc": spearman(scores[("tcd", p)][label], mos),
                "mushra_srcc": spearman(scores[("mushra", p)][label], mushra),
            }
            vb = scores[("voicebank", p)][label]
            row["voicebank_pairs"] = int(np.sum(vb[: len(clean)] > vb[len(clean) :]))
            if quality:
                # as benchmarks/quality.py correlates (finite pairs only), so v2's figures match its table
                found = {k: correlate(scores[("quality", p)][label], labels[k]) for k in QUALITY_LABELS}
                row |= {f"quality_{k}_srcc": found[k]["srcc"] for k in QUALITY_LABELS}
                row["quality_pesq_lcc"] = found["pesq"]["lcc"]
            results.setdefault(p, {})[label] = row

    args.out.mkdir(parents=True, exist_ok=True)
    m = machine()
    where = f"{m['cpu_model'] or m['processor']}, {m['cpu_count']} CPUs, torch {torch.__version__}"
    info = {"command": command, "bag": spec.name, "members": list(spec.members), "machine": m, "results": results}
    (args.out / "results.json").write_text(json.dumps(info, indent=1) + "\n")
    lines = [
        f"# Bag `{spec.name}` against its members",
        "",
        f"`{command}`. Machine: {where}.",
        "",
        "Spearman correlation (SRCC) with listeners on TCD-VoIP dev (MOS; every member's checkpoint was chosen on these",
        "192 files, so optimistic) and the MUSHRA codec set; VoiceBank pairs ranked right (of 7)"
        + (
            "; on the held-out quality test set (674 files) SRCC with PESQ, STOI, SI-SDR, DNSMOS OVRL and LCC with PESQ."
            if quality
            else "."
        ),
        "",
    ]
    head = ["scorer", "TCD-VoIP dev", "MUSHRA", "VoiceBank"] + (
        ["PESQ SRCC", "STOI", "SI-SDR", "DNSMOS", "PESQ LCC"] if quality else []
    )
    for p in POOLINGS:
        lines += [f"## Pooling {p}", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for label, r in results[p].items():
            cells = [f"{r['tcd_srcc']:.3f}", f"{r['mushra_srcc']:.3f}", f"{r['voicebank_pairs']}/{len(clean)}"]
            if quality:
                cells += [f"{r[f'quality_{k}_srcc']:.3f}" for k in QUALITY_LABELS] + [f"{r['quality_pesq_lcc']:.3f}"]
            shown = f"**{label}**" if label == bag_label else label
            lines.append(f"| {shown} | " + " | ".join(cells) + " |")
        lines.append("")
    (args.out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
