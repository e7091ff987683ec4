"""Long recordings: exact whole-file scores up to 30 minutes, 60-second windows beyond, bounded memory.

The VQScore of METHOD.md is defined on a whole utterance: its InstanceNorm statistics span every frame, so a piece
of a file scores differently from the whole. Holding a whole recording's spectrum and activations is fine for
minutes but not for hours, so the semantics are:

- **Up to `MAX_WHOLE_S` = 1800 s (30 min) of 16 kHz audio** (exactly: at most 28,800,000 samples after
  resampling), a file is scored whole: the exact definition, one utterance.
- **Longer**, the 16 kHz signal is cut into consecutive windows of `WINDOW_S` = 60 s (960,000 samples, a
  multiple of the 256-sample hop, so every window's frames sit on the whole file's frame grid): window k covers
  samples [k * W, (k + 1) * W), while at least 1.5 W samples remain; the remainder (between 0.5 W and 1.5 W,
  i.e. 30-90 s) is the last window. Each window is scored exactly as if its samples were a file of their own
  (own InstanceNorm statistics, own reflect padding at its edges): its `WindowScore` equals `score()` of that
  slice. The file's scores are the frame-weighted means of its windows' scores, i.e. the plain mean over the
  concatenated per-frame series; `Score.frames` is that concatenation (each window contributes 1 + len // 256
  frames, so the instant at a window boundary appears twice: the last frame of one window and the first of the
  next), `Score.frame_times` are the frames' centres in the file, and `Score.windows` lists the windows.
  A window of digital silence scores NaN and is left out of the file's means (NaN only if every window is).

How well windows agree with the whole file (tests/test_longform.py): away from window edges a window's per-frame
scores differ from the whole-file per-frame scores only through the normalisation statistics (the convolutions'
receptive field is 37 frames, +-18 around a frame, plus the STFT's own window). "Interior" frames are those at
least `EDGE_FRAMES` = 20 frames (0.32 s) inside a window. For speech whose statistics are steady over a minute,
interior per-frame scores agree within a few hundredths and file scores within a few thousandths; for a
recording whose level or noise changes across windows, windowed scores are the local quality, which is the
useful reading for hours-long audio anyway.

Memory: a file is read in blocks (`soundfile.SoundFile.blocks`), mixed to mono and resampled blockwise with
`soxr.ResampleStream` (bit-identical to resampling the whole signal at once), and windows are handed to the
model a few at a time, so peak memory does not grow with duration beyond the per-frame scores (4 bytes per 16 ms).
Deciding "whole or windowed" needs the 16 kHz length, so up to 30 minutes of 16 kHz samples (115 MB) are buffered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from .audio import AudioError
from .features import SAMPLE_RATE

MAX_WHOLE_S = 1800.0
WINDOW_S = 60.0
EDGE_FRAMES = 20
# Source frames read per block (about 10 s at 48 kHz).
READ_BLOCK = 1 << 19


@dataclass(frozen=True)
class LongformPolicy:
    """Where whole-file scoring ends and windows begin. Both lengths are in seconds of 16 kHz audio."""

    max_whole_s: float = MAX_WHOLE_S
    window_s: float = WINDOW_S

    def max_whole_samples(self) -> int:
        return int(round(self.max_whole_s * SAMPLE_RATE))

    def window_samples(self, hop: int) -> int:
        """The window length in samples: `window_s` rounded to a multiple of the hop, at least 4 hops."""
        return max(4 * hop, int(round(self.window_s * SAMPLE_RATE / hop)) * hop)

    def is_long(self, num_samples: int) -> bool:
        return num_samples > self.max_whole_samples()


DEFAULT_POLICY = LongformPolicy()


def cut_here(remaining: int, window: int) -> bool:
    """Whether a full window is cut off the front of `remaining` samples: only while >= 1.5 windows remain."""
    return remaining >= window + window // 2


def window_bounds(num_samples: int, window: int) -> list[tuple[int, int]]:
    """[(start, stop)] of the windows of a signal of `num_samples` (see the module docstring)."""
    bounds, start = [], 0
    while cut_here(num_samples - start, window):
        bounds.append((start, start + window))
        start += window
    bounds.append((start, num_samples))
    return bounds


@dataclass(frozen=True)
class WindowScore:
    """Scores of one window of a long file; `start_s`/`end_s` in seconds of the file, `num_frames` its frames."""

    start_s: float
    end_s: float
    cos_z: float
    l2_z: float
    cos_x: float
    l2_x: float
    num_frames: int


@dataclass
class SourceInfo:
    """What a file was before conversion to 16 kHz mono."""

    sample_rate: int
    channels: int
    num_samples: int = 0  # 16 kHz samples produced so far (the total once read)


def read_blocks(path: str | os.PathLike, info: SourceInfo | None = None, block: int = READ_BLOCK) -> Iterator[np.ndarray]:
    """A file as consecutive blocks of float32 mono 16 kHz samples, never holding more than one block.

    Conversion is the same as `audio.load_audio` (float32 read, channel mean in float64, soxr VHQ), sample for
    sample. `info`, when given, is filled in (rate, channels, and the running 16 kHz sample count). NaN/Inf
    samples raise `AudioError` once the whole file has been read (the message counts them all, like load_audio).
    """
    name = os.fspath(path)
    try:
        handle = sf.SoundFile(name)
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot read audio ({exc})") from exc
    with handle:
        rate, channels = int(handle.samplerate), int(handle.channels)
        if info is not None:
            info.sample_rate, info.channels = rate, channels
        if rate != SAMPLE_RATE and (rate < 1000 or rate > 768_000):
            raise AudioError(f"{name}: sample rate {rate} Hz is outside the supported 1000-768000 Hz")
        stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="VHQ")
        bad = 0
        total_in = 0
        try:
            for data in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
                mono = (
                    data.mean(axis=1, dtype=np.float64).astype(np.float32)
                    if channels > 1
                    else np.ascontiguousarray(data[:, 0])
                )
                total_in += mono.shape[0]
                finite = np.isfinite(mono)
                if not finite.all():
                    bad += int((~finite).sum())
                    continue
                if bad:
                    continue
                out = mono if stream is None else stream.resample_chunk(mono, last=False)
                if info is not None:
                    info.num_samples += out.shape[0]
                if out.shape[0]:
                    yield np.asarray(out, dtype=np.float32)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{name}: cannot read audio ({exc})") from exc
        if total_in == 0:
            raise AudioError(f"{name}: empty audio (0 samples)")
        if bad:
            raise AudioError(f"{name}: {bad} NaN or Inf samples")
        if stream is not None:
            tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if info is not None:
                info.num_samples += tail.shape[0]
            if tail.shape[0]:
                yield np.asarray(tail, dtype=np.float32)


class Windower:
    """Cuts a stream of 16 kHz blocks into the windows of `window_bounds`, holding at most ~1.5 windows
    (plus the whole-file buffer of up to `max_whole` samples until the file is known to be long)."""

    def __init__(self, window: int, max_whole: int):
        self.window, self.max_whole = window, max_whole
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.start = 0  # file position of pending[0][0]
        self.long = False

    def push(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add a block; returns the (start, samples) windows that are now final."""
        self.pending.append(block)
        self.pending_len += block.shape[0]
        if not self.long and self.start + self.pending_len > self.max_whole:
            self.long = True
        return self._cut() if self.long else []

    def _cut(self) -> list[tuple[int, np.ndarray]]:
        out = []
        if not cut_here(self.pending_len, self.window):
            return out
        data = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        offset = 0
        while cut_here(data.shape[0] - offset, self.window):
            out.append((self.start, data[offset : offset + self.window].copy()))
            offset += self.window
            self.start += self.window
        rest = data[offset:].copy()
        self.pending, self.pending_len = [rest], rest.shape[0]
        return out

    def finish(self) -> tuple[bool, list[tuple[int, np.ndarray]]]:
        """(is_long, the remaining windows): one whole utterance if the file was not long."""
        data = np.concatenate(self.pending) if self.pending else np.zeros(0, np.float32)
        self.pending, self.pending_len = [], 0
        if not self.long:
            return False, [(0, data)]
        out = []
        offset = 0
        while cut_here(data.shape[0] - offset, self.window):
            out.append((self.start, data[offset : offset + self.window]))
            offset += self.window
            self.start += self.window
        out.append((self.start, data[offset:]))
        return True, out
