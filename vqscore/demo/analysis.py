"""What the demo page computes, free of any UI so that it is tested without a browser: reading an upload, the
VQScore with its per-frame curve, the regions where quality drops, spectrograms and waveform envelopes for the plots,
enhancement by an ensemble, and the CSV/WAV downloads.

Imports only the library's front door (`vqscore.api`) and, when enhancement is asked for, `vqscore.ensemble`.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from vqscore.api import AudioError, Model, Score, load, load_audio

RATE = 16_000
HOP_S = 256 / RATE  # one QE frame (hop 256 at 16 kHz): the spacing of Score.frame_times

# Drop regions: the per-frame cosine is noisy (its 5th-95th percentiles span 0.1 on clean speech), so it is
# averaged over SMOOTH_S first; a region is where that average stays below the threshold for MIN_REGION_S or
# more, regions closer than MERGE_GAP_S joined. With the default model, the smoothed curve is below DROP_THRESHOLD
# on 2.5 % of the frames of held-out clean LibriSpeech speakers (2.7 % of VoiceBank's clean recordings, 10 % of
# the short AN4 test utterances) and on 27 % of the real VoiceBank-DEMAND noisy recordings; 0 dB noise brings it
# to about 0.72.
SMOOTH_S = 0.32
DROP_THRESHOLD = 0.74
MIN_REGION_S = 0.25
MERGE_GAP_S = 0.15

# Typical values of the default model (v2: robust conditioning, 25th-percentile pooling) on TCD-VoIP dev, grouped
# by the listeners' MOS (README, "What the raw number means"): (label, median, 10th, 90th percentile).
TYPICAL = (
    ("bad (MOS < 2.5)", 0.737, 0.699, 0.751),
    ("fair (2.5-4)", 0.752, 0.737, 0.766),
    ("good (MOS >= 4)", 0.757, 0.744, 0.767),
)
TYPICAL_MODEL = "vqscore-qe-cleanspeech@2.0.0"

# Spectrogram for the plots: the QE model's own STFT frame (512-point window, hop 256), so its columns line up
# with the per-frame scores.
N_FFT = 512
SPEC_HOP = 256
MAX_ENHANCE_S = 300.0  # longer recordings are scored but not enhanced on the page (every member would run on them)
MAX_SPEC_COLUMNS = 1600  # longer clips are shown with columns pooled (max) to this many


class DemoError(Exception):
    """A problem to show on the page as one clear message (`title`: what went wrong; `detail`: the library's
    own words)."""

    def __init__(self, title: str, detail: str = ""):
        super().__init__(f"{title}: {detail}" if detail else title)
        self.title = title
        self.detail = detail


# ----------------------------------------------------------------------------------------------------- models

_models: dict[str, Model] = {}
_ensembles: dict[str, object] = {}
_load_lock = threading.Lock()
_compute_lock = threading.Lock()  # one computation at a time: the models are shared by every browser session


def get_model(name: str) -> Model:
    """The QE model `name` (loaded once per process); `DemoError` if it cannot be loaded."""
    with _load_lock:
        if name not in _models:
            try:
                model = load(name)
            except Exception as exc:  # any failure to build it is the page's message, never a crash
                raise DemoError(f"The scoring model {name!r} could not be loaded", f"{type(exc).__name__}: {exc}") from exc
            if model.kind != "qe":
                raise DemoError(
                    f"The scoring model {name!r} could not be loaded",
                    f"it is a {model.kind.upper()} model; scoring needs a QE model",
                )
            _models[name] = model
        return _models[name]


def get_ensemble(name: str):
    """The enhancement ensemble `name` (a shipped name or an ensemble JSON/YAML file; built once per process);
    `DemoError` if the ensemble module is missing or the ensemble cannot be built (its message names the member)."""
    with _load_lock:
        if name not in _ensembles:
            try:
                from vqscore.ensemble import Ensemble
            except ImportError as exc:
                raise DemoError("Enhancement is not available", f"vqscore.ensemble cannot be imported ({exc})") from exc
            try:
                _ensembles[name] = Ensemble.load(name)
            except Exception as exc:  # EnsembleError names the member; anything else is reported the same way
                raise DemoError(
                    f"The enhancement ensemble {name!r} could not be loaded", f"{type(exc).__name__}: {exc}"
                ) from exc
        return _ensembles[name]


def forget_models() -> None:
    with _load_lock:
        _models.clear()
        _ensembles.clear()


# ------------------------------------------------------------------------------------------------------ input


@dataclass(frozen=True)
class Clip:
    """Decoded input: (samples,) float32 mono at 16 kHz (what the library scores), and where it came from."""

    name: str
    samples: np.ndarray
    source_rate: int
    source_channels: int
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / RATE


def decode(data: bytes, name: str) -> Clip:
    """Read uploaded bytes in any format and rate the library reads (libsndfile: WAV, FLAC, OGG, MP3, AIFF, ...),
    channels averaged, resampled to 16 kHz. `DemoError` for an empty, corrupt or non-audio file."""
    if not data:
        raise DemoError(f"{name} is empty", "the upload has 0 bytes")
    try:
        audio = load_audio(io.BytesIO(data), name=name)
    except AudioError as exc:
        raise DemoError(f"{name} could not be read as audio (corrupt, or not an audio file)", str(exc)) from exc
    return Clip(name, audio.samples, audio.source_rate, audio.source_channels, len(data))


# ---------------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Region:
    start_s: float
    end_s: float
    mean: float  # mean smoothed score inside
    lowest: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Analysis:
    """One clip scored: the VQScore, the 1-5 value where the model has a scale, the per-frame curve and its
    smoothed version, the drop regions below `threshold`."""

    score: float
    mos: float | None
    frames: np.ndarray
    frame_times: np.ndarray
    smoothed: np.ndarray
    threshold: float
    regions: tuple[Region, ...]
    model_tag: str
    scoring: str
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def nothing_to_judge(self) -> bool:
        return math.isnan(self.score)


def score_clip(model: Model, clip: Clip) -> Score:
    """The library's `Score` of the clip (the same numbers as `model.score(path)`); `DemoError` if it is too
    short (under one 32 ms window) or otherwise refused."""
    try:
        with _compute_lock:
            return model.score(clip.samples, sr=RATE)
    except AudioError as exc:
        text = str(exc)
        if "too short" in text:
            raise DemoError(
                f"{clip.name} is too short to score ({1000 * clip.duration_s:.0f} ms)",
                "at least 32 ms (512 samples at 16 kHz, one analysis window) are needed; a few seconds of speech "
                "give a meaningful score",
            ) from exc
        raise DemoError(f"{clip.name} could not be scored", text) from exc


def smooth(frames: np.ndarray, window_s: float = SMOOTH_S) -> np.ndarray:
    """Moving mean over `window_s` (edges: the mean of what is inside); NaN frames are ignored."""
    frames = np.asarray(frames, dtype=np.float64)
    n = max(1, int(round(window_s / HOP_S)))
    if frames.size == 0 or n == 1:
        return frames.copy()
    valid = np.isfinite(frames)
    values = np.where(valid, frames, 0.0)
    kernel = np.ones(n)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(valid.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def drop_regions(
    times: np.ndarray,
    smoothed: np.ndarray,
    threshold: float = DROP_THRESHOLD,
    min_s: float = MIN_REGION_S,
    merge_gap_s: float = MERGE_GAP_S,
) -> tuple[Region, ...]:
    """Stretches where `smoothed` (per frame, centres at `times`) is below `threshold`: runs closer than
    `merge_gap_s` joined, then those shorter than `min_s` dropped. Each spans its frames' centres +- half a hop."""
    below = np.isfinite(smoothed) & (smoothed < threshold)
    if not below.any():
        return ()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], below.astype(np.int8), [0]])))
    runs = [[a, b] for a, b in zip(edges[::2], edges[1::2], strict=True)]  # frame index ranges [a, b)
    merged = [runs[0]]
    for a, b in runs[1:]:
        if times[a] - times[merged[-1][1] - 1] - HOP_S <= merge_gap_s:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    regions = []
    for a, b in merged:
        start = max(0.0, float(times[a]) - HOP_S / 2)
        end = float(times[b - 1]) + HOP_S / 2
        if end - start + 1e-9 < min_s:
            continue
        inside = smoothed[a:b]
        regions.append(Region(start, end, float(np.nanmean(inside)), float(np.nanmin(inside))))
    return tuple(regions)


