"""Write a benchmark's figures into a bundle's model card (the '## Measured quality' section).

    python benchmarks/model_card.py pretrained/<name>.md benchmarks/results/quality/results.json    # a QE model
    python benchmarks/model_card.py pretrained/vqscore-unet-<x>.md benchmarks/results/selection/results.json \
        --system unet-<x>                                                                          # an enhancer
    python benchmarks/model_card.py pretrained/<name>.md benchmarks/results/bag/results.json \
        --member <name>@<version>                                                                  # a bag's member
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


def command_line(results: dict) -> str:
    """The command and machine of a selection or bag benchmark run, as its cards cite them."""
    return f"Command: `{results['command']}` ({results['machine']['cpu_model']}, {results['machine']['cpu_count']} CPUs)."


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
    lines += [command_line(results), ""]
    return "\n".join(lines)


def bag_member_section(results: dict, member: str) -> str:
    """A bag member's rows of a `benchmarks/bag.py` run beside the bag's, under the pooling the member declares."""
    pooling = "p25"
    table = results["results"][pooling]
    mine = [label for label in table if label.split("#")[0] == member]
    if not mine:
        raise SystemExit(f"{member!r} is not a member measured in this bag benchmark (members: {results['members']})")
    bag = next(label for label in table if label.startswith("bag "))
    lines = [
        "## Measured quality",
        "",
        f"`benchmarks/bag.py` (pooling {pooling}): Spearman correlation with TCD-VoIP dev MOS (the set its checkpoint was",
        "chosen on: optimistic) and MUSHRA ratings, VoiceBank pairs ranked right, and on the held-out quality test set",
        "(674 files) SRCC with PESQ, STOI, SI-SDR and DNSMOS OVRL; beside it the bag this model is a member of.",
        "",
        "| scorer | TCD-VoIP dev | MUSHRA | VoiceBank | PESQ | STOI | SI-SDR | DNSMOS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in (mine[0], bag):
        r = table[label]
        q = " | ".join(f"{r.get(f'quality_{k}_srcc', float('nan')):.3f}" for k in LABELS)
        lines.append(f"| {label} | {r['tcd_srcc']:.3f} | {r['mushra_srcc']:.3f} | {r['voicebank_pairs']}/7 | {q} |")
    lines += ["", command_line(results), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card", type=Path)
    parser.add_argument("results", type=Path)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--system", help="the enhancer's label in a benchmarks/selection.py results.json")
    which.add_argument("--member", help="NAME@VERSION of a bag member in a benchmarks/bag.py results.json")
    args = parser.parse_args(argv)
    text = args.card.read_text()
    results = json.loads(args.results.read_text())
    if args.system:
        new = enhancer_section(results, args.system)
    elif args.member:
        new = bag_member_section(results, args.member)
    else:
        new = section(results)
    pattern = re.compile(r"## Measured quality\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: new.rstrip("\n") + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + new
    args.card.write_text(text)


if __name__ == "__main__":
    main()
