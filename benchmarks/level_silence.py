"""How level and digital silence move the score, for each input conditioning, and what typical scores are.

For the real VoiceBank-DEMAND clean/noisy pairs: the score at -20/-40/-60 dB against the file as recorded, and with
5 s of digital silence appended (and 1 s prepended). For the human-rated TCD-VoIP dev set and the MUSHRA codec set:
the Spearman correlation with the listeners' ratings, and the typical score of files people rated good, fair and
bad, so that users get a scale for the raw cosine. Run for "paper" (the waveform as given) and "robust" (trimmed,
level-normalised) conditioning; writes benchmarks/results/level_silence/{results.json,results.md}.

    python benchmarks/level_silence.py [--model default]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks.rated_sets import MUSHRA, TCD, VOICEBANK, read_rated, spearman  # noqa: E402
from vqscore.audio import load_audio  # noqa: E402
from vqscore.conditioning import CONDITIONINGS  # noqa: E402

GAINS_DB = (-20, -40, -60)
SR = 16_000


def voicebank(model) -> dict:
    rows = []
    for kind in ("clean", "noisy"):
        for path in sorted((VOICEBANK / kind).glob("*.flac")):
            x = load_audio(path).samples
            base = model.vqscore(x, sr=SR)
            row = {"file": f"{kind}/{path.name}", "score": base}
            for g in GAINS_DB:
                row[f"{g} dB"] = model.vqscore(x * np.float32(10 ** (g / 20)), sr=SR) - base
            row["+5 s silence after"] = model.vqscore(np.concatenate([x, np.zeros(5 * SR, np.float32)]), sr=SR) - base
            row["+1 s silence before"] = model.vqscore(np.concatenate([np.zeros(SR, np.float32), x]), sr=SR) - base
            rows.append(row)
    clean = {r["file"].split("/")[1]: r["score"] for r in rows if r["file"].startswith("clean")}
    noisy = {r["file"].split("/")[1]: r["score"] for r in rows if r["file"].startswith("noisy")}
    gaps = [clean[k] - noisy[k] for k in clean]
    changes = {
        key: {"max_abs": float(max(abs(r[key]) for r in rows)), "mean": float(np.mean([r[key] for r in rows]))}
        for key in rows[0]
        if key not in ("file", "score")
    }
    return {
        "files": rows,
        "changes": changes,
        "pairs_clean_higher": int(sum(g > 0 for g in gaps)),
        "pairs": len(gaps),
        "clean_minus_noisy": {"min": float(min(gaps)), "max": float(max(gaps))},
    }


def rated(model, folder: Path, label: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    paths, ratings, rows = read_rated(folder, label)
    return np.asarray(model.vqscore(paths), dtype=np.float64), ratings, rows


def typical(scores: np.ndarray, ratings: np.ndarray, bands: list[tuple[str, float, float]]) -> dict:
    out = {}
    for name, lo, hi in bands:
        chosen = scores[(ratings >= lo) & (ratings < hi)]
        if chosen.size:
            out[name] = {
                "files": int(chosen.size),
                "median": float(np.median(chosen)),
                "p10": float(np.percentile(chosen, 10)),
                "p90": float(np.percentile(chosen, 90)),
            }
    return out


def measure(model) -> dict:
    result = {"voicebank": voicebank(model)}
    scores, mos, rows = rated(model, TCD, "mos")
    result["tcd_voip_dev"] = {
        "srcc_mos": spearman(scores, mos),
        "per_degradation": {
            d: spearman(scores[m], mos[m])
            for d in sorted({r["degradation"] for r in rows})
            for m in [np.array([r["degradation"] == d for r in rows])]
        },
        "typical": typical(scores, mos, [("good (MOS >= 4)", 4, 9), ("fair (2.5-4)", 2.5, 4), ("bad (< 2.5)", 0, 2.5)]),
    }
    scores, mushra, _ = rated(model, MUSHRA, "mushra_mean")
    result["mushra_codecs"] = {"srcc_mushra": spearman(scores, mushra)}
    return result


def markdown(results: dict, model_name: str) -> str:
    lines = [f"# Level, silence and typical scores ({model_name})", ""]
    names = list(results)
    lines += ["Change of the VQScore against the file as recorded, VoiceBank-DEMAND 7 clean + 7 noisy files "
              "(largest absolute change, and mean):", ""]
    lines += ["| change | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in results[names[0]]["voicebank"]["changes"]:
        cells = [
            f"{results[n]['voicebank']['changes'][key]['max_abs']:.4f} ({results[n]['voicebank']['changes'][key]['mean']:+.4f})"
            for n in names
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    gap = [
        f"{results[n]['voicebank']['clean_minus_noisy']['min']:.3f} to {results[n]['voicebank']['clean_minus_noisy']['max']:.3f}"
        for n in names
    ]
    lines.append("| clean minus noisy, the 7 pairs (for scale) | " + " | ".join(gap) + " |")
    pairs = [f"{results[n]['voicebank']['pairs_clean_higher']}/{results[n]['voicebank']['pairs']}" for n in names]
    lines.append("| pairs where clean scores higher | " + " | ".join(pairs) + " |")
    lines += ["", "Against people (Spearman):", "", "| set | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| TCD-VoIP dev, MOS (192 files) | " + " | ".join(f"{results[n]['tcd_voip_dev']['srcc_mos']:.3f}" for n in names) + " |")
    for d in results[names[0]]["tcd_voip_dev"]["per_degradation"]:
        lines.append(
            f"| - {d} | " + " | ".join(f"{results[n]['tcd_voip_dev']['per_degradation'][d]:.3f}" for n in names) + " |"
        )
    lines.append(
        "| MUSHRA codecs (128 files) | " + " | ".join(f"{results[n]['mushra_codecs']['srcc_mushra']:.3f}" for n in names) + " |"
    )
    lines += ["", "Typical scores on TCD-VoIP dev by listeners' MOS (median, 10th-90th percentile):", ""]
    lines += ["| MOS band | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for band in results[names[0]]["tcd_voip_dev"]["typical"]:
        cells = []
        for n in names:
            t = results[n]["tcd_voip_dev"]["typical"][band]
            cells.append(f"{t['median']:.3f} ({t['p10']:.3f}-{t['p90']:.3f}), {t['files']} files")
        lines.append(f"| {band} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def per_conditioning_main(argv, script: str, description: str, measure_fn, markdown_fn) -> int:
    """The shared command line of the per-conditioning benchmarks (this one and pooling.py): --model and --out,
    `measure_fn(model)` for each conditioning, results.json and `markdown_fn(results, tag)` as results.md."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="default", help="shipped bundle name, bundle path or official checkpoint")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / script)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = vqscore.load(args.model)
    results = {name: measure_fn(base.with_conditioning(name)) for name in CONDITIONINGS}
    args.out.mkdir(parents=True, exist_ok=True)
    info = {
        "model": base.tag,
        "command": f"python benchmarks/{script}.py" + (f" --model {args.model}" if args.model != "default" else ""),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    (args.out / "results.json").write_text(json.dumps({"info": info, "results": results}, indent=1) + "\n")
    text = markdown_fn(results, base.tag) + f"\n`{info['command']}`, torch {info['torch']}\n"
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return per_conditioning_main(argv, "level_silence", __doc__.split("\n\n")[0], measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
