"""Scoring files at corpus scale: decoding in worker processes, the model in the main process, nothing waits.

    for result in score_files(network, paths):      # FileResult(path, duration_s, sample_rate, channels, score, error)
        ...                                          # in completion order (shortest files first)

Pipeline:
1. Probe every file's length from its header (`soundfile`), no decoding.
2. Plan tasks: files sorted by length and packed into batches of about `batch_frames` frames (padding between
   neighbours in the sorted order is a few percent); files that may exceed the whole-file limit become one
   streaming task each (`vqscore.longform`).
3. Worker processes (a torch `DataLoader` over an iterable of tasks, each worker pulling the next task from a
   shared counter, results taken in completion order, `prefetch_factor` batches ahead per worker) decode,
   mix to mono, resample, compute the STFT magnitude and the input InstanceNorm of each file, and hand a
   zero-padded (batch, bins, frames) tensor to the main process through shared memory (allocated there, so
   sending it copies nothing). Workers are single-threaded.
4. The main process runs the encoder and quantizer (`engine.Engine`) on each batch as it arrives, on CPU in
   "lanes": as many Python threads as physical cores, each scoring its own batch with single-threaded torch ops
   (they release the GIL). Independent batches need no synchronisation, whereas one batch split over OpenMP
   threads makes every op wait at a barrier for the slowest thread, and the decoding workers share the cores:
   a preempted thread stalls all the others. Measured on the 2-core development VM, clean corpus, command line
   end to end: with nothing else running, 2 lanes x 1 thread 5.6 s, 1 lane x 2 threads 8.1-8.4 s; with other
   programs loading the machine, 16.5 s against 86-135 s.

Files that cannot be read, are too short or contain NaN come back as results with `error` set, the message
naming the file, exactly as `vqscore.load(...).score(path)` would raise it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, IterableDataset

from .audio import AudioError, load_audio
from .conditioning import PAPER, Conditioning
from .engine import (
    Engine,
    SpecBatch,
    configure_threads,
    default_batch_frames,
    physical_cores,
    spectra_batch,
)
from .features import SAMPLE_RATE
from .longform import DEFAULT_POLICY, LongformPolicy, SourceInfo, Windower, read_blocks
from .models.base import VQVAE
from .scoring import (
    Score,
    apply_pooling,
    check_length,
    combine_windows,
    engine_for,
    mean_score,
    scores_from_batch,
    silent_score,
)

# A file whose header promises more than (whole-file limit - this) is streamed, so that resampling rounding never
# sends a file over the limit through the in-memory path.
LONG_MARGIN_S = 1.0
# Niceness of decoding workers (0: same priority as the model). Lowering their priority starves them whenever
# other programs keep the machine busy, so it is off by default; the model's lanes have no barriers to protect.
WORKER_NICE = 0


@dataclass
class FileResult:
    """One file's outcome: its scores, or the error that stopped it (the message starts with the path)."""

    path: str
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    score: Score | None = None
    error: str = ""


@dataclass
class Task:
    paths: list[str]
    long: bool = False


@dataclass
class _Entry:
    path: str
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str = ""
    silent_frames: int | None = None
    slot: int | None = None  # row in the batch


@dataclass
class _Item:
    """What a worker hands to the main process."""

    kind: str  # "files" | "windows" | "long_end"
    entries: list[_Entry] = field(default_factory=list)
    batch: SpecBatch | None = None
    path: str = ""
    starts: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    slots: list[int | None] = field(default_factory=list)  # per window: row in batch, None if silent
    num_windows: int = 0
    key: str = ""  # the long file's task and path: its windows and end marker share it

    def pin_memory(self) -> _Item:
        if self.batch is not None:
            self.batch = self.batch.pin_memory()
        return self


