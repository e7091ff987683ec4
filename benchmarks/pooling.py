"""How per-frame VQScores become one number, measured against people: pooling ablation on human-rated sets.

For each conditioning ("paper", "robust") and each pooling of the per-frame cos(z_t, zq_t) (the paper's mean;
the mean over speech-active frames; low percentiles, which weigh the worst frames as PESQ/POLQA do; the mean of the
worst 10/25 %), and for the paper's other distances (l2_z, cos_x, l2_x) and a cos_z/l2_z combination, the Spearman correlation with listeners' ratings on TCD-VoIP dev (MOS, 192 files; per degradation
too) and the MUSHRA codec set (128 files), plus the clean-above-noisy count on the 7 real VoiceBank pairs.
Writes benchmarks/results/pooling/{results.json,results.md}.

    python benchmarks/pooling.py [--model default]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.level_silence import per_conditioning_main  # noqa: E402
from benchmarks.rated_sets import MUSHRA, TCD, read_rated, spearman, voicebank_pairs  # noqa: E402
from vqscore.audio import load_audio  # noqa: E402

ACTIVE_BELOW_PEAK_DB = 40.0  # a frame is speech-active within 40 dB of the utterance's loudest frame


def frame_energy_db(wav: np.ndarray, times: np.ndarray, sr: int = 16_000, win: int = 512) -> np.ndarray:
    """Energy (dB) of the 32 ms of input around each frame centre."""
    padded = np.pad(wav.astype(np.float64), win // 2)
    centres = np.round(times * sr).astype(int)
    energy = np.array([np.mean(padded[c : c + win] ** 2) for c in centres])
    return 10 * np.log10(energy + 1e-20)


def poolings(frames: np.ndarray, energy_db: np.ndarray) -> dict[str, float]:
    valid = np.isfinite(frames)
    f = frames[valid]
    active = f[energy_db[valid] >= energy_db[valid].max() - ACTIVE_BELOW_PEAK_DB]
    worst = np.sort(f)
    return {
        "mean (paper)": float(f.mean()),
        "mean of active frames": float(active.mean()),
        "10th percentile": float(np.percentile(f, 10)),
        "25th percentile": float(np.percentile(f, 25)),
        "median": float(np.median(f)),
        "mean of worst 10 %": float(worst[: max(1, len(f) // 10)].mean()),
        "mean of worst 25 %": float(worst[: max(1, len(f) // 4)].mean()),
        "25th percentile of active frames": float(np.percentile(active, 25)),
    }


def other_scores(score, median_cos_z: float) -> dict[str, float]:
    """The paper's other distances (signs flipped where lower is cleaner, so every row reads higher = better) and
    one per-file combination of the two latent scores."""
    return {
        "-l2_z (latent distance, mean)": -score.l2_z,
        "cos_x (reconstruction, mean)": score.cos_x,
        "-l2_x (reconstruction, mean)": -score.l2_x,
        "median cos_z - l2_z (combination)": median_cos_z - score.l2_z,
    }


def pooled_scores(model, paths: list[Path]) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for path in paths:
        score = model.score(path)
        energy = frame_energy_db(load_audio(path).samples, score.frame_times)
        pooled = poolings(score.frames, energy)
        pooled.update(other_scores(score, pooled["median"]))
        for name, value in pooled.items():
            out.setdefault(name, []).append(value)
    return {k: np.asarray(v) for k, v in out.items()}


def measure(model) -> dict:
    tcd_paths, mos, tcd_rows = read_rated(TCD, "mos")
    mushra_paths, mushra, _ = read_rated(MUSHRA, "mushra_mean")
    tcd = pooled_scores(model, tcd_paths)
    codec = pooled_scores(model, mushra_paths)
    clean_paths, noisy_paths = voicebank_pairs()
    clean = pooled_scores(model, clean_paths)
    noisy = pooled_scores(model, noisy_paths)
    degradations = sorted({r["degradation"] for r in tcd_rows})
    result = {}
    for pooling in tcd:
        per = {}
        for d in degradations:
            m = np.array([r["degradation"] == d for r in tcd_rows])
            per[d] = spearman(tcd[pooling][m], mos[m])
        result[pooling] = {
            "tcd_voip_dev_srcc": spearman(tcd[pooling], mos),
            "tcd_per_degradation": per,
            "mushra_srcc": spearman(codec[pooling], mushra),
            "voicebank_pairs": int(np.sum(clean[pooling] > noisy[pooling])),
        }
    return result


def markdown(results: dict, model_tag: str) -> str:
    first = next(iter(results.values()))
    degradations = list(next(iter(first.values()))["tcd_per_degradation"])
    lines = [
        f"# Pooling per-frame scores into one ({model_tag})",
        "",
        "Spearman correlation with listeners: TCD-VoIP dev MOS (192 files; per degradation), MUSHRA codec ratings "
        "(128 files); VoiceBank: real pairs where clean scores above noisy (of 7).",
        "",
        "| conditioning | pooling | TCD-VoIP dev | " + " | ".join(degradations) + " | MUSHRA | VoiceBank |",
        "|---|---|---:|" + "---:|" * len(degradations) + "---:|---:|",
    ]
    for conditioning, by_pooling in results.items():
        for pooling, r in by_pooling.items():
            per = " | ".join(f"{r['tcd_per_degradation'][d]:.3f}" for d in degradations)
            lines.append(
                f"| {conditioning} | {pooling} | {r['tcd_voip_dev_srcc']:.3f} | {per} | {r['mushra_srcc']:.3f} | "
                f"{r['voicebank_pairs']}/7 |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return per_conditioning_main(argv, "pooling", __doc__.split("\n\n")[0], measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
