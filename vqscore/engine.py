"""The fast scoring engine: spectra in length-bucketed, padding-masked batches through the encoder and codebook.

What it computes is exactly the one-by-one definition (METHOD.md section 1): every statistic of the masked
InstanceNorm spans only an utterance's own frames and padded frames leave every layer as exact zeros, so a score
does not depend on what it was batched with (equal to scoring alone within 1e-5; tests/test_invariants.py).

Where the time goes. Measured on the 2-core AMD EPYC (Zen 4) development VM, over the 1,329 files (100.7 min) of
shared/data/clean, reference QE model, encoder + quantizer only (the VQScore), one thread, thread CPU time, the
first version (git 1d802be, scoring.score_batch) and this one run back to back (torch.profiler shares of the
profiled op time; both include the STFT so that they compare):

    before: 10.7 CPU-s, 564x real time per core    after: 5.8 CPU-s, 1,036x real time per core
      conv1d (mkldnn)                      39 %       conv1d (mkldnn)                      69 %  (~98 GFLOP/s)
      aten::mm (quantizer, one GEMM of     18 %       aten::mm (quantizer, 256-row chunks) 10 %
        the whole batch: an (N, 2048)                 amax + argmax + index (two-level)     3 %
        matrix streamed through DRAM)                 input InstanceNorm (per utterance)    3 %
      argmax over 2048 (unvectorised)       8 %       STFT + reflect pad + magnitude        5 %
      mul/pow/add/sub/sum/sqrt/clamp/copy  ~24 %       masks, norms, ReLU, gathers, copies  ~8 %
        (masks and magnitude: ~15 full
        passes over DRAM-sized batches)
      FFT + reflect padding                 7 %

The first version with its default 2 threads on the quiet VM scored the corpus at 509x (11.9 s); in the command
line the STFT now runs in the decoding workers, so the model's share is the 5.2 CPU-s of encoder + quantizer, 77 %
of it convolution at ~88 % of the core's fp32 peak. That is the floor of an exact fp32 computation: the
convolutions need 28.3 M multiply-adds per second of audio (the quantizer another 4.2 M), i.e. 387 GFLOP for the
corpus, ~1.9-2.2 s at the 2 cores' full fp32 GEMM rate (~180-200 GFLOP/s) even before decoding the FLAC
(~1.2-1.5 CPU-s) and computing the STFT (~0.8 CPU-s) on the same two cores.

What changed, and why each step is exact:
- Quantizer: one GEMM per chunk of 256 frames (a 2 MB similarity block that stays in cache) and a two-level
  argmax: `amax` over blocks of 64 codewords (vectorised, ~15x faster than `argmax`), `argmax` over the block
  maxima, then `argmax` inside the winning block. The first maximal block and the first maximum inside it is the
  lowest index among all maxima, so ties still go to the lowest index. No one-hot matrix anywhere.
- Only the encoder and codebook run unless cos_x / l2_x are asked for.
- Masked InstanceNorm as a handful of in-place passes over the batch; batches of ~8k frames (default) keep
  each activation (<= 8 MB) in the last-level cache, so those passes cost little next to the convolutions
  (single-thread engine time for the corpus, batch frames 4k / 8k / 16k / 32k: 1.42 / 1.32 / 1.49 / 1.60 s
  per 1,529 s of audio). Length-sorted batches of 8k frames carry 2.7 % padding on this corpus.
  Equal-length batches (the windows of long files) take `F.instance_norm` with no mask at all.
- The input spectrum is computed per utterance (`torch.stft`, centred, reflect-padded: bit-identical to the
  padded-batch STFT) and normalised per utterance with `F.instance_norm`, i.e. exactly the one-by-one code path,
  in the decoding worker; the main process receives a zero-tailed (batch, bins, frames) tensor ready to convolve.
- `torch.inference_mode`; the model uses one thread per physical core (`configure_threads`; the command line
  runs them as independent "lanes", see `vqscore.corpus`), decoding workers are single-threaded (torch's
  DataLoader sets that).

The engine is device-agnostic: on CUDA the quantizer is one GEMM + argmax (no chunking), batches come from pinned
memory, and nothing else changes. Models other than the QE kind (the SE enhancer) take the generic masked path of
`models/base.py` through the same batching.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .conditioning import PAPER, Conditioning, condition
from .features import POWER_FLOOR, StftConfig, complex_stft
from .models.base import VQVAE
from .models.qe import QEEncoder
from .nn import INSTANCE_NORM_EPS, run_encoder_convs

# Largest |value| of the normalised input spectrum below which an utterance counts as flat (`is_flat`).
FLAT_LIMIT = 1e-2

# Added to each norm (cosine) and to the per-frame energy (normalised L2), as the official code does.
SCORE_EPS = 1e-5
# Frames per batch, summed over its padded utterances: ~2 minutes of audio at hop 256. Large enough for the
# convolutions to run at full speed, small enough that one activation (128 x 8192 floats = 4 MB) stays in cache.
DEFAULT_BATCH_FRAMES = 8_192
# Frames per batch on a GPU: 8x more (~17 minutes of audio, a 67 MB input), enough to keep it busy.
GPU_BATCH_FRAMES = 65_536
# Rows of the quantizer's similarity matrix computed at once: on CPU 256 x 2048 floats = 2 MB, which stays in cache;
# on a GPU 16384 rows (128 MB) per GEMM + argmax.
QUANT_CHUNK = 256
GPU_QUANT_CHUNK = 16_384
ARGMAX_BLOCK = 64


# ----------------------------------------------------------------------------------------------------------- threads


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings add little to GEMM throughput)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id") as f:
                core = f.read().strip()
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id") as f:
                package = f.read().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def default_batch_frames(device: torch.device) -> int:
    return DEFAULT_BATCH_FRAMES if device.type == "cpu" else GPU_BATCH_FRAMES


def configure_threads(num_threads: int | None = None) -> int:
    """Intra-op threads of the model process: `num_threads`, else one per physical core. Returns the count."""
    n = int(num_threads) if num_threads else physical_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# ---------------------------------------------------------------------------------------------------------- spectra


def _stft(wav: torch.Tensor, features: StftConfig) -> torch.Tensor:
    """One utterance (samples,) -> complex (bins, frames): `features.complex_stft`, channels-first."""
    return complex_stft(wav[None], features)[0].transpose(0, 1)


def _magnitude_into(spec: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor, features: StftConfig) -> torch.Tensor:
    """Model input spectrum of complex `spec` (bins, frames) written into `out` (same shape, may be strided):
    sqrt(max(re^2 + im^2, floor)), rounded exactly like `features.magnitude_from_complex`; log1p for SE."""
    torch.mul(spec.real, spec.real, out=out)
    out.add_(torch.mul(spec.imag, spec.imag, out=scratch))
    out.clamp_(min=POWER_FLOOR).sqrt_()
    return out.log1p_() if features.transform == "log1p" else out


def utterance_spectrum(wav: torch.Tensor, features: StftConfig) -> torch.Tensor:
    """One utterance (samples,) float32 at 16 kHz -> model input spectrum (bins, frames), channels-first.

    Bit-identical to `features.batch_spectrum` (centred, reflect-padded |STFT| with the power floor)."""
    spec = _stft(wav, features)
    return _magnitude_into(spec, torch.empty(spec.shape), torch.empty(spec.shape), features)


@dataclass
class SpecBatch:
    """Utterances ready for a model: (batch, bins, frames) float32, zero beyond each utterance's frames.

    `normalized`: the spectrum went through the input InstanceNorm already (QE models); `raw` keeps the
    un-normalised spectrum when the decoder's scores (cos_x, l2_x) need it; `offsets`: samples the input
    conditioning trimmed off each utterance's start (where its first frame is in the audio given); `flat`: which
    utterances have no variation over time in any frequency bin (`is_flat`), and so nothing to judge.
    """

    spec: torch.Tensor
    frames: list[int]
    normalized: bool
    raw: torch.Tensor | None = None
    offsets: list[int] | None = None
    flat: list[bool] | None = None

    def pin_memory(self) -> SpecBatch:  # DataLoader(pin_memory=True) calls this on custom batch types
        return SpecBatch(
            self.spec.pin_memory(),
            self.frames,
            self.normalized,
            None if self.raw is None else self.raw.pin_memory(),
            self.offsets,
            self.flat,
        )

    def row(self, i: int) -> SpecBatch:
        """Utterance `i` alone, without padding."""
        n = self.frames[i]
        return SpecBatch(
            self.spec[i : i + 1, :, :n].contiguous(),
            [n],
            self.normalized,
            None if self.raw is None else self.raw[i : i + 1, :, :n].contiguous(),
            None if self.offsets is None else self.offsets[i : i + 1],
            None if self.flat is None else self.flat[i : i + 1],
        )


def _buffer(shape: tuple[int, ...], shared: bool) -> torch.Tensor:
    """float32 tensor, in shared memory when it is going to another process (no copy when it is sent)."""
    if not shared:
        return torch.empty(shape)
    numel = 1
    for d in shape:
        numel *= d
    storage = torch.UntypedStorage._new_shared(4 * numel)
    strides = tuple(int(torch.tensor(shape[i + 1 :]).prod()) if i + 1 < len(shape) else 1 for i in range(len(shape)))
    return torch.empty(0, dtype=torch.float32).set_(storage, 0, shape, strides)


def spectra_batch(
    wavs: Sequence[torch.Tensor],
    features: StftConfig,
    normalize: bool,
    keep_raw: bool,
    shared: bool = False,
    conditioning: Conditioning = PAPER,
) -> SpecBatch:
    """Utterances (samples,) float32 at 16 kHz -> one zero-tailed (batch, bins, max_frames) `SpecBatch`.

    Each utterance is conditioned (`vqscore.conditioning`; "paper" leaves it as it is), then its STFT magnitude
    is written straight into its row of the batch (and, with `normalize`, put through the input InstanceNorm on
    its own statistics there), so the only per-utterance temporary is the complex STFT. `shared`: allocate the
    batch in shared memory (decoding workers)."""
    offsets = None
    if conditioning != PAPER:
        conditioned = [condition(w.numpy(), conditioning, features.min_samples) for w in wavs]
        wavs = [torch.from_numpy(w) for w, _ in conditioned]
        offsets = [start for _, start in conditioned]
    frames = [features.num_frames(int(w.shape[-1])) for w in wavs]
    bins, longest = features.num_bins, max(frames)
    out = _buffer((len(wavs), bins, longest), shared)
    raw = _buffer((len(wavs), bins, longest), shared) if (keep_raw and normalize) else None
    # contiguous per-utterance scratch, so that every reduction runs in the same order whatever the batch
    scratch = torch.empty(2, bins * longest)
    flat: list[bool] = []
    for i, w in enumerate(wavs):
        n = frames[i]
        magnitude = _magnitude_into(
            _stft(w, features), scratch[0, : bins * n].view(bins, n), scratch[1, : bins * n].view(bins, n), features
        )
        normalized = F.instance_norm(magnitude[None], eps=INSTANCE_NORM_EPS)[0]
        flat.append(is_flat(normalized))
        if normalize:
            out[i, :, :n] = normalized
            if raw is not None:
                raw[i, :, :n] = magnitude
        else:
            out[i, :, :n] = magnitude
        if n < longest:
            out[i, :, n:] = 0
            if raw is not None:
                raw[i, :, n:] = 0
    return SpecBatch(out, frames, normalize, raw if normalize else (out if keep_raw else None), offsets, flat)


def is_flat(normalized: torch.Tensor) -> bool:
    """Whether an utterance's spectrum, put through the input InstanceNorm (bins, frames), is all but zero: no bin
    varies over time beyond float rounding. So it is for digital silence, audio below the 1e-7 power floor, pure
    DC. The encoder then sees a constant, and its later InstanceNorms would normalise rounding noise: the score
    would depend on the batch and the CPU. Real signals have unit variance in some bin (values of 1 and more)."""
    return bool(normalized.abs().max() < FLAT_LIMIT)


def plan_batches(lengths: Sequence[int], hop: int, max_batch_frames: int) -> list[list[int]]:
    """Indices of utterances grouped shortest first so that (batch size x longest frames) stays within budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        frames = 1 + lengths[i] // hop
        if current and (len(current) + 1) * frames > max_batch_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


