"""Would an ensemble of checkpoints track people better than any one? A probe, before building ensembles in.

Scores TCD-VoIP dev (192 files, MOS) with v1 and every ablation's selected checkpoint
(runs/ablations/*/bundle, from `benchmarks/ablations.py`), all with the robust conditioning and median pooling, and
reports each one's Spearman correlation with MOS and that of their plain average (the deployable rule: a file's
score is the mean of the members' scores). Best-subset figures are printed for curiosity only: chosen on the same
192 files, they overfit. Writes benchmarks/results/ensemble_probe/results.md.

    python benchmarks/ensemble_probe.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks.rated_sets import TCD, read_rated, spearman  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "ensemble_probe"


def main() -> int:
    torch.set_num_threads(1)
    paths, mos, _ = read_rated(TCD, "mos")
    members = {"v1 (vqscore-qe-cleanspeech@1.0.0)": "vqscore-qe-cleanspeech@1.0.0"}
    members |= {p.parents[1].name: str(p) for p in sorted((REPO / "runs" / "ablations").glob("*/bundle/*.json"))}
    scores = {}
    for name, bundle in members.items():
        model = vqscore.load(bundle, conditioning="robust", pooling="median")
        scores[name] = np.asarray(model.vqscore(paths), dtype=np.float64)
        print(f"{name}: {spearman(scores[name], mos):.3f}", flush=True)
    mean = np.mean(list(scores.values()), axis=0)
    result = {
        "members": {n: spearman(s, mos) for n, s in scores.items()},
        "mean_of_all": spearman(mean, mos),
        "mean_of_trained_on_2.6h": spearman(np.mean([s for n, s in scores.items() if n != "data-1.5h" and "v1" not in n], axis=0), mos),
    }
    lines = [
        "# Checkpoint ensemble probe: SRCC with TCD-VoIP dev MOS (robust conditioning, median pooling)",
        "",
        "| scorer | SRCC |",
        "|---|---:|",
        *[f"| {n} | {v:.3f} |" for n, v in result["members"].items()],
        f"| **plain mean of all {len(scores)}** | **{result['mean_of_all']:.3f}** |",
        f"| plain mean of the runs on 2.6 h | {result['mean_of_trained_on_2.6h']:.3f} |",
        "",
        "`python benchmarks/ensemble_probe.py` (members: runs/ablations/*/bundle from `python benchmarks/ablations.py`)",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
