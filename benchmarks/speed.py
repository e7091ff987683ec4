"""How fast vqscore scores: one command, one run, all of shared/data/clean.

    .venv/bin/python benchmarks/speed.py                       # --model default, --data ../shared/data/clean
    .venv/bin/python benchmarks/speed.py --model ../shared/reference/qe_seed0.pkl --repeats 3

Reports RTF = seconds of audio per second of wall time ("x real time") of
  (a) the command line end to end: `python -m vqscore score DATA -o OUT` in a subprocess, decoding included;
      its fixed start-up cost (the same command on one short file: interpreter, torch import, model load, worker
      start) is measured separately and subtracted, and both numbers are reported;
  (b) the API on in-memory audio: `Model.vqscore(list of 16 kHz arrays)` (decoding not timed);
  (c) a per-file reference path doing what the official VQScore inference loop does: one file at a time,
      no masking, the full encoder + quantizer + decoder, the quantizer as a one-hot matrix product (written
      here, a baseline, not library code);
  (d) DNSMOS P.835 (`speechmos.dnsmos.run(x, 16000)`) on a fixed subset (every k-th file; it is far slower);
the ratios (a)/(c) and (a)/(d); the peak resident memory of the command line scoring a 2-hour file (generated on
the fly, streamed in 60 s windows) with its RTF; where the engine's time goes (torch.profiler over a subset); and
the machine (CPU, cores, load average before/after: timings on a busy machine are not comparable).
Writes benchmarks/results/speed/speed.json and speed.md (or --out DIR).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vqscore  # noqa: E402
from vqscore.audio import load_audio  # noqa: E402
from vqscore.engine import Engine, physical_cores, plan_batches, spectra_batch  # noqa: E402
from vqscore.features import make_window  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "clean"


def shown(path) -> str:
    """A path as recorded in results: relative to the repository, so no machine's layout is committed."""
    return os.path.relpath(path, REPO)


FALLBACK_MODEL = REPO.parent / "shared" / "reference" / "qe_seed0.pkl"
SR = 16_000


# ------------------------------------------------------------------------------------------------------ helpers


def audio_files(root: Path) -> list[str]:
    return sorted(
        glob.glob(str(root / "**" / "*.flac"), recursive=True) + glob.glob(str(root / "**" / "*.wav"), recursive=True)
    )


def resolve_model(name: str) -> tuple[str, str]:
    """The model argument to pass on, and a note when 'default' had to fall back to the reference checkpoint."""
    try:
        vqscore.load(name)
        return name, ""
    except (vqscore.BundleError, FileNotFoundError) as exc:
        if name == "default" and FALLBACK_MODEL.is_file():
            return str(
                FALLBACK_MODEL
            ), f"'default' is not available ({exc}); used {FALLBACK_MODEL} (same architecture and cost)"
        raise


