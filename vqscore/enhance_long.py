"""Enhancing recordings of any length in bounded memory: whole up to 30 s, cross-faded 30-second windows beyond.

The SE model's attention costs time with the square of the frames (hop 128: 7,500 frames a minute) and, in fused
kernels (`nn.sdpa_attention`), memory in proportion to them; a whole hour would still need ~20 GB of activations.
Full-size model on CPU, one thread: 30 s take 0.86 CPU-s and +180 MB peak RSS, 60 s 2.7 CPU-s and +340 MB (1.5x
the time of two 30-second windows). So, in seconds of 16 kHz audio:

- **Up to `MAX_WHOLE_S` = 30 s** a recording is enhanced whole: one utterance, the exact definition.
- **Longer**, it is cut into windows of `WINDOW_S` = 30 s that overlap their neighbours by `OVERLAP_S` = 1 s:
  full windows start every 29 s while more than two windows' worth (59 s) remains from the current start; the
  rest, between one and two windows long, is split into two equal windows (or is one, if it fits one), so every
  window lasts between (30 + 1) / 2 and 30 s and none is a short scrap with poor mean-removal statistics. Window
  starts, lengths and overlaps are multiples of the 128-sample hop, so every window's STFT frames sit on the
  whole recording's frame grid. Each window is enhanced as an utterance of its own; where two windows overlap,
  the output is a cross-fade of both with complementary raised-cosine weights (sin^2 / cos^2, summing to 1).
  Both windows take their phase from the same noisy samples on the same frames, so only their magnitudes are
  mixed: no comb filtering, and no click at the seams.
- Away from window edges, windowed output differs from whole-recording output only through the mean-removal
  statistics and the attention context of the window: on a steady (periodic) signal by under 2 % RMS
  (tests/test_enhance.py); on speech, by however much a window's statistics differ from the recording's.

Memory: `enhance_stream` takes 16 kHz blocks (`longform.read_blocks` reads any file that way) and yields output
blocks as soon as they are final, holding at most two windows of input plus one read block (a few MB) and one
overlap of output; written to a file with `enhance_files.OutputWriter`, a recording of any length enhances in the
memory of one window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .enhance import enhance_batch
from .features import SAMPLE_RATE
from .longform import LongformPolicy
from .models.base import VQVAE
from .scoring import check_length

MAX_WHOLE_S = 30.0
WINDOW_S = 30.0
OVERLAP_S = 1.0


@dataclass(frozen=True)
class EnhancePolicy(LongformPolicy):
    """Where whole-recording enhancement ends and windows begin; all lengths in seconds of 16 kHz audio."""

    max_whole_s: float = MAX_WHOLE_S
    window_s: float = WINDOW_S
    overlap_s: float = OVERLAP_S

    def __post_init__(self) -> None:
        if not (self.max_whole_s > 0 and self.window_s > 0 and self.overlap_s >= 0):
            raise ValueError("max_whole_s and window_s must be positive, overlap_s at least 0")
        if 2 * self.overlap_s >= self.window_s:
            raise ValueError(f"the overlap ({self.overlap_s:g} s) must be less than half the window ({self.window_s:g} s)")

    def overlap_samples(self, hop: int) -> int:
        """The overlap in samples, rounded to a multiple of the hop."""
        return int(round(self.overlap_s * SAMPLE_RATE / hop)) * hop

    def describe(self) -> str:
        return f"whole<={self.max_whole_s:g}s; windows {self.window_s:g}s overlap {self.overlap_s:g}s"


DEFAULT_ENHANCE_POLICY = EnhancePolicy()


def cut_full(remaining: int, window: int, overlap: int) -> bool:
    """Whether a full window is cut off the front of `remaining` samples: while more than two windows' worth
    (2 x window - overlap) remain."""
    return remaining > 2 * window - overlap


def split_rest(rest: int, window: int, overlap: int, hop: int) -> list[tuple[int, int]]:
    """[(start, stop)] of the last windows over `rest` samples (at most 2 x window - overlap): one if it fits a
    window, else two of about equal length overlapping by `overlap` (the first rounded up to the hop)."""
    if rest <= window:
        return [(0, rest)]
    first = -(-(rest + overlap) // (2 * hop)) * hop
    return [(0, first), (first - overlap, rest)]


def window_bounds(num_samples: int, window: int, overlap: int, hop: int) -> list[tuple[int, int]]:
    """[(start, stop)] of the windows of a long recording of `num_samples` (see the module docstring)."""
    bounds, start = [], 0
    while cut_full(num_samples - start, window, overlap):
        bounds.append((start, start + window))
        start += window - overlap
    return bounds + [(start + a, start + b) for a, b in split_rest(num_samples - start, window, overlap, hop)]


def fade_in(overlap: int) -> np.ndarray:
    """Raised-cosine weights rising over `overlap` samples, strictly between 0 and 1; 1 - w is the fade out."""
    return (np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2).astype(np.float32)


class CrossFade:
    """Joins consecutive enhanced windows that overlap by `overlap` samples: blends each window's head with the
    previous window's tail and holds back its own tail until the next window arrives."""

    def __init__(self, overlap: int):
        self.overlap = overlap
        self.weights = fade_in(overlap)
        self.tail: np.ndarray | None = None

    def add(self, enhanced: np.ndarray, last: bool) -> np.ndarray:
        """The output samples of this window that are final now (all of them if it is the last)."""
        y = enhanced.copy()
        if self.tail is not None and self.overlap:
            y[: self.overlap] = self.tail * (1.0 - self.weights) + y[: self.overlap] * self.weights
        if last or not self.overlap:
            self.tail = None
            return y
        self.tail = y[-self.overlap :]
        return y[: -self.overlap]


