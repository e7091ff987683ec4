"""The demo page (a Streamlit script: `vqscore demo` serves it; `streamlit run vqscore/demo/app.py` works too).

Settings come from the environment, which `vqscore demo` fills from its options: VQSCORE_DEMO_MODEL (the QE model,
default "default"), VQSCORE_DEMO_ENSEMBLE (the enhancement ensemble, default "default"), VQSCORE_DEMO_MAX_UPLOAD_MB
(the upload limit shown on the page; the server enforces `server.maxUploadSize`).

Elements the browser test reads carry stable hooks: the score block `#vq-score` (data-score), each ensemble member
`.vq-member` (data-member, data-score, data-chosen), messages inside `.st-key-vq-error`.
"""

from __future__ import annotations

import hashlib
import html
import math
import os

import numpy as np
import streamlit as st

from vqscore.demo import analysis as A
from vqscore.demo import examples as E
from vqscore.demo import plots as P

SOURCES = ("Upload a file", "Record from the microphone", "Example clip")
DEFAULT_MAX_UPLOAD_MB = 50


def settings() -> tuple[str, str, int]:
    model = os.environ.get("VQSCORE_DEMO_MODEL") or "default"
    ensemble = os.environ.get("VQSCORE_DEMO_ENSEMBLE") or "default"
    try:
        limit = int(os.environ.get("VQSCORE_DEMO_MAX_UPLOAD_MB") or DEFAULT_MAX_UPLOAD_MB)
    except ValueError:
        limit = DEFAULT_MAX_UPLOAD_MB
    return model, ensemble, limit


# Cached per input (by the digest of its bytes) so that a rerun (the threshold slider, a download) recomputes
# nothing; the bytes themselves are passed unhashed.


@st.cache_data(max_entries=16, show_spinner=False)
def cached_decode(digest: str, name: str, _data: bytes) -> A.Clip:
    return A.decode(_data, name)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_analysis(digest: str, model_name: str, _clip: A.Clip) -> A.Analysis:
    return A.analyse(A.get_model(model_name), _clip)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_enhancement(digest: str, ensemble_name: str, _clip: A.Clip) -> A.Enhancement:
    return A.enhance_clip(A.get_ensemble(ensemble_name), _clip)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_wav(digest: str, member: str, _samples, subtype: str = "PCM_16") -> bytes:
    return A.wav_bytes(_samples, A.RATE, subtype)