def probe(path: str) -> int | None:
    """Estimated 16 kHz length of a file from its header, or None if it cannot be opened."""
    try:
        with sf.SoundFile(path) as f:
            frames, rate = f.frames, f.samplerate
    except Exception:  # noqa: BLE001 - any failure is reported by the decoding step with its proper message
        return None
    if frames <= 0 or frames >= 2**62:  # unknown length (streams)
        return None
    return int(frames) if rate == SAMPLE_RATE else int(round(frames * SAMPLE_RATE / rate))


def may_be_long(length: int | None, policy: LongformPolicy) -> bool:
    """Whether a file whose header promises `length` 16 kHz samples is streamed as possibly long: beyond the
    whole-scoring limit less `LONG_MARGIN_S` (headers can under-promise; the stream decides on the real length)."""
    return length is not None and length > policy.max_whole_samples() - int(LONG_MARGIN_S * SAMPLE_RATE)


def plan_tasks(
    lengths: Sequence[int | None], paths: Sequence[str], hop: int, batch_frames: int, policy: LongformPolicy
) -> list[Task]:
    """Batches of short files sorted by length (unknown lengths go alone), one task per possibly-long file."""
    tasks: list[Task] = [Task([paths[i]], long=True) for i, n in enumerate(lengths) if may_be_long(n, policy)]
    unknown = [Task([paths[i]]) for i, n in enumerate(lengths) if n is None]
    short = sorted((n, i) for i, n in enumerate(lengths) if n is not None and not may_be_long(n, policy))
    current: list[str] = []
    longest = 0
    for n, i in short:
        frames = 1 + n // hop
        if current and (len(current) + 1) * max(frames, longest) > batch_frames:
            tasks.append(Task(current))
            current, longest = [], 0
        current.append(paths[i])
        longest = max(longest, frames)
    if current:
        tasks.append(Task(current))
    # long streams first: they take the longest per task, so starting them early balances the workers' ends
    return tasks + unknown