def write_results(out: Path, stem: str, result: dict, text: str, indent: int = 1) -> None:
    """OUT/STEM.json (the figures) and OUT/STEM.md (their table), and the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=indent) + "\n")
    (out / f"{stem}.md").write_text(text)
    sys.stdout.write(text)


def machine() -> dict:
    info = {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": "",
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "physical_cores": physical_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def cli(args: list[str], env: dict | None = None) -> float:
    """Wall seconds of `python -m vqscore ARGS` in a subprocess (raises on failure)."""
    cmd = [sys.executable, "-m", "vqscore", *args]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - start
    if run.returncode not in (0, 1):
        raise RuntimeError(f"{shlex.join(cmd)} failed ({run.returncode}): {run.stderr[-2000:]}")
    return wall


# ------------------------------------------------------------------------------------- (c) the official-style loop


@torch.inference_mode()
def official_style_scores(network, wav: np.ndarray) -> tuple[float, float, float, float]:
    """What the official inference does for one file: unmasked forward of the whole VQ-VAE, one-hot quantizer."""
    features = network.features
    x = torch.from_numpy(wav)[None]
    spec = torch.stft(
        x,
        features.n_fft,
        features.hop_length,
        features.win_length,
        make_window(features.window, features.win_length),
        center=True,
        pad_mode="reflect",
        onesided=True,
        return_complex=True,
    )
    X = torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-7)).transpose(1, 2)  # (1, T, 257)
    z = network.encoder(X.transpose(1, 2), None).transpose(1, 2)  # (1, T, 32)
    zn = F.normalize(z, dim=-1)
    codebook = network.quantizer.codebook
    dist = zn @ codebook.t()
    onehot = F.one_hot(dist.argmax(dim=-1), codebook.shape[0]).type(z.dtype)  # (1, T, 2048)
    zq = onehot @ codebook
    Xhat = network.decoder(zq.transpose(1, 2), None).transpose(1, 2)

    def cos(a, b):
        return ((a / (a.norm(dim=-1, keepdim=True) + 1e-5)) * (b / (b.norm(dim=-1, keepdim=True) + 1e-5))).sum(-1).mean()

    def l2(a, b):
        return ((a - b) ** 2 / ((a**2).mean(dim=-1, keepdim=True) + 1e-5)).mean()

    return float(cos(z, zq)), float(l2(z, zq)), float(cos(X, Xhat)), float(l2(X, Xhat))


# ------------------------------------------------------------------------------------------------------ sections


def bench_cli(model: str, data: Path, files: list[str], audio_s: float, repeats: int, workdir: Path, extra: list[str]) -> dict:
    short = min(files, key=lambda f: sf.info(f).frames)
    startup = [
        cli(["score", short, "-o", str(workdir / "one.csv"), "--model", model, "--overwrite", *extra]) for _ in range(repeats)
    ]
    full = [
        cli(["score", str(data), "-o", str(workdir / "all.csv"), "--model", model, "--overwrite", *extra])
        for _ in range(repeats)
    ]
    rows = sum(1 for _ in open(workdir / "all.csv")) - 1
    start_s, full_s = float(np.median(startup)), float(np.median(full))
    return {
        "command": shlex.join(
            ["python", "-m", "vqscore", "score", shown(data), "-o", "OUT", "--model", model, "--overwrite", *extra]
        ),
        "files": rows,
        "startup_s_runs": startup,
        "full_s_runs": full,
        "startup_s": start_s,
        "full_s": full_s,
        "rtf_end_to_end_raw": audio_s / full_s,
        "rtf": audio_s / max(1e-9, full_s - start_s),
    }


def bench_bag(bag: str, data: Path, files: list[str], audio_s: float, repeats: int, workdir: Path, extra: list[str]) -> dict:
    """(e) `vqscore score --model BAG`: one decode and spectrum per file feed every member; against (e') each member
    scored by its own CLI run, one after another (what the bag cost before, and what scoring them apart costs)."""
    from vqscore.bag import BagSpec, find_bag

    members = list(BagSpec.read(find_bag(bag)).members)
    together = bench_cli(bag, data, files, audio_s, repeats, workdir, extra)
    apart = [bench_cli(m, data, files, audio_s, repeats, workdir, extra) for m in members]
    apart_s = sum(a["full_s"] - a["startup_s"] for a in apart)
    together_s = together["full_s"] - together["startup_s"]
    return {
        "bag": bag,
        "members": members,
        "together": together,
        "apart": apart,
        "apart_s": apart_s,
        "apart_rtf": audio_s / apart_s,
        "speedup": apart_s / together_s,
    }


def bench_api(model: str, wavs: list[np.ndarray], audio_s: float, repeats: int) -> dict:
    m = vqscore.load(model)
    m.vqscore(wavs[:8], sr=SR)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        m.vqscore(wavs, sr=SR)
        times.append(time.perf_counter() - start)
    best = float(np.median(times))
    return {
        "call": "Model.vqscore(list of arrays, sr=16000)",
        "threads": torch.get_num_threads(),
        "s_runs": times,
        "s": best,
        "rtf": audio_s / best,
    }


def bench_reference(model: str, files: list[str], max_files: int) -> dict:
    network = vqscore.load(model).network
    chosen = files[:: max(1, len(files) // max_files)] if max_files < len(files) else files
    official_style_scores(network, sf.read(chosen[0], dtype="float32")[0])  # warm-up
    total, start = 0.0, time.perf_counter()
    for f in chosen:
        wav, sr = sf.read(f, dtype="float32")
        assert sr == SR and wav.ndim == 1, f
        total += wav.shape[0] / SR
        official_style_scores(network, wav)
    wall = time.perf_counter() - start
    return {"files": len(chosen), "audio_s": total, "s": wall, "rtf": total / wall, "threads": torch.get_num_threads()}


def bench_dnsmos(files: list[str], max_files: int) -> dict:
    try:
        from speechmos import dnsmos
    except ImportError as exc:
        return {"skipped": f"speechmos not installed ({exc}); pip install -e '.[eval]'"}
    chosen = files[:: max(1, len(files) // max_files)][:max_files]
    dnsmos.run(sf.read(chosen[0], dtype="float32")[0], SR)  # warm-up: loads the ONNX sessions
    total, start = 0.0, time.perf_counter()
    for f in chosen:
        wav, _ = sf.read(f, dtype="float32")
        total += wav.shape[0] / SR
        dnsmos.run(wav, SR)
    wall = time.perf_counter() - start
    return {
        "files": len(chosen),
        "audio_s": total,
        "s": wall,
        "rtf": total / wall,
        "subset": f"every {max(1, len(files) // max_files)}-th file",
    }


# A small launcher (no torch) runs the CLI and reads the peak RSS of its process tree from RUSAGE_CHILDREN: the max
# over the CLI process and its decoding workers. (ru_maxrss survives exec, so the CLI must not be forked from a big
# process such as this benchmark, or it would inherit that process's high-water mark.)
LONG_SCRIPT = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    start = time.perf_counter()
    status = subprocess.call([sys.executable, "-m", "vqscore", "score", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[3],
                              "--overwrite"], stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    print(json.dumps({"status": status, "wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
    """
)