class BlockBuffer:
    """Input samples not yet enhanced, kept as the blocks they came in; joined only when a window is cut."""

    def __init__(self):
        self.blocks: list[np.ndarray] = []
        self.size = 0

    def push(self, block: np.ndarray) -> None:
        self.blocks.append(block)
        self.size += block.shape[0]

    def join(self) -> np.ndarray:
        if not self.blocks:
            return np.zeros(0, dtype=np.float32)
        data = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
        self.blocks = [data]
        return data

    def drop(self, n: int) -> None:
        data = self.join()[n:].copy()
        self.blocks, self.size = ([data] if data.shape[0] else []), data.shape[0]


def enhance_stream_with(
    enhance_one: Callable[[np.ndarray], np.ndarray],
    blocks: Iterable[np.ndarray],
    hop: int,
    min_samples: int,
    policy: EnhancePolicy = DEFAULT_ENHANCE_POLICY,
    name: str = "audio",
) -> Iterator[np.ndarray]:
    """The windowing of `enhance_stream` around any enhancer of whole utterances: `enhance_one` maps (n,) float32 at
    16 kHz to (n,) float32; `hop` is its STFT hop (windows start on its frame grid); a recording shorter than
    `min_samples` raises `AudioError`. The SE model and the U-Net denoiser (`vqscore.enhancers.unet`) both use it."""
    window, overlap = policy.window_samples(hop), policy.overlap_samples(hop)
    pending = BlockBuffer()
    fade = CrossFade(overlap)
    long = False
    for block in blocks:
        pending.push(np.asarray(block, dtype=np.float32))
        long = long or policy.is_long(pending.size)
        while long and cut_full(pending.size, window, overlap):
            yield fade.add(enhance_one(pending.join()[:window]), last=False)
            pending.drop(window - overlap)
    rest = pending.join()
    if not long:
        check_length(rest, min_samples, name)
        yield enhance_one(rest)
        return
    pieces = split_rest(rest.shape[0], window, overlap, hop)
    for k, (start, stop) in enumerate(pieces):
        yield fade.add(enhance_one(rest[start:stop]), last=k == len(pieces) - 1)


def enhance_stream(
    model: VQVAE, blocks: Iterable[np.ndarray], policy: EnhancePolicy = DEFAULT_ENHANCE_POLICY, name: str = "audio"
) -> Iterator[np.ndarray]:
    """blocks: consecutive (n,) float32 pieces of one recording at 16 kHz -> its enhancement as consecutive
    (m,) float32 blocks at 16 kHz, as many samples in all. Whole up to `policy.max_whole_s`, else in cross-faded
    windows (module docstring); input is buffered until the recording is known to be longer than the whole limit.
    `name` labels errors (a recording shorter than one STFT window raises `AudioError`)."""
    features = model.features
    return enhance_stream_with(
        lambda x: enhance_batch(model, [x])[0], blocks, features.hop_length, features.min_samples, policy, name
    )


def join(blocks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def enhance_long(
    model: VQVAE, wav: np.ndarray, policy: EnhancePolicy = DEFAULT_ENHANCE_POLICY, name: str = "audio"
) -> np.ndarray:
    """wav: (samples,) float32 at 16 kHz -> enhanced (samples,) float32 at 16 kHz, windowed beyond the whole limit."""
    return join(list(enhance_stream(model, [wav], policy, name)))