def markdown_text(text: str) -> str:
    """Plain text shown through Markdown as typed: file names and library messages may hold *, _, $ (LaTeX) ..."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|$~" else c for c in text)


def show_error(error: A.DemoError, key: str = "vq-error") -> None:
    with st.container(key=key):
        text = f"**{markdown_text(error.title)}.**"
        if error.detail:
            text += f"\n\n{markdown_text(error.detail)}"
        st.error(text, icon=":material/error:")


STYLE = """
<style>
.vq-score {font-family: sans-serif; border: 1px solid #ddd; border-radius: 8px; padding: 12px 16px; background: #fafafa}
.vq-score .vq-value {font-size: 2.6rem; font-weight: 700; line-height: 1.1}
.vq-score .vq-label {color: #555; font-size: 0.9rem}
.vq-score .vq-reading {font-size: 1.05rem; margin-top: 4px}
.vq-member {font-family: sans-serif; border: 1px solid #ddd; border-radius: 8px; padding: 8px 10px; margin-bottom: 6px}
.vq-member.vq-chosen {border: 2px solid #2ca02c; background: #f1fbf1}
.vq-member .vq-name {font-weight: 700}
.vq-member .vq-value {font-size: 1.4rem; font-weight: 600}
.vq-regions {border-collapse: collapse; font-family: sans-serif; font-size: 0.9rem}
.vq-regions td, .vq-regions th {border: 1px solid #ddd; padding: 3px 10px; text-align: right}
.vq-badge {background: #2ca02c; color: white; border-radius: 4px; padding: 1px 6px; font-size: 0.8rem; margin-left: 6px}
</style>
"""


def scale_html(score: float, low: float = 0.68, high: float = 0.80) -> str:
    """The score against the default model's typical values, in plain HTML (the page's sanitizer drops SVG): one
    bar per listener band (10th-90th percentile, a tick at the median), the score as a black line across them."""

    def x(v: float) -> float:
        return (min(max(v, low), high) - low) / (high - low) * 100.0

    colours = ("#d62728", "#ff7f0e", "#2ca02c")
    rows = []
    for k, (label, median, p10, p90) in enumerate(A.TYPICAL):
        rows.append(
            f'<div style="position:relative;height:20px;margin:3px 0">'
            f'<div style="position:absolute;left:{x(p10):.2f}%;width:{x(p90) - x(p10):.2f}%;top:2px;height:16px;'
            f'background:{colours[k]};opacity:0.35;border-radius:3px"></div>'
            f'<div style="position:absolute;left:{x(median):.2f}%;width:3px;top:2px;height:16px;background:{colours[k]}"></div>'
            f'<div style="position:absolute;left:{x(p90) + 1:.2f}%;top:2px;font-size:11px;color:#333;white-space:nowrap">'
            f"{html.escape(label)}</div></div>"
        )
    ticks = "".join(
        f'<div style="position:absolute;left:{x(v):.2f}%;transform:translateX(-50%);font-size:11px;color:#555">{v:.2f}</div>'
        for v in np.linspace(low, high, 7)
    )
    marker = ""
    if math.isfinite(score):
        marker = (
            f'<div class="vq-marker" style="position:absolute;left:{x(score):.2f}%;top:0;bottom:16px;width:3px;'
            f'margin-left:-1px;background:#000"></div>'
        )
    return (
        f'<div style="position:relative;margin:10px 90px 4px 0">{"".join(rows)}'
        f'<div style="position:relative;height:16px;border-top:1px solid #999">{ticks}</div>{marker}</div>'
    )


def score_block(clip: A.Clip, analysis: A.Analysis) -> str:
    value = "nothing to judge" if analysis.nothing_to_judge else f"{analysis.score:.4f}"
    reading = (
        "Digital silence: there is no speech to judge (the library scores it NaN)."
        if analysis.nothing_to_judge
        else f"{A.band(analysis.score).capitalize()} (among the default model's typical values below)."
    )
    mos = (
        f" &nbsp;·&nbsp; about <b>{analysis.mos:.2f}</b> on the listeners' 1-5 scale (a rough guide fitted on one corpus)"
        if analysis.mos is not None
        else ""
    )
    caveat = (
        ""
        if analysis.model_tag.startswith(A.TYPICAL_MODEL)
        else f"<div class='vq-label'>The bands are the default model's ({A.TYPICAL_MODEL}); this page scores with another.</div>"
    )
    return (
        f'<div id="vq-score" class="vq-score" data-score="{A.fmt(analysis.score, 8)}" data-model="{html.escape(analysis.model_tag)}">'
        f'<div class="vq-label">VQScore of {html.escape(clip.name)} (higher is cleaner)</div>'
        f'<div class="vq-value">{value}</div>'
        f'<div class="vq-reading">{html.escape(reading)}{mos}</div>'
        f"{scale_html(analysis.score)}"
        "<div class='vq-label'>Bars: typical values of the default model on TCD-VoIP dev grouped by the listeners' "
        "rating, 10th-90th percentile with a tick at the median: "
        + "; ".join(f"{label} {median:.3f} ({p10:.3f}-{p90:.3f})" for label, median, p10, p90 in A.TYPICAL)
        + ". The bands overlap: compare recordings with each other rather than against a fixed threshold.</div>"
        f"{caveat}</div>"
    )


def member_block(member: A.MemberView) -> str:
    chosen = ' <span class="vq-badge">chosen</span>' if member.chosen else ""
    return (
        f'<div class="vq-member{" vq-chosen" if member.chosen else ""}" data-member="{html.escape(member.name)}" '
        f'data-score="{A.fmt(member.score, 8)}" data-chosen="{int(member.chosen)}">'
        f'<div class="vq-name">{html.escape(member.name)}{chosen}</div>'
        f'<div class="vq-value">{A.fmt(member.score, 4) or "n/a"}</div>'
        f'<div class="vq-label">weight {member.weight:.2f}; enhanced in {member.seconds:.2f} s</div></div>'
    )


def pick_input(limit_mb: int) -> tuple[bytes | None, str]:
    source = st.radio("Audio", SOURCES, horizontal=True, key="source")
    if source == SOURCES[0]:
        upload = st.file_uploader(
            f"An audio file in any format and rate the library reads (WAV, FLAC, OGG, MP3, AIFF, ...), up to {limit_mb} MB",
            key="upload",
        )
        return (upload.getvalue(), upload.name) if upload is not None else (None, "")
    if source == SOURCES[1]:
        recording = st.audio_input("Record from your microphone (press the microphone, speak, press stop)", key="recording")
        return (recording.getvalue(), "recording.wav") if recording is not None else (None, "")
    titles = E.titles()
    key = st.selectbox(
        "Example clip (synthesised on first use: no recorded data ships with vqscore)",
        list(titles),
        format_func=titles.get,
        key="example",
    )
    return E.example_wav(key), f"{key}.wav"


def threshold_slider() -> float:
    return float(
        st.slider(
            "Highlight where the smoothed score falls below",
            min_value=0.68,
            max_value=0.80,
            value=A.DROP_THRESHOLD,
            step=0.001,
            format="%.3f",
            key="threshold",
            help=f"Default {A.DROP_THRESHOLD}: with the default model, the smoothed curve of clean speech is below it "
            "on about 2.5 % of the frames, that of real noisy recordings (VoiceBank-DEMAND) on 27 %. The curve is "
            f"averaged over {A.SMOOTH_S} s first; regions shorter than {A.MIN_REGION_S} s are not marked.",
        )
    )


def regions_table(analysis: A.Analysis) -> str:
    rows = "".join(
        f'<tr class="vq-region" data-start="{r.start_s:.3f}" data-end="{r.end_s:.3f}"><td>{r.start_s:.2f}</td>'
        f"<td>{r.end_s:.2f}</td><td>{r.duration_s:.2f}</td><td>{r.mean:.4f}</td><td>{r.lowest:.4f}</td></tr>"
        for r in analysis.regions
    )
    return (
        '<table class="vq-regions"><tr><th>from (s)</th><th>to (s)</th><th>length (s)</th><th>mean</th>'
        f"<th>lowest</th></tr>{rows}</table>"
    )


def main() -> None:
    st.set_page_config(page_title="VQScore demo", layout="wide")  # no emoji icon: its first use costs 0.45 s (a regex)
    model_name, ensemble_name, limit_mb = settings()
    st.html(STYLE)
    st.title("VQScore: speech quality without a reference")
    st.caption(
        "A VQ-VAE trained on clean speech only scores how far a recording lies from clean speech (higher is cleaner), "
        "frame by frame; an ensemble of enhancers then cleans it up and the score picks the best output."
    )
    st.caption(
        f"Scoring model `{model_name}` · enhancement ensemble `{os.path.basename(ensemble_name)}` · uploads up to {limit_mb} MB. "
        "The score is the library's own: `vqscore.load(model).score(file).cos_z`, per frame `Score.frames`."
    )

    data, name = pick_input(limit_mb)
    if data is None:
        st.info("Upload a recording, record one, or pick an example clip to score it.")
        return
    digest = hashlib.sha1(data).hexdigest()
    try:
        clip = cached_decode(digest, name, data)
    except A.DemoError as error:
        show_error(error)
        return
    st.audio(cached_wav(digest, "input", clip.samples), format="audio/wav")
    st.caption(
        f"{clip.name}: {clip.duration_s:.2f} s, {clip.source_rate} Hz, {clip.source_channels} channel(s), "
        f"{clip.size_bytes / 1e6:.2f} MB; scored as mono 16 kHz"
    )
    try:
        A.get_model(model_name)
        scored = cached_analysis(digest, model_name, clip)
    except A.DemoError as error:
        show_error(error)
        return

    left, right = st.columns([2, 3])
    with left:
        st.html(score_block(clip, scored))
    with right:
        st.subheader("Where quality drops")
        analysis = A.with_threshold(scored, threshold_slider())
        if analysis.nothing_to_judge:
            st.write("Nothing to judge: the recording is digital silence.")
        elif analysis.regions:
            st.write(
                f"{len(analysis.regions)} region(s) where the smoothed score stays below {analysis.threshold:.3f} "
                "(shaded red in the figure):"
            )
            st.html(regions_table(analysis))
        else:
            st.write(
                f"No region where the smoothed score stays below {analysis.threshold:.3f} for {A.MIN_REGION_S} s or more."
            )
        st.caption(f"Scored by {analysis.model_tag} ({analysis.scoring}) in {analysis.seconds:.2f} s.")
        st.download_button(
            "Per-frame scores (CSV)",
            A.frames_csv(clip, analysis),
            file_name=f"{os.path.splitext(clip.name)[0]}-frames.csv",
            mime="text/csv",
            on_click="ignore",
            key="download-frames",
        )
    with st.container(key="vq-quality-figure"):
        st.image(
            P.png(P.quality_figure(clip, analysis)),
            caption="Waveform, spectrogram and per-frame VQScore on one time axis; red: where quality drops.",
        )

    enhance_section(clip, digest, analysis, ensemble_name)


def enhance_section(clip: A.Clip, digest: str, analysis: A.Analysis, ensemble_name: str) -> None:
    st.header("Enhance with the ensemble")
    if clip.duration_s > A.MAX_ENHANCE_S:
        with st.container(key="vq-enhance-error"):
            st.info(
                f"The recording is {clip.duration_s / 60:.1f} min long; the demo enhances recordings up to "
                f"{A.MAX_ENHANCE_S / 60:.0f} min (every member runs on it). `vqscore enhance` handles long files."
            )
        return
    try:
        ensemble = A.get_ensemble(ensemble_name)
        with st.spinner(f"Enhancing with every member of the ensemble {ensemble_name!r}..."):
            enhancement = cached_enhancement(digest, ensemble_name, clip)
    except A.DemoError as error:
        show_error(error, key="vq-enhance-error")
        st.download_button(
            "Scores (CSV)",
            A.scores_csv(clip, analysis),
            file_name="scores.csv",
            mime="text/csv",
            on_click="ignore",
            key="download-scores",
        )
        return
    with st.container(key="vq-enhance"):
        st.write(
            f"Every member of **{enhancement.ensemble}** ({', '.join(ensemble.member_names)}) enhanced the recording; "
            f"the selector ({enhancement.selector}) scored each output and kept **{enhancement.kept}**"
            + (" (each output weighted by the softmax of its score)" if enhancement.mixed else "")
            + ". "
            f"Input VQScore: {analysis.score:.4f}."
        )
        per_row = 4
        members = list(enhancement.members)
        for start in range(0, len(members), per_row):
            columns = st.columns(per_row)
            for column, member in zip(columns, members[start : start + per_row], strict=False):
                with column:
                    st.html(member_block(member))
                    st.audio(cached_wav(digest, f"member:{member.name}", enhancement.outputs[member.name]), format="audio/wav")
        st.image(
            P.png(P.before_after_figure(clip, enhancement)),
            caption="Spectrograms before and after (the kept output), on one colour scale.",
        )
        stem = os.path.splitext(clip.name)[0]
        one, two = st.columns(2)
        with one:
            st.download_button(
                "Kept output (WAV, 16 kHz, float)",
                cached_wav(digest, f"kept:{enhancement.ensemble}", enhancement.audio, "FLOAT"),
                file_name=f"{stem}-{'mix' if enhancement.mixed else enhancement.chosen}.wav",
                mime="audio/wav",
                on_click="ignore",
                key="download-chosen",
            )
        with two:
            st.download_button(
                "Scores (CSV)",
                A.scores_csv(clip, analysis, enhancement),
                file_name=f"{stem}-scores.csv",
                mime="text/csv",
                on_click="ignore",
                key="download-scores",
            )


if __name__ == "__main__":
    main()
