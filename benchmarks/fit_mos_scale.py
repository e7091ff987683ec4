"""Fit a bundle's 1-5 scale (`vqscore.mos_scale`) on listeners' MOS and store it in the bundle's JSON.

Scores the human-rated TCD-VoIP dev set (192 files, ACR MOS from 24 listeners each) with the bundle's own
conditioning and pooling, fits the monotone piecewise-linear map (8 knots: equal-size groups of files sorted by
score, isotonic), writes it into `<bundle>.json` as "mos_scale" (the weights and their sha256 are untouched), and
reports how well the mapped score matches the ratings. The map is fitted on the same set the checkpoints are
chosen on: its fit figures are in-sample; the held-out TCD-VoIP talkers are the out-of-sample check.

    python benchmarks/fit_mos_scale.py pretrained/vqscore-qe-cleanspeech.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks.rated_sets import TCD, read_rated, spearman  # noqa: E402
from vqscore.mos_scale import fit_mos_scale  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle JSON to fit the scale for (written in place)")
    parser.add_argument("--bins", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = vqscore.load(args.bundle)
    paths, mos, _ = read_rated(TCD, "mos")
    scores = np.asarray(model.vqscore(paths), dtype=np.float64)
    scale = fit_mos_scale(
        scores, mos, model.conditioning.name, model.pooling, "TCD-VoIP dev (talkers FA, MK; 192 files, ACR MOS)", args.bins
    )
    mapped = scale(scores)
    info = json.loads(args.bundle.read_text())
    info["mos_scale"] = scale.to_dict()
    args.bundle.write_text(json.dumps(info, indent=2) + "\n")
    rmse = float(np.sqrt(np.mean((mapped - mos) ** 2)))
    print(f"{model.tag} ({model.scoring}): SRCC raw {spearman(scores, mos):.3f}, mapped {spearman(mapped, mos):.3f}; "
          f"LCC mapped {float(np.corrcoef(mapped, mos)[0, 1]):.3f}; RMSE {rmse:.3f} MOS (in-sample)")
    print("knots:", [(round(x, 4), round(y, 2)) for x, y in zip(scale.knots_x, scale.knots_y, strict=True)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
