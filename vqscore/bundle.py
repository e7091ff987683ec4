"""Bundles: the project's weight format, and the lookup of bundles shipped in `pretrained/`.

A bundle is two files side by side:
- `<name>.json`: format, name, version, model config (kind + hyper-parameters), feature config, the input
  conditioning and pooling its scores are meant with (`vqscore.conditioning`, `vqscore.pooling`; "paper" and
  "mean" when absent), an optional 1-5 scale fitted on human ratings (`vqscore.mos_scale`), training note,
  the weights file name and its sha256;
- `<name>-<sha8>.safetensors`: the tensors (no pickle; nothing executes on load).
Loading verifies the sha256 of the weights file before parsing it, so a truncated or tampered file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .features import StftConfig
from .models import Network, build_model, config_from_dict

FORMAT = "vqscore-bundle"
FORMAT_VERSION = 1
PRETRAINED_ENV = "VQSCORE_PRETRAINED"
# "default-se": the newest shipped bundle of this name (kind "se"), the enhancer trained on clean speech.
DEFAULT_SE = "vqscore-se-cleanspeech"
# "default" is this QE model's newest version; other shipped QE bundles (the members of a bag) never take its place
DEFAULT_QE = "vqscore-qe-cleanspeech"


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class BundleInfo:
    """A bundle's JSON, parsed."""

    path: Path  # the .json
    name: str
    version: str
    kind: str
    model: dict
    features: dict
    weights: str
    sha256: str
    training: dict = field(default_factory=dict)
    conditioning: str | dict = "paper"
    pooling: str = "mean"
    mos_scale: dict | None = None

    @property
    def weights_path(self) -> Path:
        return self.path.parent / self.weights


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_key(version: str) -> tuple:
    """Sort key for "MAJOR.MINOR.PATCH[-PRE]": numeric parts compare as numbers; a pre-release sorts before its release."""
    release, _, pre = version.partition("-")
    numbers = tuple(int(p) if p.isdigit() else -1 for p in release.split("."))
    return numbers, (0, pre) if pre else (1, "")


def read_info(path: str | os.PathLike) -> BundleInfo:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: no such bundle file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not a bundle JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{path}: not a {FORMAT} JSON (missing \"format\": \"{FORMAT}\")")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {data['format_version']} is newer than this vqscore reads ({FORMAT_VERSION}); upgrade vqscore")
    try:
        return BundleInfo(
            path=path,
            name=data["name"],
            version=str(data["version"]),
            kind=data["model"]["kind"],
            model=data["model"],
            features=data["features"],
            weights=data["weights"],
            sha256=data["sha256"],
            training=data.get("training", {}),
            conditioning=data.get("conditioning", "paper"),
            pooling=data.get("pooling", "mean"),
            mos_scale=data.get("mos_scale"),
        )
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{path}: bundle JSON lacks field {exc}") from exc