class _TaskStream(IterableDataset):
    """Runs tasks, pulling the next task index from a counter shared by all workers."""

    def __init__(self, tasks, features, min_samples, normalize, keep_raw, batch_frames, policy, counter, nice, conditioning):
        self.tasks, self.features, self.min_samples, self.conditioning = tasks, features, min_samples, conditioning
        self.normalize, self.keep_raw = normalize, keep_raw
        self.batch_frames, self.policy, self.counter, self.nice = batch_frames, policy, counter, nice
        self._task = -1

    def _next(self) -> int:
        with self.counter.get_lock():
            k = self.counter.value
            self.counter.value = k + 1
        return k

    def __iter__(self) -> Iterator[_Item]:
        if torch.utils.data.get_worker_info() is not None and self.nice:
            try:
                os.nice(self.nice)
            except OSError:
                pass
        while True:
            k = self._next()
            if k >= len(self.tasks):
                return
            task = self.tasks[k]
            self._task = k
            if task.long:
                yield from self._long(task.paths[0])
            else:
                yield from self._files(task.paths)

    # -- short files: decode all, one padded batch

    def _files(self, paths: list[str]) -> Iterator[_Item]:
        entries, specs, long_ones = [], [], []
        for path in paths:
            entry = _Entry(path)
            entries.append(entry)
            try:
                audio = load_audio(path)
                entry.duration_s, entry.sample_rate, entry.channels = (
                    audio.duration_s,
                    audio.source_rate,
                    audio.source_channels,
                )
                samples = audio.samples
                check_length(samples, self.min_samples, path)
                if self.policy.is_long(samples.shape[0]):  # the header under-promised
                    long_ones.append((entry, samples))
                    continue
                if not np.any(samples):
                    entry.silent_frames = self.features.num_frames(samples.shape[0])
                    continue
                specs.append(torch.from_numpy(samples))
                entry.slot = len(specs) - 1
            except AudioError as exc:
                entry.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the corpus
                entry.error = f"{path}: cannot read audio ({type(exc).__name__}: {exc})"
        for entry, _ in long_ones:
            entries.remove(entry)
        if entries:
            yield _Item("files", entries=entries, batch=self._batch(specs))
        for entry, samples in long_ones:
            info = SourceInfo(entry.sample_rate, entry.channels, samples.shape[0])
            yield from self._windows(entry, iter([samples]), info, known=True)

    # -- long files: stream blocks, cut windows, a few windows per batch

    def _long(self, path: str) -> Iterator[_Item]:
        info = SourceInfo(0, 0)
        entry = _Entry(path)
        yield from self._windows(entry, read_blocks(path, info), info, known=False)

    def _windows(self, entry: _Entry, blocks: Iterable[np.ndarray], info: SourceInfo, known: bool) -> Iterator[_Item]:
        hop = self.features.hop_length
        windower = Windower(self.policy.window_samples(hop), self.policy.max_whole_samples())
        pending: list[tuple[int, np.ndarray]] = []
        count = 0
        try:
            for block in blocks:
                pending.extend(windower.push(block))
                while self._frames(pending) >= self.batch_frames:
                    take = self._take(pending)
                    count += len(take)
                    yield self._window_item(entry.path, take)
            is_long, rest = windower.finish()
        except AudioError as exc:
            entry.error = str(exc)
            yield _Item("files", entries=[entry])
            return
        entry.sample_rate, entry.channels = info.sample_rate, info.channels
        total = info.num_samples
        entry.duration_s = total / SAMPLE_RATE
        if not is_long:  # a file near the limit that turned out short enough: one utterance
            yield from self._single(entry, rest[0][1])
            return
        pending.extend(rest)
        while pending:
            take = self._take(pending)
            count += len(take)
            yield self._window_item(entry.path, take)
        yield _Item("long_end", entries=[entry], path=entry.path, num_windows=count, key=f"{self._task}:{entry.path}")

    def _single(self, entry: _Entry, samples: np.ndarray) -> Iterator[_Item]:
        try:
            check_length(samples, self.min_samples, entry.path)
        except AudioError as exc:
            entry.error = str(exc)
            yield _Item("files", entries=[entry])
            return
        if not np.any(samples):
            entry.silent_frames = self.features.num_frames(samples.shape[0])
            yield _Item("files", entries=[entry])
            return
        entry.slot = 0
        yield _Item("files", entries=[entry], batch=self._batch([torch.from_numpy(samples)]))

    def _batch(self, wavs: list[torch.Tensor]) -> SpecBatch | None:
        if not wavs:
            return None
        shared = torch.utils.data.get_worker_info() is not None
        return spectra_batch(wavs, self.features, self.normalize, self.keep_raw, shared=shared, conditioning=self.conditioning)

    def _frames(self, pending) -> int:
        return sum(1 + w.shape[0] // self.features.hop_length for _, w in pending)

    def _take(self, pending: list) -> list:
        """Pop windows off the front of `pending` up to the frame budget (at least one)."""
        take, frames = [], 0
        while pending:
            n = 1 + pending[0][1].shape[0] // self.features.hop_length
            if take and frames + n > self.batch_frames:
                break
            take.append(pending.pop(0))
            frames += n
        return take

    def _window_item(self, path: str, windows: list[tuple[int, np.ndarray]]) -> _Item:
        specs, slots = [], []
        for _, w in windows:
            if np.any(w):
                specs.append(torch.from_numpy(w))
                slots.append(len(specs) - 1)
            else:
                slots.append(None)
        batch = self._batch(specs)
        starts = [s for s, _ in windows]
        stops = [s + w.shape[0] for s, w in windows]
        return _Item("windows", batch=batch, path=path, starts=starts, stops=stops, slots=slots, key=f"{self._task}:{path}")


def _identity(item):
    return item


def _ignore_interrupts(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the run and says so in one line, while
    # workers printing their own KeyboardInterrupt tracebacks would bury it. They end when the main process does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_hangups()


def quiet_hangups() -> None:
    """Keep multiprocessing's file-descriptor sharing thread from printing a traceback when the other side of a
    hand-over goes away (the main process stopping on Ctrl-C mid-batch); any other uncaught error still prints."""
    default = sys.excepthook

    def hook(kind, value, tb):
        if not issubclass(kind, (ConnectionError, EOFError)):
            default(kind, value, tb)

    sys.excepthook = hook


def default_workers(device: torch.device) -> int:
    """Decoding workers. On CPU, decoding + STFT is about a third of the work: half the physical cores (at least 2,
    so that no core idles while the model waits for a batch; at most 16). With a GPU, decoding is the bottleneck:
    every CPU but one (at most 32)."""
    if device.type == "cpu":
        return max(2, min(16, physical_cores() // 2))
    return max(1, min(32, (os.cpu_count() or 2) - 1))


def score_files(network: VQVAE | Sequence[VQVAE], paths: Sequence[str], **kwargs) -> Iterator[FileResult]:
    """Score audio files; yields one `FileResult` per path, in completion order (see `score_file_batches`)."""
    for results in score_file_batches(network, paths, **kwargs):
        yield from results


def score_file_batches(
    network: VQVAE | Sequence[VQVAE],
    paths: Sequence[str],
    *,
    with_decoder: bool = False,
    batch_frames: int | None = None,
    num_workers: int | None = None,
    prefetch: int = 2,
    policy: LongformPolicy = DEFAULT_POLICY,
    threads: int | None = None,
    lanes: int | None = None,
    worker_nice: int | None = None,
    conditioning: Conditioning = PAPER,
    pooling: str | Sequence[str] = "mean",
) -> Iterator[list[FileResult]]:
    """Score audio files; yields the `FileResult`s of each batch as it completes (shortest files first).

    batch_frames: frames per batch, padding included (default: 8192 on CPU, 65536 on a GPU).
    num_workers: decoding processes (0: decode in this process; default: `default_workers`).
    threads: CPU threads for the model (default: one per physical core), split into `lanes`: batches scored
    concurrently by that many Python threads, each with threads // lanes intra-op threads (default on CPU: one
    lane per thread, i.e. single-threaded ops with no OpenMP barriers; on a GPU one lane).
    Scores equal `vqscore.load(...).score(path)` (windowed beyond 30 minutes, see `vqscore.longform`);
    cos_x / l2_x only `with_decoder`. `conditioning`: how each file (or window) is prepared (`vqscore.conditioning`);
    `pooling`: how its frames make its VQScore (`vqscore.pooling`).

    Several networks (a bag of QE models: one STFT, so one decode and one spectrum per file feed them all) give
    each file the mean of their Scores (`scoring.mean_score`), each pooled by its entry of `pooling` (or all by
    one)."""
    networks = [network] if isinstance(network, VQVAE) else list(network)
    poolings = [pooling] * len(networks) if isinstance(pooling, str) else list(pooling)
    if not networks or len(poolings) != len(networks):
        raise ValueError(f"need one pooling per network: {len(networks)} networks, {len(poolings)} poolings")
    engines = [engine_for(n) for n in networks]
    shared = {(e.features, e.normalizes_input, e.device) for e in engines}
    if len(shared) > 1:
        raise ValueError("networks scored together must share their features, input normalisation and device")
    engine = engines[0]
    device = engine.device
    batch_frames = batch_frames or default_batch_frames(device)
    previous_threads = torch.get_num_threads()
    if device.type == "cpu":
        total = int(threads) if threads else physical_cores()
        lanes = max(1, min(int(lanes or total), total))
        configure_threads(max(1, total // lanes))
    else:
        lanes = max(1, int(lanes or 1))
    try:
        yield from _run(
            engines,
            paths,
            with_decoder,
            batch_frames,
            num_workers,
            prefetch,
            policy,
            worker_nice,
            lanes,
            conditioning,
            poolings,
        )
    finally:
        if torch.get_num_threads() != previous_threads:
            torch.set_num_threads(previous_threads)


def make_loader(
    engine: Engine,
    tasks: list[Task],
    *,
    with_decoder: bool,
    batch_frames: int,
    policy: LongformPolicy,
    num_workers: int,
    prefetch: int = 2,
    worker_nice: int = WORKER_NICE,
    pin_memory: bool | None = None,
    conditioning: Conditioning = PAPER,
) -> DataLoader:
    """A DataLoader of `_Item`s (decoded, spectrum-ready batches) over `tasks`, completion order; batches are
    pinned when the model is on a GPU (or `pin_memory`)."""
    features = engine.features
    counter = mp.Value("l", 0)
    stream = _TaskStream(
        tasks,
        features,
        features.min_samples,
        engine.normalizes_input,
        with_decoder,
        batch_frames,
        policy,
        counter,
        worker_nice,
        conditioning,
    )
    if pin_memory is None:
        pin_memory = engine.device.type == "cuda"
    loader_args = dict(batch_size=None, collate_fn=_identity, num_workers=num_workers, pin_memory=pin_memory)
    if num_workers > 0:
        loader_args.update(
            prefetch_factor=prefetch, in_order=False, multiprocessing_context=_mp_context(), worker_init_fn=_ignore_interrupts
        )
    return DataLoader(stream, **loader_args)


def score_item(engine: Engine, item: _Item, with_decoder: bool):
    """The model's part of one item: file results for a batch of files, (start, stop, Score) for windows."""
    if item.kind == "files":
        return list(_finish_files(engine, item, with_decoder))
    if item.kind == "windows":
        return _score_windows(engine, item, with_decoder)
    return None


class ResultAssembler:
    """Turns scored items back into `FileResult`s, putting long files together from their windows, and pools each
    file's frames into its VQScore (`vqscore.pooling`)."""

    def __init__(self, engine: Engine, pooling: str = "mean"):
        self.engine = engine
        self.pooling = pooling
        self.long_parts: dict[str, dict] = {}

    def add(self, item: _Item, scored) -> list[FileResult]:
        results = self._assemble(item, scored)
        for r in results:
            if r.score is not None:
                r.score = apply_pooling(r.score, self.pooling)
        return results

    def _assemble(self, item: _Item, scored) -> list[FileResult]:
        if item.kind == "files":
            return scored
        state = self.long_parts.setdefault(item.key, {"windows": [], "end": None})
        if item.kind == "windows":
            state["windows"].extend(scored)
        else:
            state["end"] = item
        result = _maybe_long_result(self.engine, self.long_parts, item.key)
        return [] if result is None else [result]


def plan_paths(engine: Engine, paths: Sequence[str], batch_frames: int, policy: LongformPolicy) -> list[Task]:
    """Probe and plan (deterministic: every distributed rank computes the same tasks)."""
    lengths = [probe(p) for p in paths]
    return plan_tasks(lengths, list(paths), engine.features.hop_length, batch_frames, policy)


def _run(
    engines, paths, with_decoder, batch_frames, num_workers, prefetch, policy, worker_nice, lanes, conditioning, poolings
) -> Iterator[list[FileResult]]:
    engine = engines[0]  # the one whose features and device every engine shares
    if num_workers is None:
        num_workers = default_workers(engine.device)
    if worker_nice is None:
        worker_nice = WORKER_NICE
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return
    tasks = plan_paths(engine, paths, batch_frames, policy)
    loader = make_loader(
        engine,
        tasks,
        with_decoder=with_decoder,
        batch_frames=batch_frames,
        policy=policy,
        num_workers=num_workers,
        prefetch=prefetch,
        worker_nice=worker_nice,
        conditioning=conditioning,
    )

    def work(item: _Item):
        return item, [score_item(e, item, with_decoder) for e in engines]

    outputs = map(work, loader) if lanes == 1 else _threaded_map(work, loader, lanes)
    assemblers = [ResultAssembler(e, p) for e, p in zip(engines, poolings, strict=True)]
    for item, scored in outputs:
        per_engine = [a.add(item, s) for a, s in zip(assemblers, scored, strict=True)]
        if per_engine[0]:
            yield [mean_result(rs) for rs in zip(*per_engine, strict=True)]


def mean_result(results: Sequence[FileResult]) -> FileResult:
    """One file's result from several engines (the same file, in the same order): the first error, else the mean
    of their Scores."""
    first = results[0]
    if len(results) == 1:
        return first
    failed = next((r for r in results if r.error), None)
    if failed is not None:
        return failed
    if first.score is None:
        return first
    return dataclasses.replace(first, score=mean_score([r.score for r in results]))


def _threaded_map(fn, items: Iterable, lanes: int) -> Iterator:
    """fn over items on `lanes` threads (torch ops release the GIL), results in completion order, at most
    2 x lanes items taken ahead of the slowest."""
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="vqscore-lane") as pool:
        pending: set = set()
        source = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * lanes:
                try:
                    pending.add(pool.submit(fn, next(source)))
                except StopIteration:
                    exhausted = True
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def _mp_context():
    # fork is cheap and inherits the imported modules; elsewhere (macOS, Windows) the platform default
    return mp.get_context("fork") if sys.platform.startswith("linux") else None


def _score_rows(engine: Engine, batch: SpecBatch, with_decoder: bool) -> list[Score | Exception]:
    """Scores of a batch's rows; a batch that fails is retried row by row so that the error names its file."""
    try:
        return scores_from_batch(engine, engine.score(batch, with_decoder), batch)
    except (RuntimeError, ValueError):
        out: list[Score | Exception] = []
        for i in range(len(batch.frames)):
            one = batch.row(i)
            try:
                out.extend(scores_from_batch(engine, engine.score(one, with_decoder), one))
            except (RuntimeError, ValueError) as exc:
                out.append(exc)
        return out


def _finish_files(engine: Engine, item: _Item, with_decoder: bool) -> Iterator[FileResult]:
    scores = _score_rows(engine, item.batch, with_decoder) if item.batch is not None else []
    features = engine.features
    for e in item.entries:
        result = FileResult(e.path, e.duration_s, e.sample_rate, e.channels, error=e.error)
        if not e.error:
            if e.silent_frames is not None:
                result.score = silent_score(e.silent_frames, features.hop_length, features.sample_rate)
            else:
                s = scores[e.slot]
                if isinstance(s, Exception):
                    result.error = f"{e.path}: scoring failed ({s})"
                else:
                    result.score = s
        yield result


def _score_windows(engine: Engine, item: _Item, with_decoder: bool) -> list:
    features = engine.features
    scores = _score_rows(engine, item.batch, with_decoder) if item.batch is not None else []
    out = []
    for start, stop, slot in zip(item.starts, item.stops, item.slots, strict=True):
        if slot is None:
            s = silent_score(features.num_frames(stop - start), features.hop_length, features.sample_rate)
        else:
            s = scores[slot]
        out.append((start, stop, s))
    return out


def _maybe_long_result(engine: Engine, long_parts: dict, key: str) -> FileResult | None:
    state = long_parts[key]
    end = state["end"]
    if end is None or len(state["windows"]) < end.num_windows:
        return None
    del long_parts[key]
    e = end.entries[0]
    path = e.path
    result = FileResult(e.path, e.duration_s, e.sample_rate, e.channels)
    windows = sorted(state["windows"], key=lambda w: w[0])
    failed = [s for _, _, s in windows if isinstance(s, Exception)]
    if failed:
        result.error = f"{path}: scoring failed ({failed[0]})"
        return result
    features = engine.features
    result.score = combine_windows(windows, features.sample_rate)
    return result


def score_paths_in_order(network: VQVAE | Sequence[VQVAE], paths: Sequence[str], **kwargs) -> list[FileResult]:
    """`score_files` collected back into the order of `paths`."""
    results = {}
    for r in score_files(network, paths, **kwargs):
        results[r.path] = r
    return [results[os.fspath(p)] for p in paths]
