"""Audio files in, enhanced WAV files out (`vqscore enhance`): short files in batches, long ones streamed.

    for outcomes in enhance_files(network, [(noisy_path, out_path), ...]):   # in completion order
        ...                                                                  # EnhancedFile(path, output, ..., error)

Files whose header promises at most the whole-recording limit (`enhance_long`, 30 s) are read whole and enhanced
in length-sorted batches; longer ones, and files whose length the header does not tell, are read in blocks and
enhanced in windows (`enhance_long.enhance_stream`), so memory does not grow with duration. Outputs are mono
(inputs' channels are averaged, as for scoring), at each input's sample rate unless a rate is given, resampled from
the model's 16 kHz with soxr (VHQ, streaming). Each output is written under a hidden temporary name beside it
(`.NAME.partial`), fsynced and renamed when complete, so a killed run never leaves a truncated WAV under the real
name. A file that cannot be read, is shorter than one STFT window or is digital silence gets an error, naming it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .audio import AudioError, load_audio
from .enhance import enhance_batch, plan_enhance_batches
from .enhance_long import DEFAULT_ENHANCE_POLICY, EnhancePolicy, enhance_stream
from .features import SAMPLE_RATE
from .longform import SourceInfo, read_blocks
from .models.base import VQVAE
from .scoring import check_length

# WAV sample formats an output may have: 32-bit float keeps the enhanced signal as computed (peaks above 1 too);
# the PCM ones are clipped to [-1, 1].
SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")
DEFAULT_SUBTYPE = "FLOAT"


def partial_path(path: Path) -> Path:
    """Where an output is written until it is complete: hidden, beside it, with a suffix no walk takes for audio."""
    return path.with_name(f".{path.name}.partial")


class OutputPlanError(ValueError):
    """Outputs that cannot be laid out: two inputs onto one output, or outputs onto inputs."""


def plan_outputs(sources: Sequence[tuple[str, str | None]], outdir: str | os.PathLike) -> dict[str, str]:
    """Input path -> output path, for (path, the named folder it was found in or None) pairs (`walk.walk_sources`).

    A file named itself goes to OUTDIR/<its name>, a file found in a folder to OUTDIR/<its path inside that
    folder>, with the suffix replaced by .wav; where that makes two inputs of one folder collide (a.flac beside
    a.wav), the non-WAV one keeps its suffix before .wav (a.flac.wav). Files found under OUTDIR while walking a
    folder that contains it (earlier outputs) are left out. `OutputPlanError` if OUTDIR is an input folder, if two
    inputs would still share an output (files named from different folders with one name) or if an output
    would overwrite an input."""
    outdir_real = os.path.realpath(outdir)
    relative: dict[str, Path] = {}
    for path, root in sources:
        if path in relative:
            continue
        if root is None:
            relative[path] = Path(os.path.basename(os.path.abspath(path)))
            continue
        root_real = os.path.realpath(root)
        if root_real == outdir_real:
            raise OutputPlanError(f"-o {outdir} is the input folder {root}; choose an output folder that is not an input")
        if outdir_real.startswith(root_real + os.sep) and os.path.realpath(path).startswith(outdir_real + os.sep):
            continue
        inside = Path(os.path.relpath(path, root))
        relative[path] = inside if inside.name not in ("", ".", "..") else Path(os.path.basename(root_real))

    def wav_name(rel: Path, keep_suffix: bool) -> Path:
        return rel.with_name(rel.name + ".wav") if keep_suffix else rel.with_suffix(".wav")

    plain = {p: wav_name(rel, False) for p, rel in relative.items()}
    taken = Counter(plain.values())
    named = {p: wav_name(rel, taken[plain[p]] > 1 and rel.suffix.lower() != ".wav") for p, rel in relative.items()}
    owners: dict[Path, str] = {}
    for path, rel in named.items():
        if rel in owners:
            raise OutputPlanError(
                f"{owners[rel]} and {path} would both be written to {Path(outdir) / rel}; enhance them into different output folders"
            )
        owners[rel] = path
    outputs = {p: os.path.join(outdir, rel) for p, rel in named.items()}
    inputs = {os.path.realpath(p): p for p in outputs}
    for path, output in outputs.items():
        if os.path.realpath(output) in inputs:
            raise OutputPlanError(
                f"{path} would be written over the input {inputs[os.path.realpath(output)]}; choose another output folder"
            )
    return outputs


class OutputWriter:
    """A mono WAV written from 16 kHz blocks, resampled to `rate` on the way; it appears under its name only
    once complete. Use as a context manager: leaving it normally commits (fsync, rename), an exception aborts
    (the temporary file is removed)."""

    def __init__(self, path: str | os.PathLike, rate: int, subtype: str = DEFAULT_SUBTYPE):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_path(self.path)
        self.clip = subtype != "FLOAT"
        self.file = sf.SoundFile(os.fspath(self.tmp), "w", samplerate=rate, channels=1, subtype=subtype, format="WAV")
        self.stream = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(SAMPLE_RATE, rate, 1, dtype="float32", quality="VHQ")
        )

    def write(self, block: np.ndarray, last: bool = False) -> None:
        """Append (n,) float32 samples at 16 kHz; `last` flushes the resampler's delay line."""
        out = block if self.stream is None else self.stream.resample_chunk(np.asarray(block, np.float32), last=last)
        if self.clip:
            out = np.clip(out, -1.0, 1.0)
        if out.shape[0]:
            self.file.write(out)

    def commit(self) -> Path:
        self.write(np.zeros(0, np.float32), last=True)
        self.file.close()
        with open(self.tmp, "rb+") as f:  # the table's row, written next, must never outlive the samples
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


