"""An ensemble of enhancers defined as data, and the per-utterance choice among their outputs (SSEMS).

    ens = Ensemble.load("default")           # a shipped ensemble, or a path to an ensemble JSON/YAML file
    sel = ens.enhance("noisy.wav")           # Selection: the chosen output and every member's score
    sel.chosen, sel.audio                    # member name, float32 (samples,) at 16 kHz

An ensemble file names its members (each an enhancer of `vqscore.enhancers`: a bundle, a DSP method, a package,
the unprocessed input) and the selector (`vqscore.selectors`). Every member enhances the utterance, the selector
scores each output, the highest wins, or, where the selector has a `temperature`, the outputs are mixed with softmax
weights of their scores (a soft pick); the cost is K enhancements plus K scores, and the Selection keeps both times.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import AudioInput, load_audio
from .bundle import shipped_data_files
from .enhancers import build_enhancer
from .enhancers.base import Enhancer, EnhancerError, EnhancerSpec
from .selectors import SELECTORS, Selector, build_selector, mix, pick, weights

RATE = 16_000
ENSEMBLE_DIR = "ensembles"  # inside each pretrained directory: <name>.json


class EnsembleError(ValueError):
    """An ensemble that cannot be read or built, or a member that failed; the message names the member."""


@dataclass(frozen=True)
class MemberSpec:
    name: str
    kind: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SelectorSpec:
    """kind and options build the selector; temperature (in the selector's units, > 0) makes the pick soft."""

    kind: str = "vqscore"
    options: dict = field(default_factory=dict)
    temperature: float | None = None


@dataclass(frozen=True)
class EnsembleSpec:
    """An ensemble file, parsed: {"name", "description"?, "selector"?: {"kind", "options"?, "temperature"?},
    "members": [{"name", "kind", "options"?}, ...]}."""

    name: str
    members: tuple[MemberSpec, ...]
    selector: SelectorSpec = SelectorSpec()
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict, source: str = "ensemble") -> EnsembleSpec:
        if not isinstance(data, dict):
            raise EnsembleError(f"{source}: an ensemble is a mapping with 'name' and 'members'")
        unknown = set(data) - {"name", "description", "selector", "members"}
        if unknown:
            raise EnsembleError(f"{source}: unknown ensemble fields {sorted(unknown)}")
        members = data.get("members")
        if not isinstance(members, list) or not members:
            raise EnsembleError(f"{source}: 'members' must be a non-empty list")
        parsed = []
        for k, m in enumerate(members):
            if not isinstance(m, dict) or not {"name", "kind"} <= set(m) or set(m) - {"name", "kind", "options"}:
                raise EnsembleError(
                    f"{source}: member {k + 1} must have 'name' and 'kind' (and optional 'options'), got {m!r}"
                )
            parsed.append(MemberSpec(str(m["name"]), str(m["kind"]), dict(m.get("options") or {})))
        names = [m.name for m in parsed]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise EnsembleError(f"{source}: member names must be unique; repeated: {repeated}")
        selector = data.get("selector") or {}
        if isinstance(selector, str):
            selector = {"kind": selector}
        if set(selector) - {"kind", "options", "temperature"}:
            raise EnsembleError(
                f"{source}: the selector has 'kind' and optional 'options' and 'temperature', got {selector!r}"
            )
        temperature = selector.get("temperature")
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature < float("inf")
        ):
            raise EnsembleError(f"{source}: the selector's temperature must be a positive number, got {temperature!r}")
        return cls(
            name=str(data.get("name") or Path(source).stem),
            members=tuple(parsed),
            selector=SelectorSpec(
                str(selector.get("kind", "vqscore")),
                dict(selector.get("options") or {}),
                None if temperature is None else float(temperature),
            ),
            description=str(data.get("description", "")),
        )

    @classmethod
    def read(cls, path: str | os.PathLike) -> EnsembleSpec:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EnsembleError(f"{path}: cannot read the ensemble file ({exc})") from exc
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:
                raise EnsembleError(f"{path}: YAML ensemble files need PyYAML (pip install pyyaml), or use JSON") from exc
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise EnsembleError(f"{path}: not valid YAML ({exc})") from exc
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EnsembleError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict:
        selector = {"kind": self.selector.kind, "options": self.selector.options}
        if self.selector.temperature is not None:  # absent otherwise: a hard ensemble's hash (resumed tables) stays
            selector["temperature"] = self.selector.temperature
        return {
            "name": self.name,
            "description": self.description,
            "selector": selector,
            "members": [{"name": m.name, "kind": m.kind, "options": m.options} for m in self.members],
        }


def shipped_ensembles() -> dict[str, Path]:
    """Name -> file of every ensemble in the pretrained directories (the first directory wins on a name)."""
    return shipped_data_files(ENSEMBLE_DIR)


