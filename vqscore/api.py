"""The front door: `load()` a model, then `score()` or `enhance()` audio.

    import vqscore
    vqscore.score("speech.wav")                          # VQScore (cos_z) from the shipped default model
    model = vqscore.load("default")                       # or a bundle JSON, or an official .pkl checkpoint
    model.score(wav, sr=44100)                            # Score(cos_z, l2_z, cos_x, l2_x, frames, frame_times)
    vqscore.score(batch, sr=16000)                        # (batch, samples) -> (batch,) scores, one per row
    vqscore.enhance("noisy.wav")                          # float32 (samples,) at 16 kHz, shipped "default-se" model
    vqscore.load("se.pkl").enhance([wav1, wav2], sr=16000) # a list of inputs -> a list, enhanced in batches
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .audio import Audio, AudioError, AudioInput, check_input_type, load_audio, load_rows
from .bundle import BundleError, BundleInfo, find_shipped, load_bundle, read_info, sha256_file
from .conditioning import PAPER, Conditioning, get_conditioning
from .enhance import enhance_batch
from .enhance_long import DEFAULT_ENHANCE_POLICY, EnhancePolicy, enhance_long, enhance_stream
from .longform import DEFAULT_POLICY, LongformPolicy, read_blocks
from .models import VQVAE, VQVAE_KINDS, build_model
from .mos_scale import MosScale
from .official import load_official, looks_official
from .pooling import check_pooling
from .scoring import Score, apply_pooling, check_length, score_utterances

if TYPE_CHECKING:
    from .bag import ModelBag  # bags build on this module: imported at run time only where one is loaded

Inputs = AudioInput | Sequence[AudioInput]


def is_batch(audio) -> bool:
    return isinstance(audio, (list, tuple))


@dataclass(frozen=True)
class Layout:
    """How results are shaped like the input: one utterance, a list of them, or the leading axes of an array."""

    kind: str  # "one" | "list" | "rows"
    shape: tuple[int, ...] = ()

    def arrange(self, values: list):
        if self.kind == "one":
            return values[0]
        if self.kind == "list":
            return values
        return nest(values, self.shape)


def nest(values: list, shape: tuple[int, ...]) -> list:
    """A flat row-major list -> nested lists of `shape` (like ndarray.tolist())."""
    if len(shape) == 1:
        return list(values)
    step = len(values) // shape[0]
    return [nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def gather(audio, sr: int | None, channel_axis: int | None) -> tuple[list, Layout]:
    """The utterances of an input, each a path/file still to read or an `Audio`, and how to shape the results."""
    if is_batch(audio):
        for i, item in enumerate(audio):
            check_input_type(item, f"audio[{i}]")
        return list(audio), Layout("list")
    check_input_type(audio)
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        rows, leading = load_rows(audio, sr, channel_axis=channel_axis)
        return rows, Layout("rows", leading) if leading else Layout("one")
    return [audio], Layout("one")


class Model:
    """A loaded VQ-VAE (QE or SE) with the preprocessing it needs: any input -> 16 kHz mono -> conditioning ->
    its features.

    `conditioning`: how each utterance is prepared before its spectrum (`vqscore.conditioning`: "paper" as given,
    "robust" level-normalised with leading/trailing digital silence trimmed). `pooling`: how its per-frame scores
    make its VQScore (`vqscore.pooling`: "mean" as the paper, "median", "p25", "p10"). `policy`: where whole-utterance
    scoring ends and windows begin (`vqscore.longform`; 30 min / 60 s). `weights_sha256`: the hash of the weights
    (bundle) or checkpoint file they came from. `enhance_policy`: where whole-utterance enhancement ends and
    cross-faded windows begin (`vqscore.enhance_long`; 30 s / 30 s windows, 1 s overlaps)."""

    def __init__(
        self,
        network: VQVAE,
        name: str,
        info: BundleInfo | None = None,
        policy: LongformPolicy = DEFAULT_POLICY,
        conditioning: Conditioning = PAPER,
        weights_sha256: str = "",
        pooling: str = "mean",
        enhance_policy: EnhancePolicy = DEFAULT_ENHANCE_POLICY,
    ):
        self.network = network.eval()
        self.name = name
        self.info = info
        self.policy = policy
        self.conditioning = conditioning
        self.pooling = check_pooling(pooling)
        self.weights_sha256 = weights_sha256 or (info.sha256 if info is not None else "")
        self.enhance_policy = enhance_policy

    @property
    def tag(self) -> str:
        """What produced a score: name@version#sha256-prefix (results tables record it)."""
        version = f"@{self.info.version}" if self.info is not None else ""
        return f"{self.name}{version}#{self.weights_sha256[:12]}"

    @property
    def scoring(self) -> str:
        """How scores are computed beyond the weights: conditioning, pooling and long-file policy (recorded with
        results)."""
        return (
            f"{self.conditioning.name}; pooling {self.pooling}; whole<={self.policy.max_whole_s:g}s; "
            f"windows {self.policy.window_s:g}s"
        )

    @property
    def kind(self) -> str:
        return self.network.config.kind

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def __repr__(self) -> str:
        return (
            f"vqscore.Model(name={self.name!r}, kind={self.kind!r}, conditioning={self.conditioning.name!r}, "
            f"pooling={self.pooling!r}, device={str(self.device)!r})"
        )

    def score(self, audio: Inputs, sr: int | None = None, channel_axis: int | None = None):
        """All four scores and the per-frame VQScore, as `Score`s shaped like the input.

        audio: a path or open binary file -> `Score`; an array/tensor (samples,) at `sr` Hz -> `Score`, or
        (..., samples) -> nested lists of `Score` in the shape of the leading axes (one per row); a list of inputs
        -> a list. `channel_axis`: an array axis of channels to average first (files' channels always are).
        Files longer than `policy.max_whole_s` are read in blocks and scored in windows."""
        items, layout = gather(audio, sr, channel_axis)
        return layout.arrange(self._scores(items, sr, channel_axis, with_decoder=True))

    def vqscore(self, audio: Inputs, sr: int | None = None, channel_axis: int | None = None):
        """Only cos_z (the VQScore; encoder and codebook, no decoder): a float for one utterance, a list for a
        list, an np.ndarray (float64) in the shape of the leading axes for a (..., samples) array."""
        items, layout = gather(audio, sr, channel_axis)
        values = [s.cos_z for s in self._scores(items, sr, channel_axis, with_decoder=False)]
        return np.asarray(values, dtype=np.float64).reshape(layout.shape) if layout.kind == "rows" else layout.arrange(values)

    def _scores(self, items: list, sr: int | None, channel_axis: int | None, with_decoder: bool) -> list[Score]:
        streamed = [i for i, item in enumerate(items) if sr is None and self._long_file(item)]
        scores: list[Score | None] = [None] * len(items)
        if streamed:
            from .corpus import score_paths_in_order  # block reading and windows, in this process (no workers)

            paths = [os.fspath(items[i]) for i in streamed]
            results = score_paths_in_order(
                self.network,
                paths,
                with_decoder=with_decoder,
                num_workers=0,
                policy=self.policy,
                conditioning=self.conditioning,
            )
            for i, result in zip(streamed, results, strict=True):
                if result.error:
                    raise AudioError(result.error)
                scores[i] = result.score
        rest = [i for i in range(len(items)) if scores[i] is None]
        prepared = [self._prepare(items[i], sr, channel_axis) for i in rest]
        found = score_utterances(
            self.network,
            [a.samples for a in prepared],
            [a.name for a in prepared],
            with_decoder,
            policy=self.policy,
            conditioning=self.conditioning,
        )
        for i, score in zip(rest, found, strict=True):
            scores[i] = score
        return [apply_pooling(s, self.pooling) for s in scores]  # type: ignore[arg-type]

    @staticmethod
    def _prepare(item, sr: int | None, channel_axis: int | None) -> Audio:
        return item if isinstance(item, Audio) else load_audio(item, sr, channel_axis=channel_axis)

    def _long_file(self, item, policy: LongformPolicy | None = None) -> bool:
        """A path the corpus planner would stream as possibly long (from its header)."""
        if not isinstance(item, (str, os.PathLike)):
            return False
        from .corpus import may_be_long, probe

        return may_be_long(probe(os.fspath(item)), policy or self.policy)

    def enhance(self, audio: Inputs, sr: int | None = None, channel_axis: int | None = None):
        """Enhanced speech from an SE model, float32 at 16 kHz: (samples,) for one utterance, a list for a list,
        (..., samples) for a (..., samples) array (every row has the same length).

        Utterances up to `enhance_policy.max_whole_s` (30 s) are enhanced whole, in padded batches (each equal to
        enhancing it alone); longer ones in cross-faded windows (`vqscore.enhance_long`), files read in blocks.
        Digital silence stays silence."""
        if self.kind != "se":
            raise TypeError(f"{self.name} is a {self.kind.upper()} model; enhance() needs an SE (enhancement) model")
        items, layout = gather(audio, sr, channel_axis)
        policy = self.enhance_policy
        out: list[np.ndarray | None] = [None] * len(items)
        whole: list[tuple[int, np.ndarray]] = []
        for i, item in enumerate(items):
            if sr is None and self._long_file(item, policy):
                path = os.fspath(item)
                out[i] = np.concatenate(list(enhance_stream(self.network, read_blocks(path), policy, path)))
                continue
            prepared = self._prepare(item, sr, channel_axis)
            check_length(prepared.samples, self.network.features.min_samples, prepared.name)
            if policy.is_long(prepared.samples.shape[0]):
                out[i] = enhance_long(self.network, prepared.samples, policy, prepared.name)
            else:
                whole.append((i, prepared.samples))
        for (i, _), enhanced in zip(whole, enhance_batch(self.network, [w for _, w in whole]), strict=True):
            out[i] = enhanced
        if layout.kind == "rows":
            return np.stack(out).reshape(*layout.shape, -1)
        return layout.arrange(out)

    def with_conditioning(self, conditioning: str | Conditioning) -> Model:
        """The same network and weights, scoring with another conditioning ("paper" or "robust")."""
        chosen = get_conditioning(conditioning)
        return Model(
            self.network, self.name, self.info, self.policy, chosen, self.weights_sha256, self.pooling, self.enhance_policy
        )

    @property
    def mos_scale(self) -> MosScale | None:
        """The bundle's 1-5 scale, if it has one fitted for this model's conditioning and pooling."""
        data = self.info.mos_scale if self.info is not None else None
        if not data:
            return None
        scale = MosScale.from_dict(data)
        if (scale.conditioning, scale.pooling) != (self.conditioning.name, self.pooling):
            return None
        return scale

    def mos(self, audio: Inputs, sr: int | None = None, channel_axis: int | None = None):
        """The VQScore on the bundle's 1-5 scale (a monotone map fitted on listeners' ratings), shaped like
        `Model.vqscore`. ValueError if the bundle has no scale for this conditioning and pooling."""
        scale = self.mos_scale
        if scale is None:
            fitted = self.info.mos_scale if self.info is not None else None
            why = (
                f"it was fitted for {fitted['conditioning']} conditioning and {fitted['pooling']} pooling"
                if fitted
                else "its bundle has none"
            )
            raise ValueError(
                f"{self.name} has no 1-5 scale for {self.conditioning.name} conditioning and {self.pooling} pooling ({why})"
            )
        raw = self.vqscore(audio, sr, channel_axis)
        return [scale(v) for v in raw] if isinstance(raw, list) else scale(raw)

    def with_pooling(self, pooling: str) -> Model:
        """The same network and weights, pooling frames another way ("mean", "median", "p25", "p10")."""
        return Model(
            self.network, self.name, self.info, self.policy, self.conditioning, self.weights_sha256, pooling, self.enhance_policy
        )

    def to(self, device: str | torch.device) -> Model:
        self.network.to(device)
        return self