def analyse(model: Model, clip: Clip, threshold: float = DROP_THRESHOLD) -> Analysis:
    """Score the clip and find where its quality drops."""
    import time

    start = time.perf_counter()
    score = score_clip(model, clip)
    seconds = time.perf_counter() - start
    frames = np.asarray(score.frames, dtype=np.float64)
    times = np.asarray(score.frame_times, dtype=np.float64)
    smoothed = smooth(frames)
    mos = None
    scale = model.mos_scale
    if scale is not None and math.isfinite(score.cos_z):
        mos = float(scale(score.cos_z))
    return Analysis(
        score=float(score.cos_z),
        mos=mos,
        frames=frames,
        frame_times=times,
        smoothed=smoothed,
        threshold=threshold,
        regions=drop_regions(times, smoothed, threshold),
        model_tag=model.tag,
        scoring=model.scoring,
        seconds=seconds,
    )


def with_threshold(analysis: Analysis, threshold: float) -> Analysis:
    """The same analysis with its drop regions found again below another threshold."""
    from dataclasses import replace

    return replace(analysis, threshold=threshold, regions=drop_regions(analysis.frame_times, analysis.smoothed, threshold))


def band(score: float) -> str:
    """Which typical band of the default model the score sits nearest (by the bands' medians), for the page's
    one-line reading; "" for NaN."""
    if not math.isfinite(score):
        return ""
    if score < (TYPICAL[0][1] + TYPICAL[1][1]) / 2:
        return "like recordings people rate bad"
    if score < (TYPICAL[1][1] + TYPICAL[2][1]) / 2:
        return "like recordings people rate fair"
    return "like recordings people rate good"