def find_ensemble(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise EnsembleError(f"{path}: no such ensemble file")
        return path
    shipped = shipped_ensembles()
    if str(name_or_path) not in shipped:
        raise EnsembleError(f"no shipped ensemble named {str(name_or_path)!r} (shipped: {', '.join(shipped) or 'none'})")
    return shipped[str(name_or_path)]


@dataclass(frozen=True)
class MemberResult:
    """One member on one utterance: the selector's number for its output (higher is better), whether it was
    chosen (the highest weight), its weight in the kept audio (1 or 0 for a hard pick) and the seconds its
    enhancement took."""

    member: str
    score: float
    chosen: bool
    seconds: float
    weight: float = 0.0


@dataclass(frozen=True)
class Selection:
    """The outcome for one utterance. audio: the kept output, (samples,) float32 at 16 kHz: the chosen member's, or
    with a temperature the members' outputs mixed by their weights; outputs: every member's output; score_seconds:
    what scoring all outputs cost (the selector's share of the work)."""

    name: str
    chosen: str
    audio: np.ndarray
    members: tuple[MemberResult, ...]
    outputs: dict[str, np.ndarray]
    selector: str
    score_seconds: float
    sample_rate: int = RATE

    def table(self) -> list[dict]:
        return [
            {"member": m.member, "score": m.score, "chosen": m.chosen, "weight": m.weight, "seconds": m.seconds}
            for m in self.members
        ]


class Ensemble:
    """Members built from an `EnsembleSpec`; `selector` overrides the file's (a `Selector` or a kind name). The file's
    temperature holds only for the file's own selector kind (it is in that selector's units); an override picks hard."""

    def __init__(self, spec: EnsembleSpec, device: str | None = None, selector: Selector | str | None = None):
        self.spec = spec
        self.members: dict[str, Enhancer] = {}
        for m in spec.members:
            options = dict(m.options)
            if device is not None and m.kind == "bundle":
                options.setdefault("device", device)
            try:
                self.members[m.name] = build_enhancer(EnhancerSpec(m.kind, options))
            except (EnhancerError, ValueError, OSError, ImportError) as exc:
                raise EnsembleError(
                    f"ensemble {spec.name!r}: member {m.name!r} (kind {m.kind!r}) cannot be built: {exc}"
                ) from exc
        self.temperature = spec.selector.temperature if selector in (None, spec.selector.kind) else None
        if isinstance(selector, str) or selector is None:
            kind = selector or spec.selector.kind
            options = spec.selector.options if kind == spec.selector.kind else {}
            if kind in ("vqscore", "ae-error") and device is not None:
                options = {**options, "device": device}
            try:
                selector = build_selector(kind, **options)
            except (ValueError, OSError, ImportError) as exc:
                raise EnsembleError(f"ensemble {spec.name!r}: selector {kind!r} cannot be built: {exc}") from exc
        self.selector = selector

    @classmethod
    def load(
        cls, name_or_path: str | os.PathLike = "default", device: str | None = None, selector: Selector | str | None = None
    ) -> Ensemble:
        """A shipped ensemble by name ("default") or an ensemble JSON/YAML file."""
        return cls(EnsembleSpec.read(find_ensemble(name_or_path)), device=device, selector=selector)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(self.members)

    def __repr__(self) -> str:
        return f"Ensemble({self.name!r}, members={list(self.members)}, selector={self.selector.name!r})"

    def run_members(self, wav: np.ndarray, name: str = "audio") -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Every member's output for wav: (samples,) float32 at 16 kHz, and the seconds each took. A member that
        raises or returns a wrong shape or non-finite samples raises `EnsembleError` naming it and the input."""
        outputs, seconds = {}, {}
        for member, enhancer in self.members.items():
            start = time.perf_counter()
            try:
                y = np.asarray(enhancer.enhance(wav), dtype=np.float32)
            except Exception as exc:  # a member's own failure, whatever it is, is reported as that member's
                raise EnsembleError(
                    f"{name}: member {member!r} ({enhancer.name}) failed: {type(exc).__name__}: {exc}"
                ) from exc
            seconds[member] = time.perf_counter() - start
            if y.shape != wav.shape or not np.isfinite(y).all():
                raise EnsembleError(
                    f"{name}: member {member!r} ({enhancer.name}) returned {y.shape} samples"
                    f"{'' if np.isfinite(y).all() else ' with NaN/Inf'}; expected {wav.shape} finite samples"
                )
            outputs[member] = y
        return outputs, seconds

    def select(
        self,
        outputs: dict[str, np.ndarray],
        seconds: dict[str, float],
        reference: np.ndarray | None = None,
        name: str = "audio",
    ) -> Selection:
        """Score the members' outputs and keep the best (ties: the first member listed), or their mix by the
        softmax weights of the scores where the ensemble has a temperature."""
        if self.selector.needs_reference and reference is None:
            raise EnsembleError(f"{name}: selector {self.selector.name!r} needs the clean reference")
        start = time.perf_counter()
        values = self.selector.scores(list(outputs.values()), reference)
        score_seconds = time.perf_counter() - start
        best = pick(values)
        w = weights(values, self.temperature)
        members = tuple(
            MemberResult(m, float(v), k == best, seconds[m], float(w[k]))
            for k, (m, v) in enumerate(zip(outputs, values, strict=True))
        )
        chosen = members[best].member
        audio = outputs[chosen] if self.temperature is None else mix(list(outputs.values()), w)
        return Selection(name, chosen, audio, members, outputs, self.selector.name, score_seconds)

    def enhance(
        self,
        audio: AudioInput,
        sr: int | None = None,
        channel_axis: int | None = None,
        reference: AudioInput | None = None,
    ) -> Selection:
        """audio: a path or open file, or (samples,) / (channels, samples) at `sr` Hz (channels averaged, resampled
        to 16 kHz as for scoring); reference: the clean utterance, for the oracle selector only."""
        loaded = load_audio(audio, sr, channel_axis=channel_axis)
        clean = None if reference is None else load_audio(reference, sr).samples
        outputs, seconds = self.run_members(loaded.samples, loaded.name)
        return self.select(outputs, seconds, clean, loaded.name)


__all__ = [
    "SELECTORS",
    "Ensemble",
    "EnsembleError",
    "EnsembleSpec",
    "MemberResult",
    "MemberSpec",
    "Selection",
    "SelectorSpec",
    "find_ensemble",
    "shipped_ensembles",
]
