"""What the demo's tests share: the real recordings they use, the ensemble they enhance with, and Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# the "10 s files" of the timing: LibriSpeech recordings of 9.7-10.3 s, the first of a held-out test speaker
# (splits/speakers.json)
REAL_10S = DATA / "clean" / "librispeech-train-clean-100" / "26-495-0000.flac"
MORE_10S = (
    DATA / "clean" / "librispeech-train-clean-100" / "1088-129236-0000.flac",
    DATA / "clean" / "librispeech-train-clean-100" / "8063-274112-0000.flac",
)
# a real VoiceBank-DEMAND noisy recording (6.2 s, quality drops in its first second): the screenshot's file
REAL_NOISY = DATA / "real-noisy" / "voicebank" / "noisy" / "p232_005.flac"

# Used where no ensemble named "default" is shipped yet: the unprocessed input, the shipped VQ-VAE enhancer and
# spectral gating (no packages beyond the core install).
FALLBACK_ENSEMBLE = {
    "name": "demo-test",
    "description": "three cheap members for the demo's tests",
    "members": [
        {"name": "noisy", "kind": "passthrough"},
        {"name": "vq-se", "kind": "bundle", "options": {"model": "default-se"}},
        {"name": "spectral-gating", "kind": "spectral-gating"},
    ],
}


def demo_ensemble(folder: Path) -> str:
    """"default" where the library ships an ensemble of that name, else a JSON file of FALLBACK_ENSEMBLE."""
    from vqscore.ensemble import shipped_ensembles

    if "default" in shipped_ensembles():
        return "default"
    path = folder / "demo-test-ensemble.json"
    path.write_text(json.dumps(FALLBACK_ENSEMBLE))
    return str(path)



CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_or_install_chromium() -> tuple[str | None, str]:
    """(path, "") for a Chromium on PATH, installing Debian's `chromium` with apt-get where it is missing and we
    are root; (None, why) where that is impossible."""
    found = find_chromium()
    if found:
        return found, ""
    if not shutil.which("apt-get"):
        return None, "Chromium is not installed and there is no apt-get to install it (install chromium, then rerun)"
    if os.geteuid() != 0:
        return None, "Chromium is not installed and installing it needs root (sudo apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    try:
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                return None, f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"apt-get install chromium failed: {exc}"
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but no chromium binary is on PATH")
