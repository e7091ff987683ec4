"""The demo's figures (matplotlib, rendered to PNG on the server): the quality figure (waveform, spectrogram and
per-frame curve on one time axis, drop regions shaded across all three) and the before/after spectrograms."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from .analysis import RATE, Analysis, Clip, Enhancement, envelope, spectrogram

DROP_COLOUR = "#d62728"
CURVE_COLOUR = "#1f77b4"
DPI = 100


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _spectrogram_axes(ax, samples: np.ndarray, vmin: float | None = None, vmax: float | None = None):
    times, freqs, db = spectrogram(samples)
    top = float(np.percentile(db, 99.5)) if vmax is None else vmax
    low = top - 80.0 if vmin is None else vmin
    half = (times[1] - times[0]) / 2 if times.shape[0] > 1 else 0.008
    image = ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        extent=(times[0] - half, times[-1] + half, 0, freqs[-1] / 1000),
        vmin=low,
        vmax=top,
        cmap="magma",
        interpolation="nearest",
    )
    ax.set_ylabel("kHz")
    return image, (low, top)


def quality_figure(clip: Clip, analysis: Analysis, width: float = 12.0) -> Figure:
    """Waveform, spectrogram and per-frame VQScore on one time axis; drop regions shaded in red on all three."""
    figure = Figure(figsize=(width, 6.6), layout="constrained")
    wave_ax, spec_ax, curve_ax = figure.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.4, 1.6]})
    duration = clip.duration_s

    times, lows, highs = envelope(clip.samples)
    wave_ax.fill_between(times, lows, highs, color="#555555", linewidth=0.5)
    wave_ax.set_ylabel("waveform")
    peak = float(max(np.max(np.abs(clip.samples)), 1e-6))
    wave_ax.set_ylim(-1.05 * peak, 1.05 * peak)
    wave_ax.set_yticks([])

    _spectrogram_axes(spec_ax, clip.samples)

    if analysis.frames.size and not analysis.nothing_to_judge:
        curve_ax.plot(analysis.frame_times, analysis.frames, color=CURVE_COLOUR, alpha=0.25, linewidth=0.7, label="per frame")
        curve_ax.plot(analysis.frame_times, analysis.smoothed, color=CURVE_COLOUR, linewidth=2.0, label="smoothed (0.32 s)")
        curve_ax.axhline(
            analysis.threshold, color=DROP_COLOUR, linestyle="--", linewidth=1.2, label=f"drop below {analysis.threshold:.3f}"
        )
        curve_ax.axhline(analysis.score, color="#2ca02c", linestyle=":", linewidth=1.5, label=f"VQScore {analysis.score:.4f}")
        finite = analysis.frames[np.isfinite(analysis.frames)]
        low = min(float(np.percentile(finite, 1)) if finite.size else 0.6, analysis.threshold) - 0.02
        high = max(float(np.percentile(finite, 99.5)) if finite.size else 0.9, analysis.score) + 0.02
        curve_ax.set_ylim(low, high)
        curve_ax.legend(loc="lower right", fontsize=8, ncol=4, framealpha=0.85)
    else:
        curve_ax.text(0.5, 0.5, "nothing to judge (digital silence)", ha="center", va="center", transform=curve_ax.transAxes)
    curve_ax.set_ylabel("VQScore per frame")
    curve_ax.set_xlabel("time (s)")
    curve_ax.grid(alpha=0.3)

    for region in analysis.regions:
        for ax in (wave_ax, spec_ax, curve_ax):
            ax.axvspan(region.start_s, region.end_s, color=DROP_COLOUR, alpha=0.22 if ax is not spec_ax else 0.0, linewidth=0)
        spec_ax.axvspan(region.start_s, region.end_s, ymin=0.0, ymax=1.0, fill=False, edgecolor=DROP_COLOUR, linewidth=2.0)
    curve_ax.set_xlim(0, max(duration, 1.0 / RATE))
    return figure


def before_after_figure(clip: Clip, enhancement: Enhancement, width: float = 12.0) -> Figure:
    """The input's spectrogram above the kept output's, on one colour scale."""
    figure = Figure(figsize=(width, 4.8), layout="constrained")
    before_ax, after_ax = figure.subplots(2, 1, sharex=True)
    image, (low, top) = _spectrogram_axes(before_ax, clip.samples)
    before_ax.set_title(f"before: {clip.name}", fontsize=10, loc="left")
    _spectrogram_axes(after_ax, enhancement.audio, vmin=low, vmax=top)
    after_ax.set_title(f"after: {enhancement.kept} (kept by the ensemble)", fontsize=10, loc="left")
    after_ax.set_xlabel("time (s)")
    figure.colorbar(image, ax=[before_ax, after_ax], label="dB", shrink=0.9)
    return figure
