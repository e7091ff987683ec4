"""Scores against people: Spearman correlation with listeners on the human-rated sets, for VQScore models and baselines.

Sets: TCD-VoIP dev (192 files, ACR MOS of 24 listeners; talkers FA and MK), overall and per degradation; the MUSHRA
codec set (128 files); and the 7 real VoiceBank-DEMAND pairs (does clean score above noisy?). Scorers: each
`--model` given as NAME[:conditioning:pooling] (default: the bundle's own), DNSMOS P.835 OVRL (speechmos's ONNX
model, exactly as the quality benchmark computes it), WADA-SNR and the untrained QE model (random weights, k-means
codebook: `benchmarks/baselines.py`). DNSMOS per file is cached in the output folder (it takes minutes).
Writes benchmarks/results/human_ratings/{results.json,results.md}.

    python benchmarks/human_ratings.py --model default --model vqscore-qe-cleanspeech@1.0.0:paper:mean
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks.baselines import untrained_model, wada_snr  # noqa: E402
from benchmarks.rated_sets import DATA, MUSHRA, TCD, read_rated, spearman, voicebank_pairs  # noqa: E402
from vqscore.audio import load_audio  # noqa: E402
from vqscore.dnsmos import Dnsmos  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "human_ratings"


def dnsmos_cached(paths: list[Path]) -> np.ndarray:
    cache_path = OUT / "dnsmos_ovrl.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    missing = [p for p in paths if os.path.relpath(p, DATA) not in cache]
    if missing:
        dnsmos = Dnsmos()
        for p in missing:
            cache[os.path.relpath(p, DATA)] = dnsmos(load_audio(p).samples)["dnsmos_ovrl"]
        OUT.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache, indent=0, sort_keys=True) + "\n")
    return np.asarray([cache[os.path.relpath(p, DATA)] for p in paths])


def scorers(models: list[str]) -> dict:
    """name -> function(list of paths) -> scores (higher = better)."""
    out = {}
    first = None
    for spec in models:
        name, *rest = spec.split(":")
        model = vqscore.load(name, conditioning=rest[0] if rest else None, pooling=rest[1] if len(rest) > 1 else None)
        first = first or model
        label = f"VQScore {model.tag} ({model.conditioning.name}, {model.pooling})"
        out[label] = lambda paths, m=model: np.asarray(m.vqscore(paths), dtype=np.float64)
    out["DNSMOS P.835 OVRL"] = dnsmos_cached
    out["WADA-SNR"] = lambda paths: np.asarray([wada_snr(load_audio(p).samples) for p in paths])
    # the untrained baseline scores with the first model's conditioning and pooling: only the training differs
    untrained = untrained_model(DATA).with_conditioning(first.conditioning).with_pooling(first.pooling)
    label = f"untrained QE (random weights, k-means codebook; {first.conditioning.name}, {first.pooling})"
    out[label] = lambda paths: np.asarray(untrained.vqscore(paths), dtype=np.float64)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="NAME[:conditioning:pooling]; repeatable (default: default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tcd_paths, mos, tcd_rows = read_rated(TCD, "mos")
    mushra_paths, mushra, _ = read_rated(MUSHRA, "mushra_mean")
    clean, noisy = voicebank_pairs()
    degradations = sorted({r["degradation"] for r in tcd_rows})
    results = {}
    for label, score in scorers(args.model or ["default"]).items():
        tcd = score(tcd_paths)
        per = {d: spearman(tcd[m], mos[m]) for d in degradations for m in [np.array([r["degradation"] == d for r in tcd_rows])]}
        pairs = int(np.sum(score(clean) > score(noisy)))
        results[label] = {"tcd_voip_dev": spearman(tcd, mos), "per_degradation": per, "mushra": spearman(score(mushra_paths), mushra), "voicebank_pairs": pairs}
        print(label, json.dumps(results[label]), flush=True)
    lines = [
        "# Against people: Spearman correlation with listeners' ratings",
        "",
        "| score | TCD-VoIP dev MOS (192) | " + " | ".join(degradations) + " | MUSHRA codecs (128) | VoiceBank pairs |",
        "|---|---:|" + "---:|" * len(degradations) + "---:|---:|",
    ]
    for label, r in results.items():
        per = " | ".join(f"{r['per_degradation'][d]:.3f}" for d in degradations)
        lines.append(f"| {label} | {r['tcd_voip_dev']:.3f} | {per} | {r['mushra']:.3f} | {r['voicebank_pairs']}/7 |")
    command = "python benchmarks/human_ratings.py " + " ".join(f"--model {m}" for m in (args.model or ["default"]))
    text = "\n".join(lines) + f"\n\n`{command}`, torch {torch.__version__}\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"command": command, "results": results}, indent=1) + "\n")
    (OUT / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