def bench_long(model: str, files: list[str], hours: float, workdir: Path) -> dict:
    """A `hours`-long 16 kHz WAV of the corpus's speech repeated with noise, scored by the command line."""
    path = workdir / "long.wav"
    rng = np.random.default_rng(0)
    speech = np.concatenate([sf.read(f, dtype="float32")[0] for f in files[:20]])
    total = int(hours * 3600 * SR)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as out:
        done = 0
        while done < total:
            n = min(total - done, 600 * SR)
            block = np.tile(speech, n // speech.shape[0] + 1)[:n]
            out.write((0.8 * block + 0.01 * rng.standard_normal(n)).astype(np.float32))
            done += n
    run = subprocess.run(
        [sys.executable, "-c", LONG_SCRIPT, str(path), str(workdir / "long.csv"), model],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    usage = json.loads(run.stdout.strip().splitlines()[-1])
    usage.update(hours=hours, rtf=hours * 3600 / usage["wall_s"], note="wall time includes the CLI start-up")
    path.unlink()
    return usage


def profile_engine(model: str, wavs: list[np.ndarray], step: int) -> dict:
    """Where the engine's time goes: torch.profiler, one thread, over pre-computed batches of every step-th file."""
    from torch.profiler import ProfilerActivity, profile

    network = vqscore.load(model).network
    engine = Engine(network)
    chosen = wavs[::step]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tensors = [torch.from_numpy(w) for w in chosen]
        plan = plan_batches([w.shape[0] for w in chosen], network.features.hop_length, 8192)
        t0 = time.thread_time()
        batches = [spectra_batch([tensors[i] for i in b], network.features, engine.normalizes_input, False) for b in plan]
        spectra_s = time.thread_time() - t0
        engine.score(batches[0])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.thread_time()
            for b in batches:
                engine.score(b)
            model_s = time.thread_time() - t0
    finally:
        torch.set_num_threads(previous)
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]
    audio = sum(w.shape[0] for w in chosen) / SR
    return {
        "files": len(chosen),
        "audio_s": audio,
        "spectra_cpu_s": spectra_s,
        "model_cpu_s": model_s,
        "model_rtf_per_core": audio / model_s,
        "ops": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in top],
    }


