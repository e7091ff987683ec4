"""The web demo in a real browser: `vqscore demo` started as a user would, driven by headless Chromium (Debian's
`chromium`, installed here with apt-get where missing) through Playwright.

Uploads a real recording, waits for the score and every ensemble member's enhanced audio, checks the numbers on
the page and in the downloads against the library's API (within 1e-5), sends a corrupt file, one too short and
one over the upload limit and sees each message, records from Chromium's fake microphone (fed a real recording),
then uploads a second real recording (the server still serves) and saves the screenshot to out/demo.png. Logs the
time from opening the page to the first score of a 10 s file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from demo_support import MORE_10S, REAL_10S, REAL_NOISY, demo_ensemble, find_or_install_chromium

import vqscore
from vqscore.demo.examples import example_wav

pytest.importorskip("streamlit", reason="the demo needs the 'demo' extra: pip install -e '.[demo]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright: pip install -e '.[demo]'")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
UPLOAD_LIMIT_MB = 2
FIRST_SCORE_TARGET_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    path, why = find_or_install_chromium()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def real_files(tmp_path_factory) -> tuple[list[Path], Path, str]:
    """(three 10 s files, the noisy file, where they come from): real recordings from ../shared/data, or, where
    that is absent, the synthesised example clips written as FLAC files."""
    real = [REAL_10S, *MORE_10S]
    if all(p.is_file() for p in real) and REAL_NOISY.is_file():
        return real, REAL_NOISY, "real recordings from ../shared/data"
    folder = tmp_path_factory.mktemp("clips")
    made = []
    for key in ("voice-clean", "voice-noisy-5db", "voice-telephone", "voice-noise-burst"):
        x, sr = sf.read(io.BytesIO(example_wav(key)), dtype="float32")
        path = folder / f"{key}.flac"
        sf.write(path, x, sr)
        made.append(path)
    return made[:3], made[3], "synthesised clips (../shared/data is absent)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m vqscore demo` on a free localhost port; yields (url, process, ensemble)."""
    folder = tmp_path_factory.mktemp("demo")
    ensemble = demo_ensemble(folder)
    port = free_port()
    log = open(folder / "server.log", "w")
    command = [
        sys.executable, "-m", "vqscore", "demo", "--port", str(port), "--ensemble", ensemble,
        "--max-upload-mb", str(UPLOAD_LIMIT_MB),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"vqscore demo exited with {process.returncode}:\n{(folder / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vqscore demo did not answer within 180 s:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(0.25)
        yield url, process, ensemble
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def wait_score(page, timeout_s: float = 60) -> float:
    block = page.locator("#vq-score")
    block.wait_for(timeout=timeout_s * 1000)
    return float(block.get_attribute("data-score"))


def upload(page, path: Path | str) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))


def wait_text(page, text: str, timeout_s: float = 60) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout_s * 1000)


def members_on_page(page, count: int, timeout_s: float = 180) -> dict[str, tuple[float, bool]]:
    """Wait for `count` ensemble members with their players ready; name -> (score, chosen)."""
    page.wait_for_function(
        """count => {
            if (document.querySelector('.st-key-vq-enhance-error')) return true;  // fail fast, with the message
            const members = document.querySelectorAll('.st-key-vq-enhance .vq-member');
            const players = [...document.querySelectorAll('.st-key-vq-enhance audio')];
            return members.length === count && players.length === count
                && players.every(a => a.readyState >= 1 && a.duration > 0);
        }""",
        arg=count,
        timeout=timeout_s * 1000,
    )
    problem = page.locator(".st-key-vq-enhance-error")
    assert problem.count() == 0, f"enhancement failed on the page: {problem.inner_text()}"
    found = {}
    for member in page.locator(".st-key-vq-enhance .vq-member").all():
        found[member.get_attribute("data-member")] = (
            float(member.get_attribute("data-score")),
            member.get_attribute("data-chosen") == "1",
        )
    return found


def download(page, label: str) -> bytes:
    with page.expect_download(timeout=30000) as info:
        page.get_by_role("button", name=label, exact=True).click()
    return Path(info.value.path()).read_bytes()


def screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the viewport is grown to the content first."""
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalHeight > 0)", timeout=30000)
    for _ in range(3):  # the content may still grow while the grown viewport reflows it
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": int(height) + 16})
        page.wait_for_timeout(600)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def test_demo_in_browser(chromium, server, real_files, tmp_path, capsys):
    from vqscore.api import load_audio
    from vqscore.ensemble import Ensemble

    url, process, ensemble_name = server
    ten_s_files, noisy, source = real_files
    model = vqscore.load("default")
    ensemble = Ensemble.load(ensemble_name)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(4000))
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(160, dtype=np.float32) + 0.1, 16000)  # 10 ms
    big = tmp_path / "big.wav"
    sf.write(big, np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 70).astype(np.float32), 16000, subtype="FLOAT")
    assert big.stat().st_size > UPLOAD_LIMIT_MB * 1024 * 1024

    # what the browser's fake microphone "hears": a real recording (Chromium reads a 16-bit WAV)
    microphone = tmp_path / "microphone.wav"
    sf.write(microphone, load_audio(noisy).samples, 16000, subtype="PCM_16")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}",
            ],
        )
        try:
            context = browser.new_context(
                viewport={"width": 1400, "height": 1000}, accept_downloads=True, permissions=["microphone"]
            )
            page = context.new_page()

            # page load to first score: a 10 s file, nothing cached in the browser or the server; three times, in
            # fresh browser contexts, with three different files (the server caches results by the upload's digest)
            load_before = os.getloadavg()[0]
            timings = []
            for k, path in enumerate(ten_s_files):
                if k:
                    page.context.close()
                    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
                    page = context.new_page()
                start = time.perf_counter()
                page.goto(url)
                upload(page, path)
                shown = wait_score(page)
                first_score_s = time.perf_counter() - start
                expected = model.score(path).cos_z
                assert abs(shown - expected) <= 1e-5, (path, shown, expected)
                members_on_page(page, len(ensemble.member_names))  # the next load starts on an idle server
                timings.append((path, sf.info(str(path)).duration, first_score_s, time.perf_counter() - start))
            page.context.close()
            context = browser.new_context(
                viewport={"width": 1400, "height": 1000}, accept_downloads=True, permissions=["microphone"]
            )
            page = context.new_page()
            ten_s = ten_s_files[0]
            page.goto(url)
            upload(page, ten_s)
            expected = model.score(ten_s).cos_z
            assert abs(wait_score(page) - expected) <= 1e-5

            # every member's output playable, its score and the selected one as the ensemble API gives them
            selection = ensemble.enhance(load_audio(ten_s).samples, 16000)
            members = members_on_page(page, len(selection.members))
            assert set(members) == set(ensemble.member_names)
            for result in selection.members:
                score, chosen = members[result.member]
                assert abs(score - result.score) <= 1e-5, (result.member, score, result.score)
                assert chosen == result.chosen
            assert page.locator(".vq-member.vq-chosen").get_attribute("data-member") == selection.chosen

            chosen_wav, rate = sf.read(io.BytesIO(download(page, "Kept output (WAV, 16 kHz, float)")), dtype="float32")
            assert rate == 16000 and chosen_wav.shape == selection.audio.shape
            assert np.max(np.abs(chosen_wav - selection.audio)) <= 1e-5
            rows = list(csv.DictReader(io.StringIO(download(page, "Scores (CSV)").decode())))
            assert rows[0]["audio"] == "input" and abs(float(rows[0]["vqscore"]) - expected) <= 1e-5
            assert {r["audio"]: float(r["vqscore"]) for r in rows[1:]} == pytest.approx(
                {m.member: m.score for m in selection.members}, abs=1e-5
            )
            frames = list(csv.DictReader(io.StringIO(download(page, "Per-frame scores (CSV)").decode())))
            assert len(frames) == model.score(ten_s).frames.shape[0]

            # messages for a corrupt file, one too short and one over the limit; the server keeps serving
            upload(page, corrupt)
            wait_text(page, "could not be read as audio")
            # the previous file's score is a stale element until that rerun ends (later on a loaded machine): it
            # must go, however long the rerun takes
            page.locator("#vq-score").wait_for(state="detached", timeout=30_000)
            upload(page, short)
            wait_text(page, "is too short to score")
            upload(page, big)
            wait_text(page, f"{UPLOAD_LIMIT_MB}.0MB or smaller")
            assert process.poll() is None

            # a recording from the (fake) microphone is scored like an upload
            page.goto(url)
            page.get_by_text("Record from the microphone").click()
            page.get_by_role("button", name="Record", exact=True).click()
            page.get_by_role("button", name="Stop recording").wait_for(timeout=20000)
            page.wait_for_timeout(2500)
            page.get_by_role("button", name="Stop recording").click()
            recorded = wait_score(page)
            assert 0.3 < recorded < 1.0
            wait_text(page, "recording.wav: ")

            page.goto(url)  # a fresh session: the refused upload's chip is gone from the screenshot
            upload(page, noisy)
            assert abs(wait_score(page) - model.score(noisy).cos_z) <= 1e-5
            members_on_page(page, len(ensemble.member_names))
            page.get_by_text("Where quality drops").first.wait_for()
            page.wait_for_timeout(500)
            screenshot(page, OUT / "demo.png")
            assert process.poll() is None
        finally:
            browser.close()

    # The 3 s target is checked, on the median of the three loads, where the machine is not busy with other work (a
    # load average above its core count, as while a training run shares it, slows the browser's page load more than
    # anything the demo does); a loose bound catches regressions anywhere.
    cores = os.cpu_count() or 1
    checked = load_before <= cores
    median = float(np.median([t[2] for t in timings]))
    assert median < 20.0, f"page load to first score took {median:.1f} s"
    if checked:
        assert median < FIRST_SCORE_TARGET_S, f"page load to first score took {median:.2f} s (median of 3)"
    timing = {
        "page_load_to_first_score_s": round(median, 3),
        "what": "median of 3 page loads in fresh browser contexts, each uploading another 10 s file",
        "loads": [
            {"file": str(p), "duration_s": round(d, 2), "first_score_s": round(f, 3), "enhanced_audio_s": round(e, 3)}
            for p, d, f, e in timings
        ],
        "target_s": FIRST_SCORE_TARGET_S,
        "source": source,
        "load_average_before": round(load_before, 2),
        "cores": cores,
        "target_checked": checked,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "demo-timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    with capsys.disabled():
        each = ", ".join(f"{f:.2f} s ({d:.1f} s file)" for _, d, f, _ in timings)
        print(
            f"\n[demo] page load to first score, 10 s files: median {median:.2f} s of {each} (target "
            f"{FIRST_SCORE_TARGET_S:g} s); to every member's enhanced audio: {np.median([t[3] for t in timings]):.2f} s; "
            f"load average {load_before:.1f} on {cores} cores ({'target checked' if checked else 'target not checked: machine busy'}); "
            "screenshot out/demo.png"
        )
