"""The front door: `load()` a model, then `score()` or `enhance()` audio.

    import vqscore
    vqscore.score("speech.wav")                          # VQScore (cos_z) from the shipped default model
    model = vqscore.load("default")                       # or a bundle JSON, or an official .pkl checkpoint
    model.score(wav, sr=44100)                            # Score(cos_z, l2_z, cos_x, l2_x, frames, frame_times)
    vqscore.load("se.pkl").enhance("noisy.wav")           # float32 (samples,) at 16 kHz
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .audio import Audio, AudioError, AudioInput, load_audio
from .bundle import BundleError, BundleInfo, find_shipped, load_bundle, read_info
from .enhance import enhance_waveform
from .longform import DEFAULT_POLICY, LongformPolicy
from .models import VQVAE, build_model
from .official import load_official, looks_official
from .scoring import Score, check_length, score_utterances

Inputs = AudioInput | Sequence[AudioInput]


def is_batch(audio) -> bool:
    return isinstance(audio, (list, tuple))


class Model:
    """A loaded VQ-VAE (QE or SE) with the preprocessing it needs: any input -> 16 kHz mono -> its features.

    `policy`: where whole-utterance scoring ends and windows begin (`vqscore.longform`; 30 min / 60 s)."""

    def __init__(self, network: VQVAE, name: str, info: BundleInfo | None = None, policy: LongformPolicy = DEFAULT_POLICY):
        self.network = network.eval()
        self.name = name
        self.info = info
        self.policy = policy

    @property
    def kind(self) -> str:
        return self.network.config.kind

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def __repr__(self) -> str:
        return f"vqscore.Model(name={self.name!r}, kind={self.kind!r}, device={str(self.device)!r})"

    def prepare(self, audio: Inputs, sr: int | None) -> list[Audio]:
        items = list(audio) if is_batch(audio) else [audio]
        return [load_audio(item, sr) for item in items]

    def score(self, audio: Inputs, sr: int | None = None) -> Score | list[Score]:
        """All four scores and the per-frame VQScore. audio: a path, or (samples,) / (channels, samples) at `sr`;
        a list of those gives a list of `Score` in the same order. Files longer than `policy.max_whole_s` are read
        in blocks and scored in windows, so their memory does not grow with their length."""
        scores = self._scores(audio, sr, with_decoder=True)
        return scores if is_batch(audio) else scores[0]

    def vqscore(self, audio: Inputs, sr: int | None = None) -> float | list[float]:
        """Only cos_z (the VQScore): encoder and codebook, no decoder."""
        values = [s.cos_z for s in self._scores(audio, sr, with_decoder=False)]
        return values if is_batch(audio) else values[0]

    def _scores(self, audio: Inputs, sr: int | None, with_decoder: bool) -> list[Score]:
        items = list(audio) if is_batch(audio) else [audio]
        streamed = [i for i, item in enumerate(items) if sr is None and self._long_file(item)]
        scores: list[Score | None] = [None] * len(items)
        if streamed:
            from .corpus import score_paths_in_order  # block reading and windows, in this process (no workers)

            paths = [os.fspath(items[i]) for i in streamed]
            results = score_paths_in_order(
                self.network, paths, with_decoder=with_decoder, num_workers=0, policy=self.policy
            )
            for i, result in zip(streamed, results, strict=True):
                if result.error:
                    raise AudioError(result.error)
                scores[i] = result.score
        rest = [i for i in range(len(items)) if scores[i] is None]
        prepared = [load_audio(items[i], sr) for i in rest]
        found = score_utterances(
            self.network, [a.samples for a in prepared], [a.name for a in prepared], with_decoder, policy=self.policy
        )
        for i, score in zip(rest, found, strict=True):
            scores[i] = score
        return scores  # type: ignore[return-value]

    def _long_file(self, item) -> bool:
        """A path the corpus planner would stream as possibly long (from its header)."""
        if not isinstance(item, (str, os.PathLike)):
            return False
        from .corpus import may_be_long, probe

        return may_be_long(probe(os.fspath(item)), self.policy)

    def enhance(self, audio: Inputs, sr: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Enhanced speech, (samples,) float32 at 16 kHz, from an SE model; a list gives a list."""
        if self.kind != "se":
            raise TypeError(f"{self.name} is a {self.kind.upper()} model; enhance() needs an SE (enhancement) model")
        out = []
        for item in self.prepare(audio, sr):
            check_length(item.samples, self.network.features.min_samples, item.name)
            out.append(enhance_waveform(self.network, item.samples))
        return out if is_batch(audio) else out[0]

    def to(self, device: str | torch.device) -> Model:
        self.network.to(device)
        return self


def load(name_or_path: str | os.PathLike = "default", device: str | torch.device | None = None) -> Model:
    """A model from a shipped bundle name ("default" = newest QE bundle), a bundle JSON / .safetensors path,
    or an official VQScore checkpoint (.pkl/.pt/.pth). Runs on `device` (CPU unless given)."""
    device = torch.device(device or "cpu")
    path = Path(name_or_path)
    if looks_official(path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        config, state = load_official(path)
        network = build_model(config)
        network.load_state_dict(state, strict=True)
        return Model(network.to(device), name=path.name)
    if path.suffix in (".json", ".safetensors") or path.exists():
        network, info = load_bundle(path, device)
        return Model(network, name=info.name, info=info)
    info = find_shipped(str(name_or_path))
    network, info = load_bundle(info.path, device)
    return Model(network, name=info.name, info=info)


@lru_cache(maxsize=4)
def cached_model(name_or_path: str, device: str) -> Model:
    return load(name_or_path, device)


def score(audio: Inputs, sr: int | None = None, model: str | os.PathLike | Model = "default", device: str | None = None) -> float | list[float]:
    """The VQScore (cos_z) of `audio`: a path or a (samples,)/(channels, samples) array at `sr` Hz; a list gives a list.

    `model` is a shipped bundle name, a path, or a loaded `Model`; named models are loaded once and cached.
    """
    chosen = model if isinstance(model, Model) else cached_model(os.fspath(model), str(device or "cpu"))
    return chosen.vqscore(audio, sr)


def enhance(audio: Inputs, sr: int | None = None, model: str | os.PathLike | Model = "default-se", device: str | None = None):
    """Enhanced speech from an SE model: (samples,) float32 at 16 kHz; a list gives a list."""
    chosen = model if isinstance(model, Model) else cached_model(os.fspath(model), str(device or "cpu"))
    return chosen.enhance(audio, sr)


def describe_bundle(path: str | os.PathLike) -> BundleInfo:
    return read_info(path)


__all__ = ["Model", "load", "score", "enhance", "Score", "BundleError"]
