"""Do the pitch specialists win their own voices, and does routing by the noisy input's pitch find them?

    python benchmarks/pitch.py --set out/noisy-val-200 --set out/noisy-test     # after benchmarks/selection.py

Reads the member outputs and PESQ labels that `benchmarks/selection.py` cached under SET/enhanced/ for the pitch
U-Nets, the routed pair and the general and noise-low U-Nets (it computes nothing they lack: run selection.py with
benchmarks/ensembles/candidates.json first). Each pair is put in a voice group by the median F0 of its clean
reference (`vqscore.pitch.median_f0`, 165 Hz as in training); the table gives each system's mean PESQ per group, and
how often the route taken from the noisy input (what the pitch-routed enhancer sees) equals the route of the clean
reference. Writes benchmarks/results/pitch/results.md and results.json.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import build_quality_set as Q  # noqa: E402
from benchmarks.enhance import fingerprint, load_entries  # noqa: E402
from benchmarks.selection import enhancer_system  # noqa: E402
from benchmarks.speed import machine, shown, write_results  # noqa: E402
from vqscore.ensemble import EnsembleSpec, find_ensemble  # noqa: E402
from vqscore.pitch import SPLIT_HZ, median_f0  # noqa: E402

SYSTEMS = ("unet-general", "unet-noise-low", "unet-pitch-low", "unet-pitch-high", "unet-pitch-routed")


def group_of(f0: float) -> str:
    return "unvoiced" if math.isnan(f0) else ("low voices" if f0 < SPLIT_HZ else "high voices")


def measure(root: Path, spec: EnsembleSpec) -> dict:
    rows = Q.read_manifest(root / "manifest.csv")
    for r in rows:
        r["fp"] = fingerprint(root, r)
    members = {m.name: m for m in spec.members}
    pesq = {}
    for name in SYSTEMS:
        m = members[name]
        folder = root / "enhanced" / enhancer_system(m.name, m.kind, m.options).key
        labels = load_entries(folder / "labels.json", rows, fresh=False)
        missing = [r["id"] for r in rows if r["id"] not in labels]
        if missing:
            raise SystemExit(f"{folder}: no PESQ for {len(missing)} pairs; run benchmarks/selection.py on {shown(root)} first")
        pesq[name] = np.array([labels[r["id"]]["pesq"] for r in rows])
    clean = [group_of(median_f0(Q.read_mono(root / r["clean"])[0])) for r in rows]
    noisy = [group_of(median_f0(Q.read_mono(root / r["noisy"])[0])) for r in rows]
    groups = {}
    for g in ("low voices", "high voices", "all"):
        index = np.array([k for k, c in enumerate(clean) if g in ("all", c)], dtype=int)
        groups[g] = {"pairs": int(index.size), **{s: float(pesq[s][index].mean()) for s in SYSTEMS}}
    # the enhancer sends an unvoiced input to its high side (routed.py's default)
    routed_as = ["low voices" if n == "low voices" else "high voices" for n in noisy]
    voiced = [k for k, c in enumerate(clean) if c != "unvoiced"]
    agree = sum(routed_as[k] == clean[k] for k in voiced) / len(voiced)
    return {
        "set": shown(root),
        "pairs": len(rows),
        "groups": groups,
        "route_agreement": agree,
        "noisy_unvoiced": noisy.count("unvoiced"),
    }


def markdown(result: dict) -> str:
    lines = [
        "# Pitch specialists on their own voices",
        "",
        f"`{result['command']}`",
        "",
        f"Machine: {result['machine']['cpu_model'] or result['machine']['processor']}. Voice groups by the clean reference's "
        f"median F0 ({SPLIT_HZ:g} Hz); mean PESQ per group.",
    ]
    for s in result["sets"]:
        lines += [
            "",
            f"## {s['set']} ({s['pairs']} pairs)",
            "",
            "| group | pairs | " + " | ".join(SYSTEMS) + " |",
            "|---|---:|" + "---:|" * len(SYSTEMS),
        ]
        for g, row in s["groups"].items():
            best = max(row[x] for x in SYSTEMS)
            cells = [f"**{row[x]:.3f}**" if row[x] == best else f"{row[x]:.3f}" for x in SYSTEMS]
            lines.append(f"| {g} | {row['pairs']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Routing from the noisy input agrees with routing from the clean reference on {100 * s['route_agreement']:.1f} % "
            f"of the voiced pairs; {s['noisy_unvoiced']} noisy inputs had no voiced frame (routed high).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, action="append", required=True, help="a build_noisy_set.py folder (repeat)")
    parser.add_argument("--ensemble", default=str(REPO / "benchmarks" / "ensembles" / "candidates.json"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pitch")
    args = parser.parse_args(argv)
    spec = EnsembleSpec.read(find_ensemble(args.ensemble))
    result = {
        "command": shlex.join(["python", "benchmarks/pitch.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "sets": [measure(root.resolve(), spec) for root in args.set],
    }
    write_results(args.out, "results", result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
