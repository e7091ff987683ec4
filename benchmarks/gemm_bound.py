"""The arithmetic ceiling of exact fp32 VQScore on this machine: SGEMM peak vs the model's multiply-adds.

    python benchmarks/gemm_bound.py          # -> benchmarks/results/speed/gemm_bound.json

The encoder's six convolutions and the codebook similarity are the work every frame needs; at the machine's best
fp32 GEMM rate nothing can score faster than peak / (2 x multiply-adds per second of audio).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from vqscore.features import QE_FEATURES
from vqscore.models import QEVQVAE

OUT = Path(__file__).resolve().parent / "results" / "speed" / "gemm_bound.json"


def sgemm_gflops(threads: int, m: int = 4096, k: int = 1024, n: int = 1024, repeats: int = 20) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9


def macs_per_frame(model: QEVQVAE) -> dict[str, int]:
    convs = sum(conv.weight.numel() for conv in model.encoder.convs)  # (out x in x kernel) MACs per frame
    codebook = model.quantizer.size * model.quantizer.dim
    return {"encoder_convs": convs, "codebook": codebook}


def main() -> None:
    model = QEVQVAE()
    macs = macs_per_frame(model)
    frames_per_s = QE_FEATURES.sample_rate / QE_FEATURES.hop_length
    flop_per_audio_s = 2 * sum(macs.values()) * frames_per_s
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    peaks = {threads: sgemm_gflops(threads) for threads in sorted({1, cores})}
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": cores, "torch": torch.__version__},
        "macs_per_frame": macs,
        "frames_per_audio_second": frames_per_s,
        "mflop_per_audio_second": flop_per_audio_s / 1e6,
        "sgemm_gflops_by_threads": peaks,
        "ceiling_x_realtime": {threads: peak * 1e9 / flop_per_audio_s for threads, peak in peaks.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
