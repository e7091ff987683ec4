"""Bags of QE models: several VQ-VAEs that score as one, a file's VQScore being the mean of theirs.

Checkpoints of one recipe that differ only by seed rank the same files differently enough that their mean is a
different, steadier score: over five seeds it tracks listeners and PESQ better than any one of them, though not
STOI or SI-SDR (benchmarks/results/bag), and it picks among enhancers' outputs better (benchmarks/results/selection).
A bag is data, like demucs' bags of models: a JSON file
{"name", "description"?, "members": [model, ...], "pooling"?} whose members are anything `vqscore.load` takes (a
shipped bundle name, NAME@VERSION, a bundle path). Shipped bags live in `pretrained/bags/<name>.json`.
`load_scorer(name)` is where a model name or a bag name becomes something with `vqscore(audio, sr)`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .api import Inputs, Model, load
from .bundle import BundleError, shipped_data_files
from .conditioning import Conditioning
from .longform import LongformPolicy
from .models.base import VQVAE
from .pooling import check_pooling

BAG_DIR = "bags"  # inside each pretrained directory: <name>.json


class BagError(BundleError):
    """A bag file that cannot be read, or a member that cannot be loaded; the message names the file or member."""


@dataclass(frozen=True)
class BagSpec:
    """A bag file, parsed. pooling: how every member pools its frames (None: each member's own)."""

    name: str
    members: tuple[str, ...]
    description: str = ""
    pooling: str | None = None

    @classmethod
    def read(cls, path: str | os.PathLike) -> BagSpec:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BagError(f"{path}: not a readable bag file ({exc})") from exc
        if not isinstance(data, dict):
            raise BagError(f"{path}: a bag file holds a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"name", "description", "members", "pooling"}
        if unknown:
            raise BagError(f"{path}: unknown field(s) {sorted(unknown)}; a bag has name, description, members, pooling")
        members = data.get("members")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise BagError(f"{path}: 'members' must be a non-empty list of model names or bundle paths")
        pooling = data.get("pooling")
        if pooling is not None:
            try:
                check_pooling(pooling)
            except ValueError as exc:
                raise BagError(f"{path}: {exc}") from None
        # a relative bundle path in a bag file is relative to the file, not to the caller's working directory
        resolved = [
            str(path.parent / m) if m.endswith((".json", ".safetensors")) and not Path(m).is_absolute() else m for m in members
        ]
        return cls(str(data.get("name") or path.stem), tuple(resolved), str(data.get("description", "")), pooling)


class ModelBag:
    """QE models scored together: `vqscore` is the mean of the members' VQScores (each with its own conditioning
    and pooling, unless the bag overrides the pooling). Shaped like `Model.vqscore`: a float for one utterance, a
    list for a list, an array for a (..., samples) array."""

    kind = "qe"
    # a 1-5 scale is fitted to one model's scores; the mean of several has none
    mos_scale = None

    def __init__(self, models: Sequence[Model], name: str):
        if not models:
            raise BagError(f"bag {name!r} has no members")
        for m in models:
            if m.kind != "qe":
                raise BagError(f"bag {name!r}: member {m.name} is an SE (enhancement) model; a bag scores with QE models")
        self.models = list(models)
        self.name = name

    @property
    def pooling(self) -> str:
        poolings = {m.pooling for m in self.models}
        return poolings.pop() if len(poolings) == 1 else "each member's own"

    @property
    def tag(self) -> str:
        """What produced a score: the bag's name and every member's tag."""
        return f"{self.name}[{', '.join(m.tag for m in self.models)}]"

    @property
    def scoring(self) -> str:
        """How the members' scores are computed beyond their weights (recorded with results)."""
        return f"mean of {len(self.models)} models; " + " | ".join(dict.fromkeys(m.scoring for m in self.models))

    @property
    def weights_sha256(self) -> str:
        """One hash of the members' weights, in order (caches keyed by weights see a bag change)."""
        return hashlib.sha256("\n".join(m.weights_sha256 for m in self.models).encode()).hexdigest()

    @property
    def device(self) -> torch.device:
        return self.models[0].device

    @property
    def policy(self) -> LongformPolicy:
        """The long-file policy the corpus path windows each file by, once for all members: the first member's."""
        return self.models[0].policy

    @policy.setter
    def policy(self, policy: LongformPolicy) -> None:
        for m in self.models:
            m.policy = policy

    @property
    def conditioning(self) -> Conditioning:
        """The members' conditioning; the corpus path prepares each file once for all of them, so they must agree."""
        names = sorted({m.conditioning.name for m in self.models})
        if len(names) > 1:
            raise BagError(f"bag {self.name!r}: members differ in conditioning ({', '.join(names)}); give one to use for all")
        return self.models[0].conditioning

    def with_pooling(self, pooling: str) -> ModelBag:
        return ModelBag([m.with_pooling(pooling) for m in self.models], self.name)

    def with_conditioning(self, conditioning: str) -> ModelBag:
        return ModelBag([m.with_conditioning(conditioning) for m in self.models], self.name)

    def vqscore(self, audio: Inputs, sr: int | None = None, channel_axis: int | None = None):
        values = [m.vqscore(audio, sr=sr, channel_axis=channel_axis) for m in self.models]
        mean = np.mean([np.asarray(v, dtype=np.float64) for v in values], axis=0)
        if isinstance(values[0], float):
            return float(mean)
        return mean.tolist() if isinstance(values[0], list) else mean

    def __repr__(self) -> str:
        return f"vqscore.ModelBag(name={self.name!r}, members={[m.tag for m in self.models]!r}, pooling={self.pooling!r})"


def scoring_members(scorer: Model | ModelBag) -> tuple[list[VQVAE], list[str]]:
    """The networks and poolings the corpus path (`corpus.score_file_batches`) scores with: a bag's members', or
    the one model's."""
    members = scorer.models if isinstance(scorer, ModelBag) else [scorer]
    return [m.network for m in members], [m.pooling for m in members]


def shipped_bags() -> dict[str, Path]:
    """Name -> file of every bag in the pretrained directories (the first directory wins on a name)."""
    return shipped_data_files(BAG_DIR)


def find_bag(name_or_path: str | os.PathLike) -> Path | None:
    """The file of a shipped bag name or of a bag JSON path (a JSON object with "members"); None for anything else."""
    shipped = shipped_bags()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # not ours to judge: vqscore.load reports what is wrong with it
        return path if isinstance(data, dict) and "members" in data else None
    return None


def load_bag(
    name_or_path: str | os.PathLike, device: str | torch.device | None = None, pooling: str | None = None
) -> ModelBag:
    """A bag from a shipped bag name or a bag JSON; every member loaded on `device`. `pooling` overrides the bag's."""
    path = find_bag(name_or_path)
    if path is None:
        raise BagError(f"no shipped bag named {str(name_or_path)!r} (shipped: {', '.join(shipped_bags()) or 'none'})")
    return read_bag(path, device, pooling)


def read_bag(path: Path, device: str | torch.device | None = None, pooling: str | None = None) -> ModelBag:
    """The bag of the bag file at `path` (as `find_bag` found it), every member loaded."""
    spec = BagSpec.read(path)
    models = []
    for member in spec.members:
        try:
            models.append(load(member, device=device, pooling=pooling or spec.pooling))
        except (BundleError, FileNotFoundError, ValueError) as exc:
            raise BagError(f"bag {spec.name!r}: member {member!r} cannot be loaded: {exc}") from exc
    return ModelBag(models, spec.name)


def load_scorer(
    name_or_path: str | os.PathLike = "default",
    device: str | torch.device | None = None,
    pooling: str | None = None,
    conditioning: str | Conditioning | None = None,
) -> Model | ModelBag:
    """A `ModelBag` when `name_or_path` is a bag (shipped name or bag JSON), else `vqscore.load(...)`'s `Model`.
    `pooling` and `conditioning` replace the model's (every member's)."""
    path = find_bag(name_or_path)
    if path is None:
        return load(name_or_path, device=device, conditioning=conditioning, pooling=pooling)
    bag = read_bag(path, device, pooling)
    return bag if conditioning is None else bag.with_conditioning(conditioning)
