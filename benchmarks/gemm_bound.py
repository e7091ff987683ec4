"""The ceiling of exact fp32 VQScore on this machine: what every second of audio costs at best, part by part.

    python benchmarks/gemm_bound.py [--data ../shared/data/clean]   # -> benchmarks/results/speed/gemm_bound.json

1. Arithmetic: the encoder's six convolutions and the codebook similarity are the work every frame needs; at the
   machine's best fp32 GEMM rate (SGEMM on large matrices) the model alone cannot score faster than
   peak / (2 x multiply-adds per second of audio); the peak is the best of SGEMM and the direct convolutions.
2. The rest of the command line's work on the same cores, measured in CPU seconds on the benchmark corpus: FLAC
   decoding (soundfile/libFLAC) and the STFT magnitude with the input normalisation.
3. The shipped model in the scoring engine on 400 real files, against that floor.
4. A fast-convolution algorithm (`transform_conv.TransformConv1d`, an overlap-save real DFT as GEMMs): each layer
   shape timed against torch's direct convolution (oneDNN), single thread, 8,192 frames, with its error.

5. For comparison only, the bf16 GEMM rate (not exact: it breaks the 1e-5 parity).

The end-to-end ceiling of benchmark (a) is then cores / (decode + spectrum + model floor) per second of audio,
with the model at the GEMM peak and zero overhead: the best any exact implementation of this pipeline could do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from benchmarks.speed import audio_files
from benchmarks.transform_conv import TransformConv1d, from_blocks, to_blocks
from vqscore.engine import utterance_spectrum
from vqscore.features import QE_FEATURES
from vqscore.models import QEVQVAE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "speed" / "gemm_bound.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "clean"
FRAMES = 8_192
BLOCK = 32


def sgemm_gflops(
    threads: int, m: int = 4096, k: int = 1024, n: int = 1024, repeats: int = 20, dtype: torch.dtype = torch.float32
) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    return 2 * m * k * n / seconds(partial(torch.mm, a, b), repeats) / 1e9


def macs_per_frame(model: QEVQVAE) -> dict[str, int]:
    convs = sum(conv.weight.numel() for conv in model.encoder.convs)  # (out x in x kernel) MACs per frame
    codebook = model.quantizer.size * model.quantizer.dim
    return {"encoder_convs": convs, "codebook": codebook}


def seconds(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


@torch.inference_mode()
def conv_layers(model: QEVQVAE) -> list[dict]:
    """Direct vs transform-domain time of each encoder layer shape (random weights and inputs; one thread)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for conv in model.encoder.convs:
        cout, cin, kernel = conv.weight.shape
        weight = torch.randn(cout, cin, kernel) / (cin * kernel) ** 0.5
        bias = torch.randn(cout)
        fast = TransformConv1d(weight, bias, BLOCK)
        frames = FRAMES // fast.outputs * fast.outputs
        x = torch.randn(cin, frames)
        batched = x.view(cin, 32, -1).permute(1, 0, 2).contiguous() if frames % 32 == 0 else x[None]
        direct_s = seconds(partial(F.conv1d, batched, weight, bias, padding=kernel // 2))
        blocks = to_blocks(x, fast.outputs)
        fast_s = seconds(partial(fast, blocks))
        want = F.conv1d(x[None], weight, bias, padding=kernel // 2)[0]
        error = ((from_blocks(fast(blocks)) - want).abs().max() / want.abs().max()).item()
        rows.append(
            {
                "shape": f"{cin}->{cout} k{kernel}",
                "direct_ms_per_8192_frames": direct_s * 1e3 * FRAMES / frames,
                "direct_gflops": 2 * cout * cin * kernel * batched.shape[0] * batched.shape[-1] / direct_s / 1e9,
                "transform_ms_per_8192_frames": fast_s * 1e3 * FRAMES / frames,
                "speedup": direct_s / fast_s,
                "max_relative_error": error,
            }
        )
    return rows


def corpus_costs(data: Path) -> dict:
    """CPU seconds per second of audio for decoding (float32, as the command line reads) and the input spectrum."""
    files = audio_files(data)
    torch.set_num_threads(1)
    for path in files:  # page cache warm, as in the speed benchmark's timed runs
        Path(path).read_bytes()
    decode = spectra = 0.0
    samples = 0
    for path in files:  # one file at a time, as a decoding worker holds them
        start = time.process_time()
        wav = sf.read(path, dtype="float32")[0]
        middle = time.process_time()
        spectrum = utterance_spectrum(torch.from_numpy(np.ascontiguousarray(wav)), QE_FEATURES)
        F.instance_norm(spectrum[None], eps=1e-5)
        decode += middle - start
        spectra += time.process_time() - middle
        samples += wav.shape[0]
    audio_s = samples / QE_FEATURES.sample_rate
    return {
        "files": len(files),
        "audio_s": audio_s,
        "decode_cpu_s": decode,
        "spectrum_cpu_s": spectra,
        "decode_cpu_s_per_audio_s": decode / audio_s,
        "spectrum_cpu_s_per_audio_s": spectra / audio_s,
    }


@torch.inference_mode()
def engine_speed(data: Path, files: int = 400) -> dict:
    """The shipped model in the scoring engine on real files (spectra prepared beforehand), one thread: the whole
    model (encoder + codebook + scores) and its six convolutions alone, as x real time per core."""
    import vqscore
    from vqscore.engine import plan_batches
    from vqscore.scoring import engine_for

    torch.set_num_threads(1)
    network = vqscore.load("default").network
    engine = engine_for(network)
    paths = audio_files(data)[:files]
    wavs = [sf.read(p, dtype="float32")[0] for p in paths]
    audio_s = sum(w.shape[0] for w in wavs) / QE_FEATURES.sample_rate
    batches = [engine.prepare([wavs[i] for i in b], keep_raw=False) for b in plan_batches([w.shape[0] for w in wavs], QE_FEATURES.hop_length, 8_192)]

    def model() -> None:
        for batch in batches:
            engine.score(batch)

    def convs() -> None:  # the encoder's convolutions in sequence on the same batches (skip sums left out)
        for batch in batches:
            x = batch.spec
            for conv in network.encoder.convs:
                x = conv(x)

    return {
        "files": len(paths),
        "audio_s": audio_s,
        "model_x_realtime_per_core": audio_s / seconds(model, repeats=3),
        "convs_x_realtime_per_core": audio_s / seconds(convs, repeats=3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the speed benchmark's folder (default: %(default)s)")
    args = parser.parse_args(argv)
    model = QEVQVAE()
    macs = macs_per_frame(model)
    frames_per_s = QE_FEATURES.sample_rate / QE_FEATURES.hop_length
    flop_per_audio_s = 2 * sum(macs.values()) * frames_per_s
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    peaks = {threads: sgemm_gflops(threads) for threads in sorted({1, cores})}
    layers = conv_layers(model)
    result = {
        "command": "python benchmarks/gemm_bound.py",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": cores, "torch": torch.__version__},
        "macs_per_frame": macs,
        "frames_per_audio_second": frames_per_s,
        "mflop_per_audio_second": flop_per_audio_s / 1e6,
        "sgemm_gflops_by_threads": peaks,
        "model_ceiling_x_realtime": {threads: peak * 1e9 / flop_per_audio_s for threads, peak in peaks.items()},
        "conv_layers": layers,
    }
    # the transform-domain convolutions, at their measured speed-up over direct convolutions at the peak
    direct = sum(r["direct_ms_per_8192_frames"] for r in layers)
    transform = sum(min(r["direct_ms_per_8192_frames"], r["transform_ms_per_8192_frames"]) for r in layers)
    result["convs_speedup_best_of_both"] = direct / transform
    if args.data.is_dir():
        costs = corpus_costs(args.data)
        # the best fp32 rate seen on one core: the direct convolutions beat the square SGEMM here
        per_core_peak = max([peaks[1]] + [r["direct_gflops"] for r in layers]) * 1e9
        costs["per_core_peak_gflops"] = per_core_peak / 1e9
        model_floor = flop_per_audio_s / per_core_peak  # CPU-s per audio second, model at the GEMM peak
        conv_share = macs["encoder_convs"] / sum(macs.values())
        model_floor_fast = model_floor * (1 - conv_share + conv_share / result["convs_speedup_best_of_both"])
        rest = costs["decode_cpu_s_per_audio_s"] + costs["spectrum_cpu_s_per_audio_s"]
        costs["model_floor_cpu_s_per_audio_s"] = model_floor
        costs["model_only_ceiling_x_realtime"] = cores / model_floor
        costs["model_floor_with_transform_convs_cpu_s_per_audio_s"] = model_floor_fast
        costs["cli_ceiling_x_realtime"] = cores / (rest + model_floor)
        costs["cli_ceiling_with_transform_convs_x_realtime"] = cores / (rest + model_floor_fast)
        costs["cli_ceiling_if_the_model_were_free_x_realtime"] = cores / rest
        # not exact (bf16 inputs move scores by ~1e-3): what halving the arithmetic's cost could give at most
        costs["bf16_gemm_gflops_one_core"] = sgemm_gflops(1, dtype=torch.bfloat16)
        costs["cli_ceiling_model_in_bf16_x_realtime"] = cores / (
            rest + flop_per_audio_s / (costs["bf16_gemm_gflops_one_core"] * 1e9)
        )
        result["end_to_end"] = costs
        result["engine"] = engine_speed(args.data)
        result["engine"]["model_floor_x_realtime_per_core"] = 1 / model_floor
        result["engine"]["convs_floor_x_realtime_per_core"] = 1 / (model_floor * conv_share)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
