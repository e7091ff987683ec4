"""Build a labelled speech-quality set from the shared real audio (clean speech of held-out speakers, degraded).

    python benchmarks/build_quality_set.py --split test --out out/quality-test          # ~670 files
    python benchmarks/build_quality_set.py --split val  --out out/quality-val           # ~110 files

Clean sources are the held-out speakers of `splits/speakers.json`: LibriSpeech 'test' (or 'val') speakers,
cropped to random 4-6 s segments (`--per-speaker` non-overlapping crops of each speaker's file), and for the
test split also the AN4 test speakers (`--per-speaker` utterances each, used whole). Each clean utterance gets
one file per degradation: clean, noise:<folder> for every folder of data/noise (SNR cycled over
-5..30 dB), babble (3-5 other held-out LibriSpeech speakers), reverb (data/rir), bandlimit, clipping,
telephone (8 kHz, 300-3400 Hz, mu-law) and musical (spectral subtraction of a noisy mix). The test split
also carries the real VoiceBank-DEMAND noisy recordings (degradation 'real-voicebank') and their clean
references ('clean' rows, source voicebank).

Writes 16 kHz float WAVs under OUT/audio/ and OUT/manifest.csv (paths relative to OUT), plus OUT/build_info.json.
Labels: wide-band PESQ, STOI, SI-SDR against the clean reference, and DNSMOS (SIG/BAK/OVRL) on the file alone,
computed in a multiprocessing pool (`--workers`, default 2). Everything is a function of `--seed`: each file
draws from its own generator seeded by (seed, crc32 of its id), so a subset build (`--max-clean`) makes the
same files as the full build.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: label workers stay single-threaded

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import degrade as D  # noqa: E402
from recipes.common.mixing import highpass_noise, read_rir  # noqa: E402

RATE = D.RATE
DEFAULT_DATA = REPO.parent / "shared" / "data"
SPLITS = REPO / "splits" / "speakers.json"
LIBRISPEECH = "librispeech-train-clean-100"

NOISE_SNRS = (-5, 0, 5, 10, 15, 20, 30)
BABBLE_SNRS = (0, 5, 10, 15, 20)
MUSICAL_SNRS = (0, 5, 10)
CLIP_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
PEAK_LIMIT = 0.99
CROP_SECONDS = (4.0, 6.0)
DEFAULT_PER_SPEAKER = {"test": 2, "val": 1}

LABELS = ("pesq", "stoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
COLUMNS = ("path", "clean_path", "speaker", "source", "degradation", "snr_db", *LABELS, "detail")


@dataclass
class CleanItem:
    uid: str
    source: str
    speaker: str
    samples: np.ndarray
    detail: str


@dataclass
class Row:
    path: str
    clean_path: str
    speaker: str
    source: str
    degradation: str
    snr_db: float | None = None
    detail: str = ""
    labels: dict = field(default_factory=dict)


def item_rng(seed: int, key: str) -> np.random.Generator:
    """A generator of its own for each file: the same (seed, key) always draws the same numbers."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    return data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32), int(sr)


def read_16k(path: Path) -> np.ndarray:
    x, sr = read_mono(path)
    return x if sr == RATE else soxr.resample(x, sr, RATE, quality="VHQ").astype(np.float32)


def load_split(split: str) -> dict:
    table = json.loads(SPLITS.read_text())
    return {"librispeech": table[LIBRISPEECH][split], "an4": table["an4"][split]}


