"""On-the-fly (noisy, clean) training pairs for supervised enhancers: clean crops of the training speakers mixed with
real noise or babble at a random SNR, optionally reverberated first.

Which conditions a model trains on is data: `conditions` names them, "noise:<folder>" for a folder of the noise root
(`../shared/data/noise/<folder>`), "noise:*" for every folder, "babble" for 3-5 other training speakers talking at
once; `snr_range` (dB) bounds the SNR, drawn uniformly. With probability `rir_prob` the clean crop is first convolved
with a room impulse response, and the reverberant clean is the target (the model learns to denoise, not to
dereverberate). Noise is prepared as the benchmark sets prepare it (`mixing.highpass_noise`, looped when short, a
random segment, mean removed; `mixing.mix_at_snr`), so the training conditions match the held-out ones.

Pair k of a run is drawn from a generator seeded by (seed, k) alone: the pairs are the same for any number of
workers, a run's data is a function of its seed, and a resumed run continues the sequence (`start`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vqscore.audio import AudioError, audio_extensions, load_audio

from .mixing import babble_noise, fit_length, highpass_noise, mix_at_snr, power, read_rir, reverb, scale_to_snr

log = logging.getLogger(__name__)

BABBLE = "babble"
NOISE = "noise:"
PEAK_LIMIT = 0.99
# Redraws of a noise segment that happens to be digital silence before the pair is left clean.
SILENT_NOISE_RETRIES = 10


def audio_files(folder: Path) -> list[Path]:
    exts = audio_extensions()
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts and p.is_file())


def expand_conditions(conditions: list[str], noise_root: str | Path) -> list[str]:
    """["noise:*", "babble"] -> ["noise:<each folder of noise_root>", "babble"], each condition once, in order;
    ValueError for an unknown condition or a folder that does not exist."""
    root = Path(noise_root)
    out: list[str] = []
    for condition in conditions:
        if condition == BABBLE:
            names = [BABBLE]
        elif condition == f"{NOISE}*":
            folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            if not folders:
                raise ValueError(f"condition {condition!r}: no noise folders under {root}")
            names = [NOISE + f for f in folders]
        elif condition.startswith(NOISE):
            if not (root / condition.removeprefix(NOISE)).is_dir():
                raise ValueError(f"condition {condition!r}: no folder {root / condition.removeprefix(NOISE)}")
            names = [condition]
        else:
            raise ValueError(f"unknown condition {condition!r}: expected 'noise:<folder>', 'noise:*' or '{BABBLE}'")
        out += [n for n in names if n not in out]
    if not out:
        raise ValueError("no training conditions given")
    return out


def load_noise(noise_root: str | Path, conditions: list[str]) -> dict[str, list[np.ndarray]]:
    """{folder: its recordings at 16 kHz, high-passed, digital silence left out} for the noise conditions."""
    bank: dict[str, list[np.ndarray]] = {}
    for condition in conditions:
        if not condition.startswith(NOISE):
            continue
        folder = Path(noise_root) / condition.removeprefix(NOISE)
        recordings = []
        for path in audio_files(folder):
            try:
                x = highpass_noise(load_audio(path).samples)
            except AudioError as exc:
                log.warning("skipping noise %s", exc)
                continue
            if float(np.std(x)) > 0:
                recordings.append(x)
        if not recordings:
            raise ValueError(f"no usable noise recordings in {folder}")
        bank[condition.removeprefix(NOISE)] = recordings
    return bank


def load_rirs(rir_root: str | Path) -> list[np.ndarray]:
    """Every RIR under `rir_root` (first channel, 16 kHz, peak-normalised)."""
    rirs = [read_rir(p) for p in audio_files(Path(rir_root))]
    if not rirs:
        raise ValueError(f"no room impulse responses under {rir_root}")
    return rirs


@dataclass(frozen=True)
class MixtureSpec:
    """How pairs are drawn. conditions: expanded ("noise:<folder>", "babble"), drawn uniformly; snr_range: dB,
    uniform; rir_prob: chance of reverberating the clean first; talkers: (min, max) babble talkers; crop: samples
    at 16 kHz; gain_range: level of the pair, U(low, high), capped at a joint peak of 0.99."""

    conditions: tuple[str, ...]
    snr_range: tuple[float, float]
    crop: int
    rir_prob: float = 0.0
    talkers: tuple[int, int] = (3, 5)
    gain_range: tuple[float, float] = (0.05, 2.0)

    def __post_init__(self) -> None:
        low, high = self.snr_range
        if low > high:
            raise ValueError(f"snr_range {self.snr_range}: low above high")
        if not 0 <= self.rir_prob <= 1:
            raise ValueError(f"rir_prob must be in [0, 1], got {self.rir_prob}")
        if not 1 <= self.talkers[0] <= self.talkers[1]:
            raise ValueError(f"talkers must be (min, max) with 1 <= min <= max, got {self.talkers}")


class Mixtures(Dataset):
    """Item i: (noisy, clean), each (crop,) float32 at 16 kHz, pair `start + i` of the run: drawn from a generator
    seeded by (seed, start + i).

    waves / speakers: the clean training utterances and who spoke each (babble takes other speakers only);
    noise: {folder: recordings} for the noise conditions (`load_noise`); rirs: for `spec.rir_prob` (`load_rirs`).
    As long as the rest of the run (`length - start` items), like `data.RandomCrops`: every step sees fresh pairs
    without epochs; a run resumed after n pairs passes start=n and sees the pairs it would have seen.
    """

    def __init__(
        self,
        waves: list[np.ndarray],
        speakers: list[str],
        noise: dict[str, list[np.ndarray]],
        rirs: list[np.ndarray],
        spec: MixtureSpec,
        length: int,
        seed: int,
        start: int = 0,
    ):
        if len(waves) != len(speakers) or not waves:
            raise ValueError("one speaker per clean utterance, and at least one utterance, are needed")
        missing = [c for c in spec.conditions if c.startswith(NOISE) and c.removeprefix(NOISE) not in noise]
        if missing:
            raise ValueError(f"no noise recordings for {missing}")
        if spec.rir_prob > 0 and not rirs:
            raise ValueError("rir_prob > 0 needs room impulse responses")
        self.by_speaker: dict[str, list[int]] = {}
        for i, speaker in enumerate(speakers):
            self.by_speaker.setdefault(speaker, []).append(i)
        if BABBLE in spec.conditions and len(self.by_speaker) < 2:
            raise ValueError("babble needs clean speech of at least two speakers")
        self.waves, self.speakers, self.noise, self.rirs = waves, speakers, noise, rirs
        self.spec, self.length, self.seed, self.start = spec, length, seed, start
        sizes = np.array([w.shape[0] for w in waves], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.speaker_names = sorted(self.by_speaker)

    def __len__(self) -> int:
        return max(0, self.length - self.start)

    def clean_crop(self, index: int, rng: np.random.Generator) -> np.ndarray:
        """`spec.crop` samples of utterance `index` (tiled if shorter), mean removed (some recordings carry a DC
        offset: inaudible power that would distort the SNR)."""
        piece = fit_length(self.waves[index].astype(np.float64), self.spec.crop, rng)
        return piece - piece.mean()

    def babble(self, speaker: str, rng: np.random.Generator) -> np.ndarray:
        """Babble of `spec.talkers` other speakers (as many as there are, if fewer), one random utterance each."""
        others = [s for s in self.speaker_names if s != speaker]
        count = min(int(rng.integers(self.spec.talkers[0], self.spec.talkers[1] + 1)), len(others))
        chosen = rng.choice(len(others), size=count, replace=False)
        talkers = [self.waves[int(rng.choice(self.by_speaker[others[k]]))] for k in sorted(chosen.tolist())]
        return babble_noise(talkers, self.spec.crop, rng)

    def mix(self, clean: np.ndarray, condition: str, speaker: str, snr: float, rng: np.random.Generator) -> np.ndarray:
        if condition == BABBLE:
            return clean + scale_to_snr(clean, self.babble(speaker, rng), snr)
        recordings = self.noise[condition.removeprefix(NOISE)]
        for _ in range(SILENT_NOISE_RETRIES):
            try:
                return mix_at_snr(clean, recordings[int(rng.integers(len(recordings)))], snr, rng).astype(np.float64)
            except ValueError:  # a segment of digital silence: draw another
                continue
        return clean.copy()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.spec
        rng = np.random.default_rng([self.seed, self.start + index])
        source = int(rng.choice(len(self.waves), p=self.weights))
        clean = self.clean_crop(source, rng)
        condition = spec.conditions[int(rng.integers(len(spec.conditions)))]
        snr = float(rng.uniform(*spec.snr_range))
        if spec.rir_prob > 0 and rng.random() < spec.rir_prob:
            clean = reverb(clean, self.rirs[int(rng.integers(len(self.rirs)))]).astype(np.float64)
        if power(clean) > 0:
            noisy = self.mix(clean, condition, self.speakers[source], snr, rng)
        else:  # digital silence stays silence: there is no level to set an SNR against
            noisy = clean.copy()
        gain = rng.uniform(*spec.gain_range)
        peak = max(float(np.abs(noisy).max()), float(np.abs(clean).max()))
        if peak > 0:
            gain = min(gain, PEAK_LIMIT / peak)
        return (
            torch.from_numpy((noisy * gain).astype(np.float32)),
            torch.from_numpy((clean * gain).astype(np.float32)),
        )
