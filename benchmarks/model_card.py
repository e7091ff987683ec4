"""Write a benchmark's figures into a bundle's model card (the '## Measured quality' section).

    python benchmarks/model_card.py pretrained/<name>.md benchmarks/results/quality/results.json    # a QE model
    python benchmarks/model_card.py pretrained/vqscore-unet-<x>.md benchmarks/results/selection/results.json \
        --system unet-<x>                                                                          # an enhancer
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROWS = [
    ("cos_z", "VQScore cos_z (this model)"),
    ("l2_z", "l2_z (this model; lower = better)"),
    ("untrained_cos_z", "same architecture untrained (random weights + k-means codebook)"),
    ("wada_snr", "WADA-SNR (signal-based blind SNR)"),
    ("dnsmos_ovrl", "DNSMOS P.835 OVRL (supervised)"),
]
LABELS = ["pesq", "stoi", "si_sdr", "dnsmos_ovrl"]


def section(results: dict) -> str:
    overall = results["overall"]
    lines = [
        "## Measured quality",
        "",
        f"Quality benchmark `{results['set']['dir']}` ({results['set']['files']} files of held-out speakers, real noise,",
        "reverberation, band limiting, clipping, telephone coding, musical noise, real VoiceBank recordings;",
        "benchmarks/README.md). Pearson LCC / Spearman SRCC with each label, all files:",
        "",
        "| score | " + " | ".join(f"{label} LCC / SRCC" for label in LABELS) + " |",
        "|---|" + "---:|" * len(LABELS),
    ]
    for key, name in ROWS:
        if key in overall:
            cells = [f"{overall[key][label]['lcc']:.3f} / {overall[key][label]['srcc']:.3f}" for label in LABELS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    pairs = results.get("voicebank_pairs", [])
    wins = sum(p["cos_z"]["pass"] for p in pairs)
    lines += [
        "",
        f"Real VoiceBank pairs where the clean file scores higher than the noisy one: {wins} of {len(pairs)}.",
        f"Command: `{results['command']}` ({results['date_utc']}, {results['machine']['platform']}, "
        f"{results['machine']['cpu_count']} CPUs).",
        "",
    ]
    return "\n".join(lines)


def enhancer_section(results: dict, system: str) -> str:
    """One enhancer's row of a `benchmarks/selection.py` run (it measures every member alone)."""
    for selection in results["selections"].values():
        if system in selection["systems"]:
            row = selection["systems"][system]
            break
    else:
        raise SystemExit(f"{system!r} is not a member measured in this selection benchmark")
    o = row["overall"]
    bands = [b for b in row if b != "overall"]
    ranked = {r["system"]: r for r in results["ranking"]["systems"]}
    noisy = ranked.get("noisy")
    lines = [
        "## Measured quality",
        "",
        f"Held-out test set `{results['set']['path']}` ({results['set']['files']} noisy/clean pairs: held-out speakers,",
        "four real noise folders and babble at -5..20 dB, real VoiceBank-DEMAND recordings), `benchmarks/selection.py`,",
        f"each member alone, means per file (VQScore by {results['selector_model']}):",
        "",
        "| PESQ | STOI | SI-SDR (dB) | DNSMOS OVRL | VQScore | " + " | ".join(f"PESQ {b}" for b in bands) + " |",
        "|" + "---:|" * (5 + len(bands)),
        f"| {o['pesq']:.3f} | {o['stoi']:.3f} | {o['si_sdr']:.2f} | {o['dnsmos_ovrl']:.2f} | {o['vqscore']:.3f} | "
        + " | ".join(f"{row[b]:.3f}" for b in bands)
        + " |",
        "",
    ]
    if noisy is not None:
        lines += [f"The unprocessed input: PESQ {noisy['pesq']:.3f}, DNSMOS OVRL {noisy['dnsmos_ovrl']:.2f}.", ""]
    lines += [f"Command: `{results['command']}` ({results['machine']['cpu_model']}, {results['machine']['cpu_count']} CPUs).", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--system", help="the enhancer's label in a benchmarks/selection.py results.json")
    args = parser.parse_args(argv)
    text = args.card.read_text()
    results = json.loads(args.results.read_text())
    new = enhancer_section(results, args.system) if args.system else section(results)
    pattern = re.compile(r"## Measured quality\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: new.rstrip("\n") + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + new
    args.card.write_text(text)


if __name__ == "__main__":
    main()
