"""Scoring utterances: one `Score` per utterance, batched by length with padding masked out of every statistic.

`score_utterances` is the in-memory entry point (used by `Model.score` / `Model.vqscore`); the engine doing the
work is `engine.Engine` (see its docstring for the profile and what makes it fast), and `corpus.score_files`
streams files through worker processes for the command line. Recordings longer than 30 minutes are scored in
60-second windows (`longform.py` documents the exact semantics); shorter ones are scored whole, exactly.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .audio import AudioError
from .conditioning import PAPER, Conditioning
from .engine import (
    DEFAULT_BATCH_FRAMES,
    Engine,
    SpecBatch,
    cosine_per_frame,
    normalized_l2_per_frame,
    plan_batches,
    split_frames,
)
from .features import SAMPLE_RATE
from .longform import DEFAULT_POLICY, LongformPolicy, WindowScore, window_bounds
from .models.base import VQVAE
from .pooling import pool

__all__ = [
    "DEFAULT_BATCH_FRAMES",
    "Score",
    "WindowScore",
    "check_length",
    "cosine_per_frame",
    "normalized_l2_per_frame",
    "plan_batches",
    "score_batch",
    "score_utterances",
]


# the four scores of a `Score`, in its order
SCORE_FIELDS = ("cos_z", "l2_z", "cos_x", "l2_x")


@dataclass(frozen=True)
class Score:
    """Quality scores of one utterance. Higher `cos_z` / `cos_x` and lower `l2_z` / `l2_x` mean cleaner speech.

    cos_z: the VQScore, cos(z_t, zq_t) pooled over frames: their mean as in the paper, or the model's pooling
    (`vqscore.pooling`: median, 25th or 10th percentile).
    l2_z: mean of (z - zq)^2 normalised by each frame's mean z^2.
    cos_x, l2_x: the same between the input spectrum and the decoder's reconstruction (NaN when only the VQScore
    was asked for: `Model.vqscore`, the command line).
    frames: (frames,) per-frame cos(z_t, zq_t); frame_times: (frames,) their centres in seconds.
    windows: None for audio scored whole (up to 30 minutes: the exact definition); for longer audio, the
    60-second windows it was scored in (`longform.WindowScore`: start_s, end_s, the four scores, num_frames). Then
    the four scores are the frame-weighted means of the windows' scores, `frames` is the windows' per-frame
    scores concatenated and `frame_times` their centres in the file (a window boundary instant appears twice);
    see `vqscore.longform` for the precise definition.
    Digital silence (every sample exactly 0) has no speech to judge: every field is NaN.
    """

    cos_z: float
    l2_z: float
    cos_x: float
    l2_x: float
    frames: np.ndarray
    frame_times: np.ndarray
    windows: tuple[WindowScore, ...] | None = field(default=None)

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in SCORE_FIELDS}


def silent_score(num_frames: int, hop: int, rate: int) -> Score:
    nan = float("nan")
    return Score(nan, nan, nan, nan, np.full(num_frames, np.nan, dtype=np.float32), frame_times(num_frames, hop, rate))


def apply_pooling(score: Score, pooling: str) -> Score:
    """`score` with cos_z (and each window's) pooled from its per-frame values by `pooling` (`vqscore.pooling`);
    "mean" leaves it as computed (the paper's). l2_z, cos_x and l2_x stay frame means."""
    if pooling == "mean":
        return score
    windows = score.windows
    if windows is not None:
        bounds = np.cumsum([0, *(w.num_frames for w in windows)])
        windows = tuple(
            dataclasses.replace(w, cos_z=pool(score.frames[a:b], pooling))
            for w, a, b in zip(windows, bounds[:-1], bounds[1:], strict=True)
        )
    return dataclasses.replace(score, cos_z=pool(score.frames, pooling), windows=windows)


def mean_score(scores: Sequence[Score]) -> Score:
    """The Score of a bag of models on one utterance: each field the mean of the models' (each already pooled),
    `frames` the per-frame mean. The models share the STFT, so their frames (and windows) line up."""
    first = scores[0]
    if len(scores) == 1:
        return first

    def means(items) -> dict[str, float]:
        return {k: float(np.mean([getattr(i, k) for i in items])) for k in SCORE_FIELDS}

    windows = first.windows
    if windows is not None:
        windows = tuple(dataclasses.replace(ws[0], **means(ws)) for ws in zip(*(s.windows for s in scores), strict=True))
    frames = np.mean([s.frames for s in scores], axis=0).astype(first.frames.dtype, copy=False)
    return dataclasses.replace(first, **means(scores), frames=frames, windows=windows)


def nothing_to_judge(wav: np.ndarray, model: VQVAE, conditioning: Conditioning = PAPER) -> bool:
    """Whether an utterance ((samples,) float32 mono at 16 kHz, as `audio.load_audio` makes it) scores NaN in every
    field: digital silence (judged after that conversion: values below float32's range or resampled away count as
    zeros), or no variation over time once conditioned (`engine.is_flat`: below the power floor, pure DC)."""
    if not np.any(wav):
        return True
    batch = engine_for(model).prepare([wav], keep_raw=False, conditioning=conditioning)
    return bool(batch.flat[0])


def check_length(samples: np.ndarray, min_samples: int, name: str) -> None:
    if samples.shape[0] < min_samples:
        raise AudioError(
            f"{name}: too short ({samples.shape[0]} samples at 16 kHz); at least {min_samples} samples "
            f"({1000 * min_samples / 16000:.0f} ms, one STFT window) are needed"
        )


def frame_times(num_frames: int, hop: int, rate: int) -> np.ndarray:
    return np.arange(num_frames, dtype=np.float64) * hop / rate


_ENGINES: weakref.WeakKeyDictionary[VQVAE, Engine] = weakref.WeakKeyDictionary()


def engine_for(model: VQVAE) -> Engine:
    """The engine of a network, cached while its device and codebook stay the same (a training step that updates
    the codebook in place bumps the tensor's version and gets a fresh engine)."""
    engine = _ENGINES.get(model)
    if engine is None or not engine.is_current():
        engine = _ENGINES[model] = Engine(model)
    return engine


def scores_from_batch(engine: Engine, result, batch: SpecBatch) -> list[Score]:
    """`Score`s of a scored batch: frame times shifted by what the conditioning trimmed off each start; utterances
    with nothing to judge (`engine.is_flat`) score NaN like digital silence."""
    features = engine.features
    count = len(batch.frames)
    per_frame = split_frames(result.frames_cos, result.frames)
    starts = [0.0] * count if batch.offsets is None else [o / features.sample_rate for o in batch.offsets]
    flat = batch.flat or [False] * count
    scores = [
        Score(
            float(result.cos_z[i]),
            float(result.l2_z[i]),
            float(result.cos_x[i]),
            float(result.l2_x[i]),
            per_frame[i],
            starts[i] + frame_times(result.frames[i], features.hop_length, features.sample_rate),
        )
        for i in range(count)
    ]
    for i in range(count):
        if flat[i]:
            silent = silent_score(result.frames[i], features.hop_length, features.sample_rate)
            scores[i] = dataclasses.replace(silent, frame_times=scores[i].frame_times)
    return scores


def score_batch(
    model: VQVAE, wavs: Sequence[np.ndarray], with_decoder: bool = True, conditioning: Conditioning = PAPER
) -> list[Score]:
    """Score utterances of any lengths in one forward pass (padded to the longest, padding masked).

    wavs: (samples,) float32 at 16 kHz each, none silent or shorter than one window.
    Without the decoder, cos_x and l2_x are NaN.
    """
    engine = engine_for(model)
    batch = engine.prepare(wavs, keep_raw=with_decoder, conditioning=conditioning)
    return scores_from_batch(engine, engine.score(batch, with_decoder), batch)


def score_utterances(
    model: VQVAE,
    wavs: Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    with_decoder: bool = True,
    max_batch_frames: int = DEFAULT_BATCH_FRAMES,
    policy: LongformPolicy = DEFAULT_POLICY,
    conditioning: Conditioning = PAPER,
) -> list[Score]:
    """Score many utterances (each (samples,) float32 at 16 kHz), batched by length; results in input order.

    Utterances longer than `policy.max_whole_s` are scored in windows (`vqscore.longform`); their windows are
    batched with everything else. Each utterance (or window) is conditioned on its own (`vqscore.conditioning`)."""
    names = names or [f"<utterance {i}>" for i in range(len(wavs))]
    features = model.features
    hop = features.hop_length
    window = policy.window_samples(hop)
    results: list[Score | None] = [None] * len(wavs)
    pieces: list[tuple[int, int, int]] = []  # (utterance, start, stop) scored as one utterance each
    windowed: dict[int, list[tuple[int, int]]] = {}
    for i, (w, name) in enumerate(zip(wavs, names, strict=True)):
        check_length(w, features.min_samples, name)
        if policy.is_long(w.shape[0]):
            windowed[i] = window_bounds(w.shape[0], window)
            pieces.extend((i, a, b) for a, b in windowed[i])
        else:
            pieces.append((i, 0, w.shape[0]))
    piece_scores: dict[tuple[int, int], Score] = {}
    active = []
    for i, a, b in pieces:
        if not np.any(wavs[i][a:b]):
            piece_scores[(i, a)] = silent_score(features.num_frames(b - a), hop, features.sample_rate)
        else:
            active.append((i, a, b))
    engine = engine_for(model)
    for batch in plan_batches([b - a for _, a, b in active], hop, max_batch_frames):
        chosen = [active[j] for j in batch]
        prepared = engine.prepare([wavs[i][a:b] for i, a, b in chosen], keep_raw=with_decoder, conditioning=conditioning)
        scored = scores_from_batch(engine, engine.score(prepared, with_decoder), prepared)
        for (i, a, _), score in zip(chosen, scored, strict=True):
            piece_scores[(i, a)] = score
    for i in range(len(wavs)):
        if i in windowed:
            parts = [(a, b, piece_scores[(i, a)]) for a, b in windowed[i]]
            results[i] = combine_windows(parts, features.sample_rate)
        else:
            results[i] = piece_scores[(i, 0)]
    return results  # type: ignore[return-value]


def combine_windows(windows: list[tuple[int, int, Score]], sample_rate: int = SAMPLE_RATE) -> Score:
    """Score of a long file from its windows: [(start, stop, window Score)] in file order (samples at 16 kHz)."""
    parts, times, listed = [], [], []
    weights = {k: [0.0, 0] for k in SCORE_FIELDS}
    for start, stop, score in windows:
        n = score.frames.shape[0]
        parts.append(score.frames)
        times.append(start / sample_rate + score.frame_times)
        listed.append(
            WindowScore(start / sample_rate, stop / sample_rate, score.cos_z, score.l2_z, score.cos_x, score.l2_x, n)
        )
        for key, acc in weights.items():
            value = getattr(score, key)
            if np.isfinite(value):
                acc[0] += n * float(value)
                acc[1] += n
    means = {k: (s / c if c else float("nan")) for k, (s, c) in weights.items()}
    return Score(
        means["cos_z"],
        means["l2_z"],
        means["cos_x"],
        means["l2_x"],
        np.concatenate(parts).astype(np.float32, copy=False),
        np.concatenate(times),
        windows=tuple(listed),
    )