# ------------------------------------------------------------------------------------------------------------ model


def _masked_instance_norm_(y: torch.Tensor, mask: torch.Tensor | None, count: torch.Tensor | None) -> torch.Tensor:
    """InstanceNorm (no affine, biased variance) over each utterance's valid frames, in place; padded frames -> 0.

    mask: (batch, 1, frames) float, count: (batch, 1, 1) float valid frames; None when nothing is padded."""
    if mask is None:
        return F.instance_norm(y, eps=INSTANCE_NORM_EPS)
    y.mul_(mask)
    mean = y.sum(dim=-1, keepdim=True).div_(count)
    y.sub_(mean).mul_(mask)
    var = torch.linalg.vector_norm(y, dim=-1, keepdim=True).square_().div_(count)
    return y.mul_(var.add_(INSTANCE_NORM_EPS).rsqrt_())


def _first_argmax(sims: torch.Tensor, block: int = ARGMAX_BLOCK) -> torch.Tensor:
    """argmax over the last dim (first maximum on ties) of a (rows, size) CPU matrix, via block maxima."""
    rows, size = sims.shape
    if size % block or size < 4 * block:
        return sims.argmax(dim=-1)
    blocks = sims.view(rows, size // block, block)
    best_block = blocks.amax(dim=-1).argmax(dim=-1)
    inside = blocks[torch.arange(rows, device=sims.device), best_block].argmax(dim=-1)
    return best_block * block + inside


def cosine_per_frame(a: torch.Tensor, b: torch.Tensor, eps: float = SCORE_EPS) -> torch.Tensor:
    """(..., dim) x2 -> (...): cos with eps added to each norm."""
    a_n = a / (a.norm(dim=-1, keepdim=True) + eps)
    b_n = b / (b.norm(dim=-1, keepdim=True) + eps)
    return (a_n * b_n).sum(dim=-1)


def normalized_l2_per_frame(a: torch.Tensor, b: torch.Tensor, eps: float = SCORE_EPS) -> torch.Tensor:
    """(..., dim) x2 -> (...): mean_D (a - b)^2 / (mean_D a^2 + eps)."""
    return ((a - b).square() / (a.square().mean(dim=-1, keepdim=True) + eps)).mean(dim=-1)


@dataclass
class BatchScores:
    """Scores of one batch: per-utterance means (float64 numpy) and the per-frame VQScore, concatenated."""

    cos_z: np.ndarray
    l2_z: np.ndarray
    cos_x: np.ndarray
    l2_x: np.ndarray
    frames_cos: np.ndarray  # (sum of frames,) float32, utterance after utterance
    frames: list[int]


def version_counter(t: torch.Tensor) -> int | None:
    """A tensor's in-place modification count; None for inference tensors (a model loaded under
    `torch.inference_mode`), which have none and can only change inside inference mode."""
    return None if t.is_inference() else t._version


class Engine:
    """Scores `SpecBatch`es with one model. Stateless apart from cached codebook views; not thread-safe."""

    def __init__(self, network: VQVAE, quant_chunk: int = QUANT_CHUNK):
        # the network's train/eval mode is left alone (a training loop may score its model in validation)
        self.network = network
        self.features = network.features
        self.device = next(network.parameters()).device
        quantizer = network.quantizer
        # The fast path is the QE architecture: InstanceNorm encoder + cosine codebook.
        self.fast = isinstance(network.encoder, QEEncoder) and quantizer.distance == "cosine"
        self.codebook = quantizer.codebook
        self.codebook_t = quantizer.codebook.t().contiguous()
        self.codebook_version = version_counter(quantizer.codebook)
        self.quant_chunk = quant_chunk

    def is_current(self) -> bool:
        """False once the network moved to another device or its codebook changed (the engine caches a copy)."""
        codebook = self.network.quantizer.codebook
        return (
            codebook is self.codebook
            and version_counter(codebook) == self.codebook_version
            and next(self.network.parameters()).device == self.device
        )

    @property
    def normalizes_input(self) -> bool:
        """Whether workers should hand over input-normalised spectra (true for QE models)."""
        return self.fast

    # -- pieces

    def encode(self, batch: SpecBatch) -> torch.Tensor:
        """(batch, bins, frames) -> z (batch, dim, frames), padded frames exactly 0 (QE fast path)."""
        x, frames = batch.spec, batch.frames
        longest = x.shape[-1]
        if all(n == longest for n in frames):
            mask = count = None
        else:
            lengths = torch.tensor(frames, device=x.device)
            mask = (torch.arange(longest, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]
            count = lengths.to(x.dtype)[:, None, None]
        if not batch.normalized:
            x = _masked_instance_norm_(x.clone(), mask, count)
        encoder = self.network.encoder
        slope = encoder.slope

        def block(i: int, y: torch.Tensor) -> torch.Tensor:
            if i < 5:
                y = F.leaky_relu_(y, slope)
            return _masked_instance_norm_(y, mask, count)

        return run_encoder_convs(encoder.convs, x, block)[1]

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Codes of frames z (n, dim): argmax of cosine similarity, ties to the lowest index.

        CPU: 256-row GEMMs into a reused cache-sized buffer + two-level argmax; GPU: GEMM + argmax per 16k rows."""
        x = F.normalize(z, p=2, dim=-1)
        n = x.shape[0]
        if x.device.type != "cpu":
            chunk = GPU_QUANT_CHUNK
            return torch.cat([torch.mm(x[i : i + chunk], self.codebook_t).argmax(dim=-1) for i in range(0, n, chunk)])
        chunk = self.quant_chunk
        if n <= chunk:
            return _first_argmax(torch.mm(x, self.codebook_t))
        out = torch.empty(n, dtype=torch.long)
        buffer = torch.empty(chunk, self.codebook_t.shape[1])
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            sims = torch.mm(x[start:stop], self.codebook_t, out=buffer[: stop - start])
            out[start:stop] = _first_argmax(sims)
        return out

    # -- whole batches

    @torch.inference_mode()
    def score(self, batch: SpecBatch, with_decoder: bool = False) -> BatchScores:
        batch = self.to_device(batch)
        if not self.fast:
            return self._score_generic(batch, with_decoder)
        frames = batch.frames
        z = self.encode(batch)  # (B, D, T)
        count, dim, longest = z.shape
        zt = z.transpose(1, 2).reshape(count * longest, dim)
        if all(n == longest for n in frames):
            valid = zt
        else:
            index = torch.cat([torch.arange(i * longest, i * longest + n) for i, n in enumerate(frames)]).to(z.device)
            valid = zt.index_select(0, index)
        codes = self.nearest(valid)
        zq = self.codebook.index_select(0, codes)
        per_frame = cosine_per_frame(valid, zq)
        l2 = normalized_l2_per_frame(valid, zq)
        segment = torch.repeat_interleave(torch.arange(count, device=z.device), torch.tensor(frames, device=z.device))
        cos_z, l2_z = _segment_means([per_frame, l2], segment, frames)
        if with_decoder:
            zq_pad = torch.zeros(count * longest, dim, device=z.device)
            if valid is zt:
                zq_pad = zq
            else:
                zq_pad.index_copy_(0, index, zq)
            cos_x, l2_x = self._decoder_scores(batch, zq_pad.view(count, longest, dim), frames)
        else:
            cos_x = l2_x = np.full(count, np.nan)
        return BatchScores(cos_z, l2_z, cos_x, l2_x, per_frame.float().cpu().numpy(), list(frames))

    def _decoder_scores(self, batch: SpecBatch, zq: torch.Tensor, frames: list[int]) -> tuple[np.ndarray, np.ndarray]:
        raw = batch.raw if batch.normalized else batch.spec
        if raw is None:
            raise ValueError("cos_x / l2_x need the raw spectrum: build the batch with keep_raw=True")
        lengths = torch.tensor(frames, device=zq.device)
        padded = None if all(n == zq.shape[1] for n in frames) else lengths
        xhat = self.network.decode(zq, padded)  # (B, T, bins)
        x = raw.transpose(1, 2)
        valid = torch.arange(zq.shape[1], device=zq.device)[None, :] < lengths[:, None]
        cos = cosine_per_frame(x, xhat)[valid]
        l2 = normalized_l2_per_frame(x, xhat)[valid]
        segment = torch.repeat_interleave(torch.arange(len(frames), device=zq.device), lengths)
        return _segment_means([cos, l2], segment, frames)

    def _score_generic(self, batch: SpecBatch, with_decoder: bool) -> BatchScores:
        """Any VQVAE (the SE model): the masked modules of models/, one forward over the padded batch."""
        network, frames = self.network, batch.frames
        spec = batch.spec.transpose(1, 2)  # (B, T, bins), raw
        lengths = torch.tensor(frames, device=spec.device)
        padded = None if all(n == spec.shape[1] for n in frames) else lengths
        z = network.encode(spec, padded)
        zq = network.quantize(z, padded, update=False).zq
        valid = torch.arange(spec.shape[1], device=spec.device)[None, :] < lengths[:, None]
        per_frame = cosine_per_frame(z, zq)[valid]
        l2 = normalized_l2_per_frame(z, zq)[valid]
        segment = torch.repeat_interleave(torch.arange(len(frames), device=spec.device), lengths)
        cos_z, l2_z = _segment_means([per_frame, l2], segment, frames)
        if with_decoder:
            xhat = network.decode(zq, padded)
            cos_x, l2_x = _segment_means(
                [cosine_per_frame(spec, xhat)[valid], normalized_l2_per_frame(spec, xhat)[valid]], segment, frames
            )
        else:
            cos_x = l2_x = np.full(len(frames), np.nan)
        return BatchScores(cos_z, l2_z, cos_x, l2_x, per_frame.float().cpu().numpy(), list(frames))

    def to_device(self, batch: SpecBatch) -> SpecBatch:
        if batch.spec.device == self.device:
            return batch
        blocking = self.device.type != "cuda"
        spec = batch.spec.to(self.device, non_blocking=not blocking)
        raw = (
            None
            if batch.raw is None
            else (spec if batch.raw is batch.spec else batch.raw.to(self.device, non_blocking=not blocking))
        )
        return SpecBatch(spec, batch.frames, batch.normalized, raw, batch.offsets, batch.flat)

    # -- in-memory utterances

    def prepare(self, wavs: Sequence[np.ndarray], keep_raw: bool, conditioning: Conditioning = PAPER) -> SpecBatch:
        tensors = [torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in wavs]
        return spectra_batch(tensors, self.features, normalize=self.fast, keep_raw=keep_raw, conditioning=conditioning)


def _segment_means(values: list[torch.Tensor], segment: torch.Tensor, frames: list[int]) -> list[np.ndarray]:
    """Per-utterance means (float64 accumulation) of per-frame values laid out utterance after utterance."""
    counts = torch.tensor(frames, dtype=torch.float64)
    out = []
    for v in values:
        sums = torch.zeros(len(frames), dtype=torch.float64, device=v.device).index_add_(0, segment, v.double())
        out.append((sums.cpu() / counts).numpy())
    return out


def split_frames(values: np.ndarray, frames: Sequence[int]) -> list[np.ndarray]:
    offsets = np.cumsum([0, *frames])
    return [values[offsets[i] : offsets[i + 1]].copy() for i in range(len(frames))]


def frames_budget(num_samples: int, hop: int) -> int:
    return 1 + num_samples // hop


__all__ = [
    "DEFAULT_BATCH_FRAMES",
    "Engine",
    "SpecBatch",
    "configure_threads",
    "spectra_batch",
    "physical_cores",
    "plan_batches",
    "utterance_spectrum",
]
