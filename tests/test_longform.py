"""Long recordings (vqscore.longform): whole up to the limit, windows beyond it, streamed with bounded memory.

What "agree" means between windowed and whole-file scoring (the definition these tests check):
1. exactly: each window's scores and per-frame series are those of its samples scored alone (1e-5), the file's
   scores are the frame-weighted means of its windows' scores, and reading the file in blocks (soundfile blocks,
   soxr.ResampleStream) gives the same windows as the in-memory path;
2. approximately, for audio whose statistics are steady over a window: on interior frames (at least
   EDGE_FRAMES from a window edge) the windowed per-frame VQScore is within FRAME_MEAN_TOL of the whole-file
   per-frame VQScore on average over each window and within FRAME_P99_TOL for 99 % of them; the file's cos_z
   and l2_z are within FILE_TOL of the whole-file values. (The differences come only from each window's own
   InstanceNorm statistics; frames near window edges also see the edge's reflect padding and differ more.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from helpers import SR, speech_like

from vqscore.audio import load_audio
from vqscore.corpus import score_paths_in_order
from vqscore.longform import EDGE_FRAMES, MAX_WHOLE_S, WINDOW_S, LongformPolicy, Windower, read_blocks, window_bounds
from vqscore.scoring import score_utterances

HOP = 256
FRAME_MEAN_TOL = 0.02
FRAME_P99_TOL = 0.08
FILE_TOL = 2e-3
WHOLE = LongformPolicy(max_whole_s=1e12)
SMALL = LongformPolicy(max_whole_s=60.0, window_s=20.0)  # the default policy scaled down 30x


def stationary(reference_dir, seconds: float, seed: int = 0) -> np.ndarray:
    """Real speech (the reference clean file) repeated, plus steady white noise: statistics steady over windows."""
    speech = load_audio(reference_dir / "clean_p232_005.wav").samples
    n = int(round(seconds * SR))
    x = np.tile(speech, n // speech.shape[0] + 1)[:n]
    noise = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    return (x + 0.02 * noise).astype(np.float32)


def check_agreement(whole, windowed, bounds):
    """The approximate agreement of the module docstring; returns the interior and edge differences."""
    assert windowed.cos_z == pytest.approx(whole.cos_z, abs=FILE_TOL)
    assert windowed.l2_z == pytest.approx(whole.l2_z, abs=FILE_TOL)
    offset, interior_all, edges_all = 0, [], []
    for (start, stop), window in zip(bounds, windowed.windows, strict=True):
        n = window.num_frames
        assert n == 1 + (stop - start) // HOP
        mine = windowed.frames[offset : offset + n]
        theirs = whole.frames[start // HOP : start // HOP + n]
        offset += n
        diff = np.abs(mine.astype(np.float64) - theirs)
        interior = diff[EDGE_FRAMES : n - EDGE_FRAMES]
        assert interior.mean() <= FRAME_MEAN_TOL, (start, interior.mean())
        assert np.percentile(interior, 99) <= FRAME_P99_TOL, (start, np.percentile(interior, 99))
        interior_all.append(interior)
        edges_all.append(np.concatenate([diff[:EDGE_FRAMES], diff[n - EDGE_FRAMES :]]))
    assert offset == len(windowed.frames)
    return np.concatenate(interior_all), np.concatenate(edges_all)


# ----------------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("n", [1, 999, 1000, 1499, 1500, 1501, 2000, 2499, 2500, 2501, 10_000, 10_499, 10_500])
def test_window_bounds(n):
    w = 1000
    bounds = window_bounds(n, w)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))  # contiguous, no overlap
    assert all(b - a == w for a, b in bounds[:-1])
    last = bounds[-1][1] - bounds[-1][0]
    if n >= 1500:
        assert w // 2 <= last < w + w // 2


@pytest.mark.parametrize("block", [1, 7, 333, 1000, 5000])
def test_streaming_windower_equals_bounds(block):
    n, w = 10_321, 1000
    x = np.arange(n, dtype=np.float32)
    windower = Windower(w, max_whole=2_500)
    got = []
    for i in range(0, n, block):
        got += windower.push(x[i : i + block])
    is_long, rest = windower.finish()
    assert is_long
    got += rest
    assert [(s, s + len(v)) for s, v in got] == window_bounds(n, w)
    assert all(np.array_equal(v, x[s : s + len(v)]) for s, v in got)
    short = Windower(w, max_whole=n)
    for i in range(0, n, block):
        assert short.push(x[i : i + block]) == []
    is_long, rest = short.finish()
    assert not is_long and len(rest) == 1 and np.array_equal(rest[0][1], x)


def test_policy_defaults():
    assert (MAX_WHOLE_S, WINDOW_S) == (1800.0, 60.0)
    policy = LongformPolicy()
    assert policy.window_samples(HOP) == 960_000 and 960_000 % HOP == 0
    assert not policy.is_long(1800 * SR) and policy.is_long(1800 * SR + 1)


# ------------------------------------------------------------------------------------------------- exact parts


def test_windows_are_their_slices_scored_alone(ref_qe, reference_dir):
    x = stationary(reference_dir, 7.3)
    policy = LongformPolicy(max_whole_s=6.0, window_s=2.0)
    score = score_utterances(ref_qe.network, [x], policy=policy)[0]
    bounds = window_bounds(x.shape[0], policy.window_samples(HOP))
    assert len(score.windows) == len(bounds) == 4
    offset = 0
    for (start, stop), window in zip(bounds, score.windows, strict=True):
        alone = ref_qe.score(x[start:stop], sr=SR)
        assert alone.windows is None
        for key in ("cos_z", "l2_z", "cos_x", "l2_x"):
            assert getattr(window, key) == pytest.approx(getattr(alone, key), abs=1e-5), key
        assert (window.start_s, window.end_s) == (start / SR, stop / SR)
        np.testing.assert_allclose(score.frames[offset : offset + window.num_frames], alone.frames, atol=1e-5, rtol=0)
        np.testing.assert_allclose(
            score.frame_times[offset : offset + window.num_frames], start / SR + alone.frame_times, atol=1e-9
        )
        offset += window.num_frames
    weights = np.array([w.num_frames for w in score.windows], dtype=np.float64)
    for key in ("cos_z", "l2_z", "cos_x", "l2_x"):
        expected = float(np.dot(weights, [getattr(w, key) for w in score.windows]) / weights.sum())
        assert getattr(score, key) == pytest.approx(expected, abs=1e-9), key
    assert score.cos_z == pytest.approx(float(np.mean(score.frames.astype(np.float64))), abs=1e-6)
    # at or below the limit nothing is windowed
    assert score_utterances(ref_qe.network, [x[: 6 * SR]], policy=policy)[0].windows is None


def test_streamed_file_equals_in_memory(ref_qe, reference_dir, tmp_path):
    """Block reading + blockwise soxr resampling of a 44.1 kHz stereo file gives the in-memory windows exactly."""
    x = stationary(reference_dir, 9.5)
    stereo = soxr.resample(np.stack([x, 0.9 * x], axis=1), SR, 44_100)
    path = tmp_path / "long44k.wav"
    sf.write(path, stereo, 44_100, subtype="FLOAT")
    samples = load_audio(path).samples
    blocks = list(read_blocks(path, block=12_345))
    assert len(blocks) > 5
    np.testing.assert_array_equal(np.concatenate(blocks), samples)
    policy = LongformPolicy(max_whole_s=8.0, window_s=3.0)
    in_memory = score_utterances(ref_qe.network, [samples], with_decoder=False, policy=policy)[0]
    for workers in (0, 1):
        result = score_paths_in_order(ref_qe.network, [str(path)], policy=policy, num_workers=workers)[0]
        assert result.error == "" and (result.sample_rate, result.channels) == (44_100, 2)
        assert result.duration_s == pytest.approx(samples.shape[0] / SR)
        got = result.score
        assert len(got.windows) == len(in_memory.windows) == 3
        assert got.cos_z == pytest.approx(in_memory.cos_z, abs=1e-6) and got.l2_z == pytest.approx(in_memory.l2_z, abs=1e-6)
        np.testing.assert_allclose(got.frames, in_memory.frames, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(got.frame_times, in_memory.frame_times)
    # a file routed to the streaming path that is not above the limit is scored whole
    result = score_paths_in_order(
        ref_qe.network, [str(path)], policy=LongformPolicy(max_whole_s=9.6, window_s=3.0), num_workers=0
    )[0]
    assert result.score.windows is None
    assert result.score.cos_z == pytest.approx(
        score_utterances(ref_qe.network, [samples], with_decoder=False)[0].cos_z, abs=1e-6
    )


def test_silent_window_is_left_out(tiny_qe):
    policy = LongformPolicy(max_whole_s=4.0, window_s=2.048)  # 32768 samples, 128 hops
    w = policy.window_samples(HOP)
    assert w == 32_768
    x = speech_like(3 * w / SR, seed=1)
    x[w : 2 * w] = 0.0
    score = score_utterances(tiny_qe.network, [x], policy=policy)[0]
    assert [np.isnan(w.cos_z) for w in score.windows] == [False, True, False]
    a, _, c = score.windows
    assert score.cos_z == pytest.approx(
        (a.num_frames * a.cos_z + c.num_frames * c.cos_z) / (a.num_frames + c.num_frames), abs=1e-9
    )
    assert np.isnan(score.frames[a.num_frames : a.num_frames + score.windows[1].num_frames]).all()


# ------------------------------------------------------------------------------------------------- agreement


def test_windowed_agrees_with_whole_on_interior_frames(ref_qe, reference_dir):
    """A file just above the (scaled-down) limit, scored whole and in windows."""
    x = stationary(reference_dir, SMALL.max_whole_s + 10.3)
    whole = score_utterances(ref_qe.network, [x], with_decoder=False, policy=WHOLE)[0]
    windowed = score_utterances(ref_qe.network, [x], with_decoder=False, policy=SMALL)[0]
    assert whole.windows is None and len(windowed.windows) == 4
    bounds = window_bounds(x.shape[0], SMALL.window_samples(HOP))
    interior, edges = check_agreement(whole, windowed, bounds)
    # the edges are where windows and whole file really differ; the interior exclusion is doing work
    assert edges.max() > interior.max()


@pytest.mark.slow
def test_default_policy_just_above_the_limit(ref_qe, reference_dir, tmp_path):
    """30 min 15 s: whole-file scoring vs the default 60 s windows read from a file (the last window takes 75 s)."""
    x = stationary(reference_dir, MAX_WHOLE_S + 15.0, seed=3)
    path = tmp_path / "just_above.flac"
    sf.write(path, x, SR, subtype="PCM_24")
    x = load_audio(path).samples
    whole = score_utterances(ref_qe.network, [x], with_decoder=False, policy=WHOLE)[0]
    result = score_paths_in_order(ref_qe.network, [str(path)], num_workers=1)[0]
    windowed = result.score
    bounds = window_bounds(x.shape[0], LongformPolicy().window_samples(HOP))
    assert len(windowed.windows) == len(bounds) == 30 and bounds[-1][1] - bounds[-1][0] == 75 * SR
    check_agreement(whole, windowed, bounds)


# A small launcher (no torch) runs the CLI and reads RUSAGE_CHILDREN: the peak RSS of the largest process of the CLI's
# tree (main process or a decoding worker). The CLI must not be forked from pytest itself: ru_maxrss survives exec,
# so it would start from pytest's high-water mark.
TWO_HOURS_SCRIPT = textwrap.dedent(
    """
    import json, resource, subprocess, sys
    status = subprocess.call([sys.executable, "-m", "vqscore", "score", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[3]])
    print(json.dumps({"status": status, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
    """
)


def write_long_file(path: Path, seconds: float, speech: np.ndarray, seed: int = 0) -> None:
    """Repeated speech + noise written block by block (the test process never holds the whole file)."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SR)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        done = 0
        while done < total:
            n = min(total - done, 600 * SR)
            block = np.tile(speech, n // speech.shape[0] + 1)[:n]
            gain = 0.5 + 0.5 * rng.random()  # a level change every 10 minutes
            f.write((gain * block + 0.01 * rng.standard_normal(n)).astype(np.float32))
            done += n


@pytest.mark.slow
def test_two_hour_file_scores_with_bounded_memory(reference_dir, tmp_path):
    path = tmp_path / "two_hours.wav"
    write_long_file(path, 7200.0, load_audio(reference_dir / "clean_p232_005.wav").samples)
    out = tmp_path / "two_hours.csv"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = subprocess.run(
        [sys.executable, "-c", TWO_HOURS_SCRIPT, str(path), str(out), str(reference_dir / "qe_seed0.pkl")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr
    import json

    usage = json.loads(run.stdout.strip().splitlines()[-1])
    assert usage["status"] == 0
    assert usage["peak_mb"] < 1536, usage
    import csv

    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 1 and rows[0]["error"] == ""
    assert float(rows[0]["duration_s"]) == pytest.approx(7200.0)
    assert 0.0 < float(rows[0]["vqscore"]) <= 1.0


def test_file_whose_header_under_promises_is_still_windowed(ref_qe, reference_dir, tmp_path, monkeypatch):
    """Lengths come from headers for planning only; the windowing decision is taken on the decoded samples."""
    import vqscore.corpus

    x = stationary(reference_dir, 9.5)
    path = tmp_path / "liar.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    policy = LongformPolicy(max_whole_s=8.0, window_s=3.0)
    want = score_utterances(ref_qe.network, [x], with_decoder=False, policy=policy)[0]
    for claimed in (1_000, None):  # a short header, and no usable length at all
        monkeypatch.setattr(vqscore.corpus, "probe", lambda p, claimed=claimed: claimed)
        got = score_paths_in_order(ref_qe.network, [str(path)], policy=policy, num_workers=0)[0].score
        assert len(got.windows) == len(want.windows) == 3
        assert got.cos_z == pytest.approx(want.cos_z, abs=1e-6)
        np.testing.assert_allclose(got.frames, want.frames, atol=1e-6, rtol=0)