def librispeech_files(data: Path, speakers: list[str]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {s: [] for s in speakers}
    for f in sorted((data / "clean" / LIBRISPEECH).glob("*.flac")):
        spk = f.name.split("-")[0]
        if spk in found:
            found[spk].append(f)
    missing = [s for s, fs in found.items() if not fs]
    if missing:
        raise FileNotFoundError(f"no LibriSpeech files for speakers {missing} under {data / 'clean' / LIBRISPEECH}")
    return found


def librispeech_crops(path: Path, speaker: str, count: int, seed: int) -> list[CleanItem]:
    """`count` non-overlapping random 4-6 s crops: one inside each of `count` equal parts of the file."""
    x = read_16k(path)
    part = x.shape[0] // count
    items = []
    for k in range(count):
        uid = f"{path.stem}_c{k}"
        rng = item_rng(seed, "crop:" + uid)
        length = min(part, int(round(rng.uniform(*CROP_SECONDS) * RATE)))
        start = k * part + int(rng.integers(0, part - length + 1))
        detail = f"{path.name} {start / RATE:.3f}-{(start + length) / RATE:.3f} s"
        items.append(CleanItem(uid, "librispeech", speaker, x[start : start + length].copy(), detail))
    return items


def clean_items(data: Path, split: str, per_speaker: int, seed: int) -> list[CleanItem]:
    speakers = load_split(split)
    items: list[CleanItem] = []
    for spk, files in librispeech_files(data, speakers["librispeech"]).items():
        per_file = max(1, math.ceil(per_speaker / len(files)))
        crops = [c for f in files for c in librispeech_crops(f, spk, per_file, seed)]
        items.extend(crops[:per_speaker])
    for spk in speakers["an4"]:
        files = sorted((data / "clean" / "an4" / split / spk).glob("*.flac"))
        if not files:
            raise FileNotFoundError(f"no AN4 files for speaker {spk} under {data / 'clean' / 'an4' / split}")
        rng = item_rng(seed, "an4:" + spk)
        chosen = sorted(rng.choice(len(files), size=min(per_speaker, len(files)), replace=False).tolist())
        for i in chosen:
            items.append(CleanItem(files[i].stem, "an4", spk, read_16k(files[i]), files[i].name))
    return items


class Cache:
    """Noise files, RIRs and babble talkers, read (and resampled to 16 kHz) once."""

    def __init__(self, data: Path, split: str):
        self.data = data
        self.noise_dirs = sorted(p for p in (data / "noise").iterdir() if p.is_dir())
        self.noise_files = {d.name: sorted(d.glob("*.flac")) for d in self.noise_dirs}
        self.rir_files = sorted((data / "rir").rglob("*.flac"))
        if not self.rir_files or not all(self.noise_files.values()):
            raise FileNotFoundError(f"missing noise or RIR files under {data}")
        self.talker_files = librispeech_files(data, load_split(split)["librispeech"])
        self._audio: dict[Path, np.ndarray] = {}
        self._rirs: dict[Path, np.ndarray] = {}
        self._noise: dict[Path, np.ndarray] = {}

    def audio(self, path: Path) -> np.ndarray:
        if path not in self._audio:
            self._audio[path] = read_16k(path)
        return self._audio[path]

    def rir(self, path: Path) -> np.ndarray:
        if path not in self._rirs:
            self._rirs[path] = read_rir(path)
        return self._rirs[path]

    def noise(self, folder: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """A random file of `folder`, high-passed as every noise is before mixing (`mixing.highpass_noise`)."""
        files = self.noise_files[folder]
        for _ in range(20):
            path = files[int(rng.integers(len(files)))]
            if path not in self._noise:
                self._noise[path] = highpass_noise(self.audio(path))
            x = self._noise[path]
            if float(np.std(x)) > 0:
                return x, f"{folder}/{path.name}"
        raise RuntimeError(f"only silent noise files drawn from {folder}")


def limit_peak(x: np.ndarray) -> np.ndarray:
    """Scale down (never up) so that |x| <= 0.99: DNSMOS and WAV readers expect [-1, 1]; the labels are level-free."""
    peak = float(np.abs(x).max())
    return (x * (PEAK_LIMIT / peak)).astype(np.float32) if peak > PEAK_LIMIT else x.astype(np.float32)


def noise_mix(item: CleanItem, folder: str, snr: float, cache: Cache, seed: int) -> tuple[np.ndarray, str]:
    """The item plus a random file of noise folder `folder` at `snr` dB, and the noise file's name."""
    rng = item_rng(seed, f"{item.uid}:noise:{folder}")
    noise, name = cache.noise(folder, rng)
    return D.mix_at_snr(item.samples, noise, snr, rng), name


def babble_mix(item: CleanItem, snr: float, cache: Cache, seed: int) -> tuple[np.ndarray, str]:
    """The item plus babble of 3-5 other speakers of the split at `snr` dB, and 'talkers A+B+...'."""
    rng = item_rng(seed, f"{item.uid}:babble")
    others = sorted(s for s in cache.talker_files if s != item.speaker)
    count = min(int(rng.integers(3, 6)), len(others))
    chosen = [others[i] for i in sorted(rng.choice(len(others), size=count, replace=False).tolist())]
    talkers = [cache.audio(cache.talker_files[s][int(rng.integers(len(cache.talker_files[s])))]) for s in chosen]
    return D.babble(item.samples, talkers, snr, rng), "talkers " + "+".join(chosen)


def degradations(item: CleanItem, index: int, cache: Cache, seed: int):
    """(degradation, file tag, audio, snr_db, detail) for every degraded version of one clean item."""
    clean = item.samples
    folders = [d.name for d in cache.noise_dirs]
    for k, folder in enumerate(folders):
        snr = NOISE_SNRS[(index + 2 * k + seed) % len(NOISE_SNRS)]
        audio, name = noise_mix(item, folder, snr, cache, seed)
        yield f"noise:{folder}", f"noise-{folder}", audio, snr, name

    snr = BABBLE_SNRS[(index + seed) % len(BABBLE_SNRS)]
    audio, talkers = babble_mix(item, snr, cache, seed)
    yield "babble", "babble", audio, snr, talkers

    rir_path = cache.rir_files[(index + seed) % len(cache.rir_files)]
    yield "reverb", "reverb", D.reverb(clean, cache.rir(rir_path)), None, str(rir_path.relative_to(cache.data / "rir"))

    rng = item_rng(seed, f"{item.uid}:bandlimit")
    if (index + seed) % 3 == 2:
        cutoff, kind = float(rng.uniform(500.0, 1000.0)), "highpass"
    else:
        cutoff, kind = float(rng.uniform(2000.0, 4000.0)), "lowpass"
    yield "bandlimit", "bandlimit", D.band_limit(clean, cutoff, kind), None, f"{kind} {cutoff:.0f} Hz"

    fraction = CLIP_FRACTIONS[(index + seed) % len(CLIP_FRACTIONS)]
    yield "clipping", "clipping", D.clip(clean, fraction), None, f"clip at {fraction:g} of peak"

    yield "telephone", "telephone", D.telephone(clean), None, "8 kHz 300-3400 Hz mu-law 8-bit"

    rng = item_rng(seed, f"{item.uid}:musical")
    folder = folders[(index + seed) % len(folders)]
    snr = MUSICAL_SNRS[(index + seed) % len(MUSICAL_SNRS)]
    noise, name = cache.noise(folder, rng)
    enhanced = D.spectral_subtraction(D.mix_at_snr(clean, noise, snr, rng))
    yield "musical", "musical", enhanced, snr, f"spectral subtraction of {name} at {snr} dB"


def write_wav(out: Path, rel: str, x: np.ndarray) -> str:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fspath(path), limit_peak(x), RATE, subtype="FLOAT")
    return rel


def voicebank_pairs(data: Path) -> list[tuple[Path, Path, str]]:
    """(noisy, clean, speaker) for each real VoiceBank-DEMAND recording under data/real-noisy/voicebank."""
    root = data / "real-noisy" / "voicebank"
    pairs = []
    for noisy in sorted((root / "noisy").glob("*.flac")):
        clean = root / "clean" / noisy.name
        if not clean.is_file():
            raise FileNotFoundError(f"{clean}: the clean reference of {noisy} is missing")
        pairs.append((noisy, clean, noisy.stem.split("_")[0]))
    return pairs


def voicebank_rows(data: Path, out: Path) -> list[Row]:
    rows = []
    for noisy, clean, speaker in voicebank_pairs(data):
        clean_rel = write_wav(out, f"audio/voicebank/{speaker}/{noisy.stem}__clean.wav", read_16k(clean))
        noisy_rel = write_wav(out, f"audio/voicebank/{speaker}/{noisy.stem}__real-voicebank.wav", read_16k(noisy))
        rows.append(
            Row(clean_rel, clean_rel, speaker, "voicebank", "clean", detail=f"real-noisy/voicebank/clean/{clean.name}")
        )
        rows.append(
            Row(
                noisy_rel, clean_rel, speaker, "voicebank", "real-voicebank", detail=f"real-noisy/voicebank/noisy/{noisy.name}"
            )
        )
    return rows


def make_rows(items: list[CleanItem], cache: Cache, out: Path, seed: int) -> list[Row]:
    rows = []
    for index, item in enumerate(items):
        base = f"audio/{item.source}/{item.speaker}/{item.uid}"
        clean_rel = write_wav(out, f"{base}__clean.wav", item.samples)
        rows.append(Row(clean_rel, clean_rel, item.speaker, item.source, "clean", detail=item.detail))
        for degradation, tag, audio, snr, detail in degradations(item, index, cache, seed):
            rel = write_wav(out, f"{base}__{tag}.wav", audio)
            rows.append(Row(rel, clean_rel, item.speaker, item.source, degradation, snr, detail))
    return rows


# ---------------------------------------------------------------- labels (run in worker processes)

_DNSMOS = None


def init_worker() -> None:
    from vqscore.dnsmos import Dnsmos

    global _DNSMOS
    _DNSMOS = Dnsmos()


def compute_labels(clean: np.ndarray, degraded: np.ndarray, dnsmos: bool = True) -> dict[str, float]:
    """Intrusive labels of `degraded` against `clean` and (unless `dnsmos` is false) DNSMOS of `degraded`
    (both 16 kHz, same length)."""
    from recipes.common.metrics import intrusive_quality

    if dnsmos and _DNSMOS is None:
        init_worker()
    n = min(clean.shape[0], degraded.shape[0])
    clean, degraded = clean[:n].astype(np.float64), degraded[:n].astype(np.float64)
    out = intrusive_quality(clean, degraded, RATE)
    out["si_sdr"] = D.si_sdr(clean, degraded)
    if dnsmos:
        out.update(_DNSMOS(degraded))
    return out


def label_job(job: tuple) -> dict[str, float]:
    """Labels of one file: job = (root, path, clean_path[, dnsmos]) with paths relative to root."""
    out, path, clean_path, *rest = job
    degraded, _ = sf.read(os.path.join(out, path), dtype="float32")
    clean, _ = sf.read(os.path.join(out, clean_path), dtype="float32")
    return compute_labels(clean, degraded, dnsmos=rest[0] if rest else True)


def label_files(out: Path, pairs: list[tuple[str, str]], workers: int, dnsmos: bool = True) -> list[dict[str, float]]:
    """Labels of each (path, clean_path) pair (relative to `out`), in order, in a pool of `workers` processes."""
    jobs = [(os.fspath(out), path, clean_path, dnsmos) for path, clean_path in pairs]
    if workers <= 1:
        return [label_job(j) for j in jobs]
    results = []
    started = time.perf_counter()
    with Pool(workers, initializer=init_worker if dnsmos else None) as pool:
        for done, labels in enumerate(pool.imap(label_job, jobs, chunksize=4), 1):
            results.append(labels)
            if done % 100 == 0 or done == len(jobs):
                print(f"  labelled {done}/{len(jobs)} ({time.perf_counter() - started:.0f} s)", flush=True)
    return results


def label_rows(rows: list[Row], out: Path, workers: int) -> None:
    results = label_files(out, [(r.path, r.clean_path) for r in rows], workers)
    for row, labels in zip(rows, results, strict=True):
        row.labels = labels


# ---------------------------------------------------------------- manifest


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_manifest(rows: list[Row], out: Path) -> Path:
    path = out / "manifest.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            snr = "" if r.snr_db is None else f"{r.snr_db:g}"
            writer.writerow(
                [
                    r.path,
                    r.clean_path,
                    r.speaker,
                    r.source,
                    r.degradation,
                    snr,
                    *(fmt(r.labels.get(k)) for k in LABELS),
                    r.detail,
                ]
            )
    return path


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def build(
    split: str,
    data: Path,
    out: Path,
    seed: int = 0,
    per_speaker: int | None = None,
    max_clean: int | None = None,
    labels: bool = True,
    workers: int = 2,
    voicebank: bool | None = None,
) -> list[Row]:
    if split not in DEFAULT_PER_SPEAKER:
        raise ValueError(f"split must be one of {sorted(DEFAULT_PER_SPEAKER)}")
    data, out = Path(data), Path(out)
    if not (data / "clean").is_dir():
        raise FileNotFoundError(f"{data}: not the shared data root (no clean/ folder)")
    out.mkdir(parents=True, exist_ok=True)
    items = clean_items(data, split, per_speaker or DEFAULT_PER_SPEAKER[split], seed)
    if max_clean is not None:
        items = items[:max_clean]
    rows = make_rows(items, Cache(data, split), out, seed)
    if voicebank if voicebank is not None else split == "test":
        rows.extend(voicebank_rows(data, out))
    if labels:
        label_rows(rows, out, workers)
    write_manifest(rows, out)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(DEFAULT_PER_SPEAKER), default="test")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="shared data root (default: ../shared/data beside the repo)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-speaker", type=int, default=None, help="clean utterances per speaker (default: test 2, val 1)")
    parser.add_argument(
        "--max-clean", type=int, default=None, help="keep only the first N clean utterances (quick builds, tests)"
    )
    parser.add_argument("--no-voicebank", action="store_true", help="leave out the real VoiceBank pairs (test split only)")
    parser.add_argument("--no-labels", action="store_true", help="skip PESQ/STOI/SI-SDR/DNSMOS (label columns left empty)")
    parser.add_argument("--workers", type=int, default=2, help="label processes (default 2)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rows = build(
        args.split,
        args.data,
        args.out,
        seed=args.seed,
        per_speaker=args.per_speaker,
        max_clean=args.max_clean,
        labels=not args.no_labels,
        workers=args.workers,
        voicebank=False if args.no_voicebank else None,
    )
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.degradation] = counts.get(r.degradation, 0) + 1
    info = {
        "command": " ".join(
            [
                os.path.relpath(sys.argv[0]) if argv is None else "build_quality_set.py",
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
        "split": args.split,
        "seed": args.seed,
        "files": len(rows),
        "per_degradation": counts,
        "labels": not args.no_labels,
    }
    write_build_info(args.out, info, elapsed, f"{len(rows)} files", counts)
    return 0


def write_build_info(out: Path, info: dict, elapsed: float, what: str, counts: dict) -> None:
    """OUT/build_info.json with the build's cost and machine added, and a summary on stdout."""
    info = {
        **info,
        "build_seconds": round(elapsed, 1),
        "cpu_seconds": round(sum(os.times()[:4]), 1),  # this process and its label workers
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()},
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{what} in {out} ({elapsed:.0f} s)")
    for name, n in counts.items():
        print(f"  {name:32s} {n}")


if __name__ == "__main__":
    sys.exit(main())
