"""Peak memory and time of `vqscore enhance` on one long recording (issue 10: a 1-hour file under 1.5 GB).

    python benchmarks/enhance_memory.py [--minutes 60] [--source out/noisy-test/noisy]

Tiles the noisy files of the benchmark set into one 16 kHz PCM_16 WAV of the given length (under /tmp), runs the
command line on it with the shipped default SE model in a child process and reports the child's peak RSS
(getrusage) and wall time. Writes benchmarks/results/enhance/memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def long_recording(source: Path, minutes: float, path: Path) -> None:
    pieces = [sf.read(p, dtype="float32")[0] for p in sorted(source.glob("*.wav"))[:50]]
    block = np.concatenate(pieces)
    need = int(minutes * 60 * 16_000)
    with sf.SoundFile(path, "w", 16_000, 1, "PCM_16") as f:
        written = 0
        while written < need:
            part = block[: need - written]
            f.write(np.clip(part, -1, 1))
            written += part.shape[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--source", type=Path, default=REPO / "out" / "noisy-test" / "noisy")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "enhance" / "memory.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        long_recording(args.source, args.minutes, wav)
        command = [sys.executable, "-m", "vqscore", "enhance", str(wav), "-o", str(Path(tmp) / "out")]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "command": f"python benchmarks/enhance_memory.py --minutes {args.minutes:g}",
        "minutes": args.minutes,
        "exit_status": done.returncode,
        "peak_rss_mb": round(peak_mb, 1),
        "wall_s": round(wall, 1),
        "real_time_factor": round(args.minutes * 60 / wall, 1),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "note": "wall time includes reading, writing and the VQScore of input and output (the table's columns)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