def save_bundle(
    model: Network,
    directory: str | os.PathLike,
    name: str,
    version: str,
    training: dict | None = None,
    conditioning: str = "paper",
    pooling: str = "mean",
    json_name: str | None = None,
) -> Path:
    """Write `model` (a VQ-VAE or a U-Net denoiser) as a bundle in `directory`; returns the JSON path
    (`<name>.json`, or `json_name` to keep several versions of one name side by side)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / f".{name}.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": FORMAT, "name": name, "version": version})
    digest = sha256_file(tmp)
    weights = f"{name}-{digest[:8]}.safetensors"
    os.replace(tmp, directory / weights)
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "model": model.config.to_dict(),
        "features": model.features.to_dict(),
        "conditioning": conditioning,
        "pooling": pooling,
        "training": training or {},
        "weights": weights,
        "sha256": digest,
    }
    json_path = directory / (json_name or f"{name}.json")
    json_path.write_text(json.dumps(info, indent=2) + "\n")
    # safetensors writes owner-only files; a bundle is for everyone who can read the JSON (the umask decided that)
    os.chmod(directory / weights, json_path.stat().st_mode & 0o777)
    return json_path


def load_bundle(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[Network, BundleInfo]:
    """A bundle JSON (or its .safetensors, found through the JSON beside it) -> (model in eval mode, info); the
    model is a VQ-VAE (kind "qe"/"se") or a U-Net denoiser (kind "unet", `info.kind` says which)."""
    info = read_info(resolve_json(Path(path)))
    weights = info.weights_path
    if not weights.is_file():
        raise BundleError(f"{info.path}: weights file {weights} is missing")
    actual = sha256_file(weights)
    if actual != info.sha256:
        raise BundleError(
            f"{weights}: sha256 mismatch (expected {info.sha256[:16]}..., file has {actual[:16]}...); "
            "the weights are corrupt, truncated or were modified"
        )
    try:
        model = build_model(config_from_dict(info.model), StftConfig(**info.features))
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        raise BundleError(f"{info.path}: weights do not fit the model config ({exc})") from exc
    return model.to(device or "cpu").eval(), info


def resolve_json(path: Path) -> Path:
    if path.suffix == ".safetensors":
        for candidate in path.parent.glob("*.json"):
            try:
                if read_info(candidate).weights == path.name:
                    return candidate
            except BundleError:
                continue
        raise BundleError(f"{path}: no bundle JSON beside it names this weights file")
    return path


def pretrained_dirs() -> list[Path]:
    """Where shipped bundles live: $VQSCORE_PRETRAINED, inside the installed package, and a source checkout."""
    here = Path(__file__).resolve().parent
    dirs = [Path(p) for p in os.environ.get(PRETRAINED_ENV, "").split(os.pathsep) if p]
    dirs += [here / "pretrained", here.parent / "pretrained"]
    return [d for d in dirs if d.is_dir()]


def shipped_data_files(folder: str) -> dict[str, Path]:
    """Name (file stem) -> file of every JSON data file in `folder` of the pretrained directories (ensembles/, bags/);
    the first directory wins on a name."""
    found: dict[str, Path] = {}
    for directory in pretrained_dirs():
        for path in sorted((directory / folder).glob("*.json")):
            found.setdefault(path.stem, path)
    return found


def shipped_bundles() -> list[BundleInfo]:
    """Every readable bundle in the pretrained directories (first directory wins on an equal name and version)."""
    found: dict[tuple[str, str], BundleInfo] = {}
    for directory in pretrained_dirs():
        for json_path in sorted(directory.glob("*.json")):
            try:
                info = read_info(json_path)
            except BundleError:
                continue
            found.setdefault((info.name, info.version), info)
    return sorted(found.values(), key=lambda i: (i.kind, version_key(i.version), i.name))


def find_shipped(name: str) -> BundleInfo:
    """A shipped bundle: "default" (the newest `DEFAULT_QE`, else the newest QE bundle), "default-se" (the newest
    `DEFAULT_SE` enhancer), "NAME" (its newest version) or "NAME@VERSION"."""
    bundles = shipped_bundles()
    if "@" in name:
        wanted, version = name.split("@", 1)
        for b in bundles:
            if (b.name, b.version) == (wanted, version):
                return b
        known = ", ".join(f"{b.name}@{b.version}" for b in bundles) or "none"
        raise BundleError(f"no shipped bundle {name!r} (shipped: {known})")
    if name == "default":
        qe = [b for b in bundles if b.kind == "qe"]
        if not qe:
            searched = ", ".join(str(d) for d in pretrained_dirs()) or "no pretrained directory exists"
            raise BundleError(
                f"no pretrained QE bundle is shipped (searched: {searched}); pass model= a bundle JSON or an "
                "official checkpoint path"
            )
        named = [b for b in qe if b.name == DEFAULT_QE]
        # without the shipped default (a custom pretrained directory), the newest QE bundle there
        return max(named, key=lambda b: version_key(b.version)) if named else qe[-1]
    if name == "default-se":
        se = [b for b in bundles if b.kind == "se" and b.name == DEFAULT_SE]
        if not se:
            searched = ", ".join(str(d) for d in pretrained_dirs()) or "no pretrained directory exists"
            raise BundleError(
                f"no SE model is shipped in pretrained/ (default-se: no {DEFAULT_SE} bundle; searched: {searched}); "
                "pass model= (--model) an SE bundle JSON or an official SE checkpoint path"
            )
        return max(se, key=lambda b: version_key(b.version))
    named = [b for b in bundles if b.name == name]
    if named:
        return max(named, key=lambda b: version_key(b.version))
    known = ", ".join(dict.fromkeys(b.name for b in bundles)) or "none"
    raise BundleError(f"no shipped bundle named {name!r} (shipped: {known})")
