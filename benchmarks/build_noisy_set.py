"""Build a paired noisy/clean speech-enhancement set from the shared real audio (held-out speakers only).

    python benchmarks/build_noisy_set.py --split val  --out out/noisy-val     # 50 pairs: checkpoint validation
    python benchmarks/build_noisy_set.py --split test --out out/noisy-test    # 307 pairs: the enhancement benchmark

Clean sources are those of the quality set (`build_quality_set.clean_items`): the held-out speakers of
`splits/speakers.json`, LibriSpeech 'val' or 'test' speakers as random 4-6 s crops (`--per-speaker`, default
val 1, test 2), and for the test split also the AN4 test speakers (`--per-speaker` whole utterances each). Each
clean utterance, its mean removed (a few recordings carry a large DC offset), gets one noisy file per condition:
`noise:<folder>` for every folder of data/noise (a random file of it, high-passed at 50 Hz) and `babble` (3-5
other held-out speakers of the split), at an SNR cycled over -5, 0, 5, 10, 15, 20 dB (each condition sees every
SNR equally often; one utterance gets a different SNR in each condition). The test split also carries the 7 real
VoiceBank-DEMAND noisy recordings and their clean references (condition `real-voicebank`, snr_db empty;
`--voicebank/--no-voicebank` overrides). `--rated-references` adds, after the split's own utterances, the hidden
references of the MUSHRA codec set (`human-rated/mushra-codecs`, source `mushra-reference`): clean VCTK and TSP
sentences of voices no model trains on, each mixed like the others (speakers of the VoiceBank pairs excluded, so that
a validation set built with them shares no voice with the test split). The split's own pairs are unchanged by it.

Writes 16 kHz float WAVs OUT/noisy/<id>.wav and OUT/clean/<id>.wav (the clean utterance is written once per noisy
file, so every pair shares its id; a synthetic pair is scaled together, down only, to a joint peak <= 0.99, so
noisy - clean is exactly the added noise), OUT/manifest.csv with the columns id, noisy, clean, condition, snr_db,
speaker (paths relative to OUT), then the input labels pesq, stoi, si_sdr (noisy against clean) and dnsmos_sig,
dnsmos_bak, dnsmos_ovrl (the noisy file alone; test split only unless `--dnsmos/--no-dnsmos` says otherwise),
source and detail; and OUT/build_info.json. Everything is a function of `--seed` (each file draws from
`build_quality_set.item_rng(seed, key)` of its own key); `--max-clean N` builds the same files as the full set
for its first N clean utterances. `--workers` label processes (default 2); `--no-labels` leaves the labels empty.
Build times on the 2-CPU development machine beside a training run, one label worker: val 5 s, test 5 min.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: label workers stay single-threaded

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import build_quality_set as Q  # noqa: E402

RATE = Q.RATE
SNRS = (-5, 0, 5, 10, 15, 20)
DEFAULT_PER_SPEAKER = {"test": 2, "val": 1}
REAL = "real-voicebank"
MUSHRA_LABELS = Path("human-rated") / "mushra-codecs" / "labels.csv"
MUSHRA_REFERENCE = "Reference"

KEY_COLUMNS = ("id", "noisy", "clean", "condition", "snr_db", "speaker")
LABELS = ("pesq", "stoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
COLUMNS = (*KEY_COLUMNS, *LABELS, "source", "detail")


@dataclass
class Pair:
    id: str
    condition: str
    speaker: str
    source: str
    snr_db: float | None = None
    detail: str = ""
    labels: dict = field(default_factory=dict)

    @property
    def noisy(self) -> str:
        return f"noisy/{self.id}.wav"

    @property
    def clean(self) -> str:
        return f"clean/{self.id}.wav"


def conditions(cache: Q.Cache) -> list[str]:
    return [f"noise:{d.name}" for d in cache.noise_dirs] + ["babble"]


def write_pair(out: Path, pair: Pair, noisy: np.ndarray, clean: np.ndarray) -> Pair:
    """Both signals scaled by one factor (down only) to a joint peak <= 0.99, so noisy - clean stays the noise."""
    n = min(noisy.shape[0], clean.shape[0])
    noisy, clean = noisy[:n].astype(np.float64), clean[:n].astype(np.float64)
    peak = max(float(np.abs(noisy).max()), float(np.abs(clean).max()))
    if peak > Q.PEAK_LIMIT:
        noisy, clean = noisy * (Q.PEAK_LIMIT / peak), clean * (Q.PEAK_LIMIT / peak)
    Q.write_wav(out, pair.noisy, noisy.astype(np.float32))
    Q.write_wav(out, pair.clean, clean.astype(np.float32))
    return pair


def synthetic_pairs(items: list[Q.CleanItem], cache: Q.Cache, out: Path, seed: int) -> list[Pair]:
    pairs = []
    names = conditions(cache)
    for index, item in enumerate(items):
        # some recordings carry a large DC offset (LibriSpeech 445: -0.26 on a 0.05 RMS signal): inaudible power that
        # would make the nominal SNR meaningless and the reference unlike speech, so the clean is zero-meaned first
        item = replace(item, samples=(item.samples - item.samples.mean(dtype=np.float64)).astype(np.float32))
        for k, condition in enumerate(names):
            snr = SNRS[(index + k + seed) % len(SNRS)]
            if condition == "babble":
                noisy, detail = Q.babble_mix(item, snr, cache, seed)
            else:
                noisy, detail = Q.noise_mix(item, condition.removeprefix("noise:"), snr, cache, seed)
            tag = condition.replace(":", "-")
            pair = Pair(f"{item.uid}__{tag}", condition, item.speaker, item.source, snr, f"{item.detail}; {detail}")
            pairs.append(write_pair(out, pair, noisy, item.samples))
    return pairs


def voicebank_pairs(data: Path, out: Path) -> list[Pair]:
    pairs = []
    for noisy, clean, speaker in Q.voicebank_pairs(data):
        pair = Pair(f"{noisy.stem}__{REAL}", REAL, speaker, "voicebank", None, f"real-noisy/voicebank/noisy/{noisy.name}")
        pairs.append(write_pair(out, pair, Q.read_16k(noisy), Q.read_16k(clean)))
    return pairs


def reference_speaker(signal: str) -> str:
    """'VCTK_p229_293' -> 'p229' (VoiceBank's spelling of VCTK voices), 'TSP_FB10_07' -> 'FB10'."""
    parts = signal.split("_")
    if len(parts) != 3 or parts[0] not in ("VCTK", "TSP"):
        raise ValueError(f"{signal!r}: not a VCTK_<speaker>_<n> or TSP_<speaker>_<n> signal name")
    return parts[1]


def rated_references(data: Path) -> list[Q.CleanItem]:
    """Clean items from the MUSHRA set's hidden references, one per sentence, minus the VoiceBank pairs' voices."""
    labels = data / MUSHRA_LABELS
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: the MUSHRA labels are missing (--rated-references needs them)")
    excluded = {speaker for _, _, speaker in Q.voicebank_pairs(data)}
    with open(labels, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["condition"] == MUSHRA_REFERENCE]
    items = []
    for row in sorted(rows, key=lambda r: r["signal"]):
        speaker = reference_speaker(row["signal"])
        if speaker in excluded:
            continue
        path = labels.parent / row["file"]
        uid = f"mushra-{row['signal']}"
        items.append(Q.CleanItem(uid, "mushra-reference", speaker, Q.read_16k(path), f"{MUSHRA_LABELS.parent}/{row['file']}"))
    return items


def write_manifest(pairs: list[Pair], out: Path) -> Path:
    path = out / "manifest.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for p in pairs:
            snr = "" if p.snr_db is None else f"{p.snr_db:g}"
            labels = (Q.fmt(p.labels.get(k)) for k in LABELS)
            writer.writerow([p.id, p.noisy, p.clean, p.condition, snr, p.speaker, *labels, p.source, p.detail])
    return path


def build(
    split: str,
    data: Path,
    out: Path,
    seed: int = 0,
    per_speaker: int | None = None,
    max_clean: int | None = None,
    labels: bool = True,
    dnsmos: bool | None = None,
    workers: int = 2,
    voicebank: bool | None = None,
    rated_references_too: bool = False,
) -> list[Pair]:
    if split not in DEFAULT_PER_SPEAKER:
        raise ValueError(f"split must be one of {sorted(DEFAULT_PER_SPEAKER)}")
    data, out = Path(data), Path(out)
    if not (data / "clean").is_dir():
        raise FileNotFoundError(f"{data}: not the shared data root (no clean/ folder)")
    out.mkdir(parents=True, exist_ok=True)
    items = Q.clean_items(data, split, per_speaker or DEFAULT_PER_SPEAKER[split], seed)
    if max_clean is not None:
        items = items[:max_clean]
    if rated_references_too:
        items = items + rated_references(data)
    pairs = synthetic_pairs(items, Q.Cache(data, split), out, seed)
    if voicebank if voicebank is not None else split == "test":
        pairs.extend(voicebank_pairs(data, out))
    if labels:
        dnsmos = split == "test" if dnsmos is None else dnsmos
        results = Q.label_files(out, [(p.noisy, p.clean) for p in pairs], workers, dnsmos=dnsmos)
        for pair, result in zip(pairs, results, strict=True):
            pair.labels = result
    write_manifest(pairs, out)
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(DEFAULT_PER_SPEAKER), default="test")
    parser.add_argument(
        "--data", type=Path, default=Q.DEFAULT_DATA, help="shared data root (default: ../shared/data beside the repo)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-speaker", type=int, default=None, help="clean utterances per speaker (default: test 2, val 1)")
    parser.add_argument("--max-clean", type=int, default=None, help="keep only the first N clean utterances (quick builds)")
    parser.add_argument(
        "--voicebank",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the real VoiceBank pairs (default: test split only)",
    )
    parser.add_argument(
        "--rated-references",
        action="store_true",
        help="also mix the MUSHRA set's clean hidden references (other voices and corpora; VoiceBank's voices excluded)",
    )
    parser.add_argument("--no-labels", action="store_true", help="skip the input labels (label columns left empty)")
    parser.add_argument(
        "--dnsmos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="DNSMOS of the noisy files (default: test split only)",
    )
    parser.add_argument("--workers", type=int, default=2, help="label processes (default 2)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    pairs = build(
        args.split,
        args.data,
        args.out,
        seed=args.seed,
        per_speaker=args.per_speaker,
        max_clean=args.max_clean,
        labels=not args.no_labels,
        dnsmos=args.dnsmos,
        workers=args.workers,
        voicebank=args.voicebank,
        rated_references_too=args.rated_references,
    )
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.condition] = counts.get(p.condition, 0) + 1
    snrs: dict[str, int] = {}
    for p in pairs:
        key = "" if p.snr_db is None else f"{p.snr_db:g}"
        snrs[key] = snrs.get(key, 0) + 1
    info = {
        "command": " ".join(
            [
                os.path.relpath(sys.argv[0]) if argv is None else "build_noisy_set.py",
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
        "split": args.split,
        "seed": args.seed,
        "files": len(pairs),
        "seconds_of_audio": round(sum(Q.read_mono(args.out / p.noisy)[0].shape[0] for p in pairs) / RATE, 1),
        "per_condition": counts,
        "per_snr_db": snrs,
        "labels": not args.no_labels,
        "rated_references": args.rated_references,
    }
    Q.write_build_info(args.out, info, elapsed, f"{len(pairs)} noisy/clean pairs", counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
