"""Split the training speakers by voice pitch, for the pitch-band U-Net specialists (pitch-low.yaml, pitch-high.yaml).

The SSEMS paper's specialists split by gender x SNR; gender labels exist here only for AN4 and speechocean762, not
for LibriSpeech. A speaker's median fundamental frequency, measured on their own clean speech, needs no label and
separates low voices (mostly men) from high ones (mostly women and children), which is what a gender split does to
a spectrogram denoiser: where the harmonics lie. Speakers are split at 165 Hz, between the usual adult male and
female ranges: on AN4, whose folder names carry the gender, the split agrees with it for 72 of 74 speakers (median
F0 118 Hz for men, 210 Hz for women). Children (speechocean762) fall in the high half.

    python -m recipes.unet.pitch_split            # -> runs/pitch/{low,high}.csv manifests, runs/pitch/speakers.csv

F0 per frame: `vqscore.pitch.voiced_f0` (the estimate the pitch-routed enhancer routes by); a speaker's F0 is the
median over all their voiced frames. Held-out speakers (splits/speakers.json) are left out, as every recipe does.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from vqscore.audio import load_audio
from vqscore.pitch import SPLIT_HZ, voiced_f0

from ..common.corpus import collect, heldout_speakers

SOURCES = [
    "../shared/data/clean/librispeech-train-clean-100",
    "../shared/data/clean/an4/train",
    "../shared/data/clean/speechocean762",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", nargs="+", default=SOURCES, help="clean folders or manifests (default: the recipe's)")
    parser.add_argument("--split", default="splits/speakers.json", help="speaker split whose val/test speakers are left out")
    parser.add_argument("--threshold", type=float, default=SPLIT_HZ, help="speaker F0 in Hz that splits the halves")
    parser.add_argument("--out", type=Path, default=Path("runs/pitch"))
    args = parser.parse_args(argv)

    held = heldout_speakers(args.split)
    utterances = [u for u in collect(args.sources) if u.speaker not in held]
    f0s: dict[str, list[np.ndarray]] = defaultdict(list)
    files: dict[str, list[str]] = defaultdict(list)
    for u in utterances:
        f0s[u.speaker].append(voiced_f0(load_audio(u.path).samples))
        files[u.speaker].append(u.path)
    speaker_f0 = {s: float(np.median(np.concatenate(v))) for s, v in f0s.items() if sum(x.size for x in v) > 0}
    threshold = args.threshold
    args.out.mkdir(parents=True, exist_ok=True)
    halves = {
        "low": [s for s, f in speaker_f0.items() if f < threshold],
        "high": [s for s, f in speaker_f0.items() if f >= threshold],
    }
    for name, speakers in halves.items():
        with open(args.out / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "speaker"])
            for s in sorted(speakers):
                for path in files[s]:
                    writer.writerow([os.path.relpath(path, args.out), s])  # relative: the manifest moves with runs/
    with open(args.out / "speakers.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["speaker", "f0_hz", "files", "half"])
        for s, value in sorted(speaker_f0.items(), key=lambda kv: kv[1]):
            writer.writerow([s, f"{value:.1f}", len(files[s]), "low" if value < threshold else "high"])
    unvoiced = len(f0s) - len(speaker_f0)
    print(
        f"{len(speaker_f0)} speakers, split at {threshold:.1f} Hz: low {len(halves['low'])} speakers "
        f"({sum(len(files[s]) for s in halves['low'])} files), high {len(halves['high'])} "
        f"({sum(len(files[s]) for s in halves['high'])} files); {unvoiced} without voiced frames left out -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