# ---------------------------------------------------------------------------------------------------------- main


def markdown(r: dict) -> str:
    m, a, b, c, d = r["machine"], r["cli"], r["api"], r["reference"], r["dnsmos"]
    lines = [
        "# vqscore speed",
        "",
        f"{r['date']}, `{r['command']}`",
        "",
        f"Machine: {m['cpu_model'] or m['processor']} ({m['machine']}), {m['cpu_count']} logical CPUs / {m['physical_cores']} "
        f"physical cores, torch {m['torch']}, {m['torch_threads']} intra-op threads. 1-minute load average before the "
        f"run {r['load_before'][0]:.2f} (above ~0.5: other programs shared the CPU and the numbers are pessimistic; the "
        f"{r['load_after'][0]:.2f} after it includes the benchmark's own load).",
        f"Model: `{r['model']}`" + (f" ({r['model_note']})" if r.get("model_note") else ""),
        f"Data: {r['files']} files, {r['audio_s'] / 60:.1f} min of audio ({r['data']}).",
        "",
        "| what | RTF (x real time) | seconds |",
        "|---|---:|---:|",
        f"| (a) CLI end to end, decoding included, start-up subtracted | **{a['rtf']:.0f}** | {a['full_s'] - a['startup_s']:.2f} |",
        f"| (a') CLI end to end, raw (start-up included) | {a['rtf_end_to_end_raw']:.0f} | {a['full_s']:.2f} |",
        f"| CLI fixed start-up (one short file) | | {a['startup_s']:.2f} |",
        f"| (b) API on in-memory arrays (`Model.vqscore`) | {b['rtf']:.0f} | {b['s']:.2f} |",
        f"| (c) per-file official-style loop (unmasked, encoder+quantizer+decoder, one-hot; {c['files']} files) | {c['rtf']:.0f} | {c['s']:.2f} |",
    ]
    if "rtf" in d:
        lines.append(f"| (d) DNSMOS P.835 (speechmos; {d['files']} files, {d['subset']}) | {d['rtf']:.1f} | {d['s']:.2f} |")
    else:
        lines.append(f"| (d) DNSMOS P.835 | {d.get('skipped', 'skipped')} | |")
    if r.get("bag"):
        g = r["bag"]
        e = g["together"]
        lines += [
            f"| (e) CLI with the bag `{g['bag']}` ({len(g['members'])} models; one decode per file), start-up subtracted "
            f"| {e['rtf']:.0f} | {e['full_s'] - e['startup_s']:.2f} |",
            f"| (e') its members one after another, a CLI run each, start-ups subtracted | {g['apart_rtf']:.0f} | {g['apart_s']:.2f} |",
        ]
    lines += [
        "",
        f"Ratios: (a)/(c) = **{r['ratio_cli_vs_reference']:.1f}x**"
        + (f", (a)/(d) = **{r['ratio_cli_vs_dnsmos']:.0f}x**" if r.get("ratio_cli_vs_dnsmos") else "")
        + (
            f", (e')/(e) = **{r['bag']['speedup']:.2f}x**, (a)/(e) = {r['cli']['rtf'] / r['bag']['together']['rtf']:.2f}x"
            if r.get("bag")
            else ""
        )
        + ".",
    ]
    if r.get("long"):
        lg = r["long"]
        lines += [
            "",
            f"{lg['hours']:g}-hour file through the CLI (60 s windows, streamed): peak RSS {lg['peak_rss_mb']:.0f} MB "
            f"(the largest process of the CLI's tree), {lg['wall_s']:.1f} s including start-up, RTF {lg['rtf']:.0f}.",
        ]
    if r.get("profile"):
        p = r["profile"]
        lines += [
            "",
            f"Where the time goes (one thread, {p['files']} files, {p['audio_s']:.0f} s of audio): spectra (STFT, magnitude, "
            f"input norm; done in the decoding workers) {p['spectra_cpu_s']:.2f} CPU-s, model {p['model_cpu_s']:.2f} CPU-s "
            f"({p['model_rtf_per_core']:.0f}x real time per core):",
            "",
            "| op | share of model time | calls |",
            "|---|---:|---:|",
        ]
        lines += [f"| {o['op']} | {100 * o['share']:.1f} % | {o['calls']} |" for o in p["ops"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help="bundle name/path or official checkpoint (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of audio (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a) and (b); the median is reported")
    parser.add_argument("--reference-files", type=int, default=100_000, help="files for (c) (default: all)")
    parser.add_argument("--dnsmos-files", type=int, default=40, help="files for (d) (a fixed, evenly spaced subset)")
    parser.add_argument("--long-hours", type=float, default=2.0, help="length of the long file (0: skip)")
    parser.add_argument("--profile-step", type=int, default=4, help="profile the engine on every N-th file (0: skip)")
    parser.add_argument("--cli-args", default="", help="extra arguments for the CLI runs, e.g. '--workers 2'")
    parser.add_argument("--bag", help="also time the CLI with this bag of QE models, and its members one by one")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speed")
    args = parser.parse_args(argv)

    files = audio_files(args.data)
    if not files:
        print(f"no audio under {args.data}", file=sys.stderr)
        return 2
    model, note = resolve_model(args.model)
    torch.set_num_threads(physical_cores())
    load_before = os.getloadavg()
    wavs = [load_audio(f).samples for f in files]
    audio_s = sum(w.shape[0] for w in wavs) / SR
    extra = shlex.split(args.cli_args)
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "model": model,
        "model_note": note,
        "data": shown(args.data),
        "files": len(files),
        "audio_s": audio_s,
        "load_before": load_before,
    }
    with tempfile.TemporaryDirectory(prefix="vqscore-speed-") as tmp:
        work = Path(tmp)
        print("(a) CLI ...", file=sys.stderr)
        result["cli"] = bench_cli(model, args.data, files, audio_s, args.repeats, work, extra)
        print("(b) API ...", file=sys.stderr)
        result["api"] = bench_api(model, wavs, audio_s, args.repeats)
        print("(c) official-style per-file loop ...", file=sys.stderr)
        result["reference"] = bench_reference(model, files, args.reference_files)
        print("(d) DNSMOS ...", file=sys.stderr)
        result["dnsmos"] = bench_dnsmos(files, args.dnsmos_files)
        if args.bag:
            print(f"(e) CLI with the bag {args.bag} ...", file=sys.stderr)
            result["bag"] = bench_bag(args.bag, args.data, files, audio_s, args.repeats, work, extra)
        if args.long_hours > 0:
            print(f"{args.long_hours} h file ...", file=sys.stderr)
            result["long"] = bench_long(model, files, args.long_hours, work)
    if args.profile_step > 0:
        print("profile ...", file=sys.stderr)
        result["profile"] = profile_engine(model, wavs, args.profile_step)
    result["load_after"] = os.getloadavg()
    result["ratio_cli_vs_reference"] = result["cli"]["rtf"] / result["reference"]["rtf"]
    if "rtf" in result["dnsmos"]:
        result["ratio_cli_vs_dnsmos"] = result["cli"]["rtf"] / result["dnsmos"]["rtf"]
    write_results(args.out, "speed", result, markdown(result), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
