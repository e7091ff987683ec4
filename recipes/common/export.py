"""Callback that exports the best checkpoint of a run as a vqscore bundle with its model card."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import lightning as L
import torch

import vqscore
from vqscore.bundle import save_bundle


def machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} x{torch.get_num_threads()} threads, torch {torch.__version__}".replace("  ", " ")


class ExportBundle(L.Callback):
    """At the end of fit, write the best checkpoint (by the checkpoint callback's monitor) as `<directory>/<name>.json`
    + weights + `<name>.md`; without a monitored best, the final weights."""

    def __init__(self, directory: str, name: str, version: str = "1.0.0", notes: str = ""):
        self.directory, self.name, self.version, self.notes = Path(directory), name, version, notes
        self.started = time.time()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.time()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        ckpt = trainer.checkpoint_callback
        best_path = getattr(ckpt, "best_model_path", "") if ckpt else ""
        model = pl_module.model
        best = {"step": trainer.global_step, "monitor": None, "score": None, "checkpoint": None}
        if best_path:
            state = torch.load(best_path, map_location="cpu", weights_only=True)
            pl_module.load_state_dict(state["state_dict"])
            best = {
                "step": int(state.get("global_step", trainer.global_step)),
                "monitor": ckpt.monitor,
                "score": None if ckpt.best_model_score is None else float(ckpt.best_model_score),
                "checkpoint": Path(best_path).name,
            }
        dm = trainer.datamodule
        training = {
            "data": getattr(dm, "summary", {}),
            "steps_total": trainer.global_step,
            "best": best,
            "wall_time_s": round(time.time() - self.started, 1),
            "machine": machine(),
            "hyper_parameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in pl_module.hparams.items()},
            "batch_size": getattr(getattr(dm, "hparams", {}), "batch_size", None),
            "vqscore_version": vqscore.__version__,
            "notes": self.notes,
        }
        json_path = save_bundle(model.cpu(), self.directory, self.name, self.version, training)
        self.write_card(json_path, training)

    def write_card(self, json_path: Path, training: dict) -> None:
        data = training["data"]
        lines = [
            f"# {self.name} v{self.version}",
            "",
            f"Bundle: `{json_path.name}` (weights and sha256 inside). Model kind: {training['hyper_parameters'].get('codebook_dim') and 'see JSON'}.",
            "",
            "## Training",
            f"- data: {data.get('files')} files, {data.get('speakers')} speakers, {data.get('hours')} h of clean speech "
            f"from {', '.join(data.get('sources', []))}; {data.get('heldout_speakers_excluded')} held-out speakers excluded",
            f"- steps: {training['steps_total']} (best at step {training['best']['step']}, "
            f"{training['best']['monitor']} = {training['best']['score']})",
            f"- batch size: {training['batch_size']}; hyper-parameters: {training['hyper_parameters']}",
            f"- wall time: {training['wall_time_s'] / 3600:.2f} h on {training['machine']}",
            "",
            "## Measured quality",
            "See the README's results table (benchmarks/quality.py).",
            "",
        ]
        if self.notes:
            lines += ["## Notes", self.notes, ""]
        json_path.with_suffix(".md").write_text("\n".join(lines))
