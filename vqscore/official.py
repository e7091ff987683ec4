"""Import of checkpoints written by the official VQScore code (github JasonSWFu/VQscore).

They are pickles of `{'model': {'VQVAE': state_dict}}`; `torch.load(weights_only=True)` reads them without
running any pickled code. Their keys are renamed onto this library's modules; QE versus SE is read from the keys
(only the SE encoder has a Transformer).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .models import QEConfig, SEConfig, VQVAEConfig

_CODEBOOK_PREFIX = "quantizer.quantizer._codebook."
_CODEBOOK_KEYS = {"embed": "codebook", "embed_avg": "codebook_avg", "cluster_size": "cluster_size", "initted": "initialized"}
_RULES = [
    (re.compile(r"^CNN_1D_encoder\.conv_enc(\d)\.(weight|bias)$"), lambda m: f"encoder.convs.{int(m[1]) - 1}.{m[2]}"),
    (re.compile(r"^CNN_1D_decoder\.conv_dec(\d)\.(weight|bias)$"), lambda m: f"decoder.convs.{int(m[1]) - 1}.{m[2]}"),
    (re.compile(r"^CNN_1D_encoder\.transformer_encoder\.(.+)$"), lambda m: f"encoder.transformer.{m[1]}"),
    (re.compile(r"^CNN_1D_decoder\.transformer_decoder\.(.+)$"), lambda m: f"decoder.transformer.{m[1]}"),
]


class OfficialCheckpointError(ValueError):
    pass


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The VQVAE state_dict inside an official checkpoint, read with weights_only=True."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the caller
        raise OfficialCheckpointError(f"{path}: not a readable official VQScore checkpoint ({type(exc).__name__}: {exc})") from exc
    try:
        state = checkpoint["model"]["VQVAE"]
    except (KeyError, TypeError) as exc:
        raise OfficialCheckpointError(f"{path}: no ['model']['VQVAE'] state_dict; not an official VQScore checkpoint") from exc
    return state


def rename_key(key: str) -> str:
    if key.startswith(_CODEBOOK_PREFIX):
        name = key[len(_CODEBOOK_PREFIX) :]
        if name in _CODEBOOK_KEYS:
            return f"quantizer.{_CODEBOOK_KEYS[name]}"
    for pattern, target in _RULES:
        match = pattern.match(key)
        if match:
            return target(match)
    raise OfficialCheckpointError(f"unexpected key {key!r} in official checkpoint")


def infer_config(state: dict[str, torch.Tensor]) -> VQVAEConfig:
    """Kind, widths and codebook shape from the tensors' names and shapes."""
    is_se = any(k.startswith("CNN_1D_encoder.transformer_encoder.") for k in state)
    embed = state[_CODEBOOK_PREFIX + "embed"]
    if embed.ndim != 3 or embed.shape[0] != 1:
        raise OfficialCheckpointError(f"only single-codebook checkpoints are supported; codebook shape {tuple(embed.shape)}")
    size, dim = embed.shape[1:]
    conv1 = state["CNN_1D_encoder.conv_enc1.weight"]
    widths = (conv1.shape[0], state["CNN_1D_encoder.conv_enc3.weight"].shape[0], state["CNN_1D_encoder.conv_enc5.weight"].shape[0])
    common = dict(num_bins=conv1.shape[1], widths=widths, codebook_size=size, codebook_dim=dim, kernel_size=conv1.shape[2])
    if is_se:
        layers = {int(m[1]) for k in state if (m := re.match(r"CNN_1D_encoder\.transformer_encoder\.layers\.(\d+)\.", k))}
        ff = state["CNN_1D_encoder.transformer_encoder.layers.0.linear1.weight"].shape[0]
        return SEConfig(**common, feedforward=ff, transformer_layers=len(layers))
    return QEConfig(**common)


def convert_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official names and shapes -> this library's (codebook buffers lose their leading head axis)."""
    out = {}
    for key, value in state.items():
        name = rename_key(key)
        if name in ("quantizer.codebook", "quantizer.codebook_avg", "quantizer.cluster_size"):
            value = value[0]
        elif name == "quantizer.initialized":
            value = value.reshape(()).bool()
        out[name] = value.contiguous()
    return out


def load_official(path: str | Path) -> tuple[VQVAEConfig, dict[str, torch.Tensor]]:
    state = read_official_state(path)
    return infer_config(state), convert_state(state)


def looks_official(path: str | Path) -> bool:
    """Official checkpoints are zip pickles (.pkl/.pt/.pth); bundles are JSON + safetensors."""
    return Path(path).suffix.lower() in (".pkl", ".pt", ".pth", ".ckpt")