def load(
    name_or_path: str | os.PathLike = "default",
    device: str | torch.device | None = None,
    conditioning: str | Conditioning | None = None,
    pooling: str | None = None,
) -> Model:
    """A model from a shipped bundle name ("default" = newest vqscore-qe-cleanspeech, "default-se" = newest shipped
    vqscore-se-cleanspeech enhancer), a bundle JSON / .safetensors path, or an official VQScore checkpoint
    (.pkl/.pt/.pth). Runs on `device` (CPU unless given).

    `conditioning`: "paper" (the waveform as given: the official definition), "robust" (level-normalised, leading
    and trailing digital silence trimmed), or None for the one the bundle declares ("paper" for official
    checkpoints). `pooling`: "mean" (the paper), "median", "p25", "p10", or None for the bundle's ("mean" for
    official checkpoints)."""
    device = torch.device(device or "cpu")
    path = Path(name_or_path)
    if looks_official(path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        config, state = load_official(path)
        network = build_model(config)
        network.load_state_dict(state, strict=True)
        chosen = get_conditioning(conditioning, PAPER)
        return Model(
            network.to(device), name=path.name, conditioning=chosen, weights_sha256=sha256_file(path), pooling=pooling or "mean"
        )
    if path.suffix in (".json", ".safetensors") or path.exists():
        network, info = load_bundle(path, device)
    else:
        network, info = load_bundle(find_shipped(str(name_or_path)).path, device)
    if info.kind not in VQVAE_KINDS:
        raise BundleError(
            f"{info.path}: {info.name}@{info.version} is a {info.kind} enhancer bundle, not a VQScore model (qe/se) that "
            f"vqscore.load() can score or enhance with; use vqscore.enhancers.build_enhancer(EnhancerSpec('bundle', "
            f"{{'model': {str(name_or_path)!r}}})) to enhance with it"
        )
    chosen = get_conditioning(conditioning, get_conditioning(info.conditioning))
    return Model(network, name=info.name, info=info, conditioning=chosen, pooling=pooling or info.pooling)


@lru_cache(maxsize=4)
def cached_model(name_or_path: str, device: str) -> Model | ModelBag:
    """A `Model`, or a `vqscore.bag.ModelBag` where the name is a bag's; loaded once per name and device."""
    from .bag import load_scorer  # bags build on this module

    return load_scorer(name_or_path, device)


def score(
    audio: Inputs,
    sr: int | None = None,
    model: str | os.PathLike | Model | ModelBag = "default",
    device: str | None = None,
    channel_axis: int | None = None,
    conditioning: str | None = None,
    pooling: str | None = None,
):
    """The VQScore (cos_z) of `audio`, higher is cleaner: a float for a path, an open binary file or a (samples,)
    array at `sr` Hz; an np.ndarray in the shape of the leading axes for a (..., samples) batch (one score per row);
    a list for a list. `channel_axis`: an array axis of channels to average first (a file's channels always are).

    `model` is a shipped bundle name, a path, a loaded `Model`, or a bag of QE models (a shipped bag name such as
    "vqscore-qe-seeds", a bag JSON, a `vqscore.bag.ModelBag`: the mean of its members' scores); named models are
    loaded once and cached. `conditioning` ("paper", "robust") and `pooling` ("mean", "median", "p25", "p10") replace
    the model's own (every member's, for a bag).
    """
    named = isinstance(model, (str, os.PathLike))
    chosen = cached_model(os.fspath(model), str(device or "cpu")) if named else model
    if conditioning is not None:
        chosen = chosen.with_conditioning(conditioning)
    if pooling is not None:
        chosen = chosen.with_pooling(pooling)
    return chosen.vqscore(audio, sr, channel_axis)


def enhance(
    audio: Inputs,
    sr: int | None = None,
    model: str | os.PathLike | Model = "default-se",
    device: str | None = None,
    channel_axis: int | None = None,
):
    """Enhanced speech from an SE model, float32 at 16 kHz, shaped like the input (see `Model.enhance`).

    `model`: "default-se" (the newest shipped vqscore-se-cleanspeech bundle), another shipped name, a path, or a
    loaded `Model`; named models are loaded once and cached."""
    chosen = model if isinstance(model, Model) else cached_model(os.fspath(model), str(device or "cpu"))
    if not isinstance(chosen, Model):
        raise BundleError(f"{os.fspath(model)}: a bag of QE models scores; it cannot enhance (name an SE model)")
    return chosen.enhance(audio, sr, channel_axis)


def describe_bundle(path: str | os.PathLike) -> BundleInfo:
    return read_info(path)


__all__ = ["Model", "load", "score", "enhance", "Score", "BundleError"]