@dataclass
class EnhancedFile:
    """One file's outcome: the enhanced file written (`output`), or the error that stopped it (naming the file)."""

    path: str
    output: str = ""
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str = ""


def silence_error(path: str) -> AudioError:
    return AudioError(f"{path}: digital silence (every sample is 0); nothing to enhance")


def failure(path: str, exc: Exception) -> str:
    """The error of a file, naming it (`AudioError`s already do)."""
    return str(exc) if isinstance(exc, AudioError) else f"{path}: cannot enhance ({type(exc).__name__}: {exc})"


# What stops one file and not the run: unreadable input, a failing forward pass (out of memory), an unwritable output.
FILE_ERRORS = (AudioError, RuntimeError, ValueError, OSError)


def enhance_files(
    model: VQVAE,
    jobs: Sequence[tuple[str, str]],
    *,
    rate: int | None = None,
    subtype: str = DEFAULT_SUBTYPE,
    policy: EnhancePolicy = DEFAULT_ENHANCE_POLICY,
    batch_frames: int | None = None,
) -> Iterator[list[EnhancedFile]]:
    """jobs: (input path, output path) pairs. Yields the outcomes of each batch as it completes: the short files
    in length-sorted batches (shortest first), then every possibly-long file on its own. `rate`: the outputs'
    sample rate (None: each input's own); `subtype`: one of `SUBTYPES`; `policy`: where windows begin;
    `batch_frames`: padded frames per batch (`enhance.plan_enhance_batches`)."""
    from .corpus import may_be_long, probe  # the header probe of `vqscore score`

    outputs = dict(jobs)
    paths = list(outputs)
    lengths = [probe(p) for p in paths]
    streamed = [p for p, n in zip(paths, lengths, strict=True) if n is None or may_be_long(n, policy)]
    short = [(p, n) for p, n in zip(paths, lengths, strict=True) if n is not None and not may_be_long(n, policy)]
    for batch in plan_enhance_batches(model, [n for _, n in short], batch_frames):
        chosen = [short[k][0] for k in batch]
        yield enhance_batch_files(model, [(p, outputs[p]) for p in chosen], rate, subtype, policy, batch_frames)
    for path in streamed:
        yield [enhance_streamed(model, path, outputs[path], rate, subtype, policy)]


def enhance_batch_files(
    model: VQVAE, jobs: list[tuple[str, str]], rate: int | None, subtype: str, policy: EnhancePolicy, batch_frames: int | None
) -> list[EnhancedFile]:
    """Read a batch of short files whole, enhance them together, write each; a batch that fails is retried file
    by file so that the error names its file."""
    results, ready = [], []
    for path, output in jobs:
        result = EnhancedFile(path)
        results.append(result)
        try:
            audio = load_audio(path)
            result.duration_s, result.sample_rate, result.channels = audio.duration_s, audio.source_rate, audio.source_channels
            check_length(audio.samples, model.features.min_samples, path)
            if not np.any(audio.samples):
                raise silence_error(path)
            ready.append((result, output, audio.samples))
        except FILE_ERRORS as exc:
            result.error = failure(path, exc)
    whole = [k for k, (_, _, samples) in enumerate(ready) if not policy.is_long(samples.shape[0])]
    try:
        done = dict(zip(whole, enhance_batch(model, [ready[k][2] for k in whole], batch_frames), strict=True))
    except (RuntimeError, ValueError):
        done = {}
    for k, (result, output, samples) in enumerate(ready):
        try:
            # alone: a failed batch retried, or a file whose header under-promised its length (windows)
            y = [done[k]] if k in done else enhance_stream(model, [samples], policy, result.path)
            write_output(y, output, rate or result.sample_rate, subtype)
            result.output = output
        except FILE_ERRORS as exc:
            result.error = failure(result.path, exc)
    return results


def enhance_streamed(
    model: VQVAE, path: str, output: str, rate: int | None, subtype: str, policy: EnhancePolicy
) -> EnhancedFile:
    """A possibly-long file read in blocks, enhanced in windows and written as it goes."""
    result = EnhancedFile(path)
    info = SourceInfo(0, 0)
    source = Watched(read_blocks(path, info))
    try:
        blocks = enhance_stream(model, source, policy, path)
        first = next(blocks)  # reading has begun: the file's rate is known
        with OutputWriter(output, rate or info.sample_rate, subtype) as writer:
            writer.write(first)
            for block in blocks:
                writer.write(block)
            if not source.heard:
                raise silence_error(path)
        result.output = output
    except FILE_ERRORS as exc:
        result.error = failure(path, exc)
    result.sample_rate, result.channels = info.sample_rate or None, info.channels or None
    if source.finished:
        result.duration_s = info.num_samples / SAMPLE_RATE
    return result


class Watched:
    """Blocks passed through, noting whether any sample was not 0 and whether the source was read to its end."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks = blocks
        self.heard = False
        self.finished = False

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.blocks:
            self.heard = self.heard or bool(np.any(block))
            yield block
        self.finished = True


def write_output(blocks: Iterable[np.ndarray], output: str, rate: int, subtype: str) -> None:
    with OutputWriter(output, rate, subtype) as writer:
        for block in blocks:
            writer.write(block)