# ----------------------------------------------------------------------------------------------- plots' data


def spectrogram(samples: np.ndarray, max_columns: int = MAX_SPEC_COLUMNS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB (bins, columns) with column centre times (s) and bin frequencies (Hz): Hann window
    of N_FFT, hop SPEC_HOP, centred like the model's frames; more than `max_columns` columns are max-pooled."""
    x = np.asarray(samples, dtype=np.float32)
    pad = N_FFT // 2
    x = np.pad(x, (pad, pad), mode="constant")
    count = 1 + max(0, (x.shape[0] - N_FFT) // SPEC_HOP)
    index = np.arange(N_FFT)[None, :] + SPEC_HOP * np.arange(count)[:, None]
    frames = x[index] * np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (columns, bins)
    times = np.arange(count) * SPEC_HOP / RATE
    if count > max_columns:
        step = int(math.ceil(count / max_columns))
        usable = (count // step) * step
        power = power[:usable].reshape(-1, step, power.shape[1]).max(axis=1)
        times = times[:usable].reshape(-1, step).mean(axis=1)
    db = 10.0 * np.log10(power.T + 1e-10)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    return times, freqs, db


def envelope(samples: np.ndarray, columns: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min and max of the waveform in `columns` equal slices, with the slices' centre times: a waveform plot that
    costs the same for any length."""
    x = np.asarray(samples, dtype=np.float32)
    columns = max(1, min(columns, x.shape[0]))
    edges = np.linspace(0, x.shape[0], columns + 1).astype(np.int64)
    lows = np.minimum.reduceat(x, edges[:-1])
    highs = np.maximum.reduceat(x, edges[:-1])
    times = (edges[:-1] + edges[1:]) / 2 / RATE
    return times, lows, highs


# ------------------------------------------------------------------------------------------------ enhancement


@dataclass(frozen=True)
class MemberView:
    name: str
    score: float
    chosen: bool
    seconds: float
    weight: float  # its share of the kept audio: 1 or 0 for a hard pick


@dataclass(frozen=True)
class Enhancement:
    """The ensemble's outcome on one clip: the kept audio (the chosen member's output, or the members' outputs mixed
    by their weights where the ensemble picks softly), every member's selector score, weight, output and time."""

    ensemble: str
    selector: str
    chosen: str
    members: tuple[MemberView, ...]
    outputs: dict[str, np.ndarray]
    audio: np.ndarray
    sample_rate: int
    seconds: float

    @property
    def mixed(self) -> bool:
        return any(0.0 < m.weight < 1.0 for m in self.members)

    @property
    def kept(self) -> str:
        """What the kept audio is, in words: the chosen member, or the mix and the member it leans on."""
        return f"a score-weighted mix, mostly {self.chosen}" if self.mixed else self.chosen


def enhance_clip(ensemble, clip: Clip) -> Enhancement:
    """Run every member of `ensemble` on the clip (16 kHz mono) and keep its selection; `DemoError` if a member
    fails."""
    import time

    start = time.perf_counter()
    try:
        with _compute_lock:
            selection = ensemble.enhance(clip.samples, RATE)
    except Exception as exc:  # EnsembleError names the failing member
        raise DemoError(f"Enhancing {clip.name} failed", f"{type(exc).__name__}: {exc}") from exc
    members = tuple(
        MemberView(m.member, float(m.score), bool(m.chosen), float(m.seconds), float(m.weight)) for m in selection.members
    )
    return Enhancement(
        ensemble=str(getattr(ensemble, "name", "ensemble")),
        selector=str(getattr(selection, "selector", "")),
        chosen=selection.chosen,
        members=members,
        outputs={k: np.asarray(v, dtype=np.float32) for k, v in selection.outputs.items()},
        audio=np.asarray(selection.audio, dtype=np.float32),
        sample_rate=int(selection.sample_rate),
        seconds=time.perf_counter() - start,
    )


# -------------------------------------------------------------------------------------------------- downloads


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    """A WAV file in memory: PCM_16 (clipped to [-1, 1]) for the players, FLOAT for downloads (exact)."""
    x = np.asarray(samples, dtype=np.float32)
    if subtype.startswith("PCM"):
        x = np.clip(x, -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, x, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


SCORE_COLUMNS = ("file", "audio", "vqscore", "chosen", "weight", "seconds", "scored_by")


def scores_csv(clip: Clip, analysis: Analysis, enhancement: Enhancement | None = None) -> str:
    """One row for the input (the VQScore) and one per ensemble member (the selector's score of its output,
    whether it was chosen, its weight in the kept audio, its enhancement time)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    writer.writerow([clip.name, "input", fmt(analysis.score), "", "", "", analysis.model_tag])
    if enhancement is not None:
        for m in enhancement.members:
            writer.writerow(
                [clip.name, m.name, fmt(m.score), int(m.chosen), f"{m.weight:.6f}", f"{m.seconds:.3f}", enhancement.selector]
            )
    return out.getvalue()


def frames_csv(clip: Clip, analysis: Analysis) -> str:
    """The per-frame curve: time_s, frame score, smoothed score, in_drop (1 inside a highlighted region)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("time_s", "frame_score", "smoothed", "in_drop"))
    for t, f, s in zip(analysis.frame_times, analysis.frames, analysis.smoothed, strict=True):
        inside = any(r.start_s <= t <= r.end_s for r in analysis.regions)
        writer.writerow([f"{t:.4f}", fmt(f), fmt(s), int(inside)])
    return out.getvalue()


def fmt(value: float, digits: int = 6) -> str:
    """Scores as text: `digits` decimals (the page and the CSVs agree with the API within 1e-6); NaN as empty."""
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
