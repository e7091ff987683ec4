"""Export a trained VQ-VAE as a vqscore bundle with its model card: at the end of fit (callback) or from any
checkpoint afterwards (`python -m recipes.common.export`)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import lightning as L
import torch

import vqscore
from vqscore.bundle import save_bundle


def machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} x{torch.get_num_threads()} threads, torch {torch.__version__}".replace("  ", " ")


def plain(value):
    return list(value) if isinstance(value, tuple) else value


def write_card(json_path: Path, name: str, version: str, training: dict) -> Path:
    data = training.get("data", {})
    best = training.get("best", {})
    lines = [
        f"# {name} v{version}",
        "",
        f"Bundle `{json_path.name}` (model config, feature config, weights file and its sha256 inside).",
        "",
        "## Training",
        f"- data: {data.get('files')} files, {data.get('speakers')} speakers, {data.get('hours')} h of clean speech "
        f"from {', '.join(data.get('sources', []))}; {data.get('heldout_speakers_excluded')} held-out speakers excluded",
        f"- steps: {training.get('steps_total')} run, weights from step {best.get('step')} "
        f"({best.get('monitor')} = {best.get('score')})",
        f"- batch size {training.get('batch_size')}; hyper-parameters: {training.get('hyper_parameters')}",
        f"- wall time: {training.get('wall_time_s', 0) / 3600:.2f} h on {training.get('machine')}",
        "",
        "## Measured quality",
        "Not measured yet: run benchmarks/quality.py and benchmarks/model_card.py.",
        "",
    ]
    if training.get("notes"):
        lines += ["## Notes", training["notes"], ""]
    card = json_path.with_suffix(".md")
    card.write_text("\n".join(lines))
    return card


def export(
    module: L.LightningModule,
    directory: str | Path,
    name: str,
    version: str,
    training: dict,
    json_name: str | None = None,
    pooling: str | None = None,
) -> Path:
    """Write `module.model` as `<directory>/<name>.json` (or `json_name`) + weights + the model card beside the JSON;
    returns the JSON path. QE bundles declare the "robust" conditioning (level- and silence-invariant;
    benchmarks/level_silence.py) and the pooling the checkpoint was selected with (`val_pooling`)."""
    qe = module.model.config.kind == "qe"
    conditioning = "robust" if qe else "paper"
    pooling = pooling or (module.hparams.get("val_pooling", "mean") if qe else "mean")
    json_path = save_bundle(
        module.model.cpu(), directory, name, version, training, conditioning=conditioning, pooling=pooling, json_name=json_name
    )
    write_card(json_path, name, version, training)
    return json_path


def checkpoint_best(path: str) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    best = {"step": int(state.get("global_step", 0)), "monitor": None, "score": None, "checkpoint": Path(path).name}
    for key, value in state.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and value.get("best_model_score") is not None:
            best.update(monitor=value.get("monitor"), score=float(value["best_model_score"]))
    return best


class ExportBundle(L.Callback):
    """At the end of fit, export the best checkpoint (by the checkpoint callback's monitor), or the final weights
    when nothing was monitored."""

    def __init__(self, directory: str, name: str, version: str = "1.0.0", notes: str = ""):
        self.directory, self.name, self.version, self.notes = Path(directory), name, version, notes
        self.started = time.time()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.time()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        ckpt = trainer.checkpoint_callback
        best = {"step": trainer.global_step, "monitor": None, "score": None, "checkpoint": None}
        if ckpt is not None and getattr(ckpt, "best_model_path", ""):
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)
            pl_module.load_state_dict(state["state_dict"])
            best = {
                "step": int(state.get("global_step", trainer.global_step)),
                "monitor": ckpt.monitor,
                "score": None if ckpt.best_model_score is None else float(ckpt.best_model_score),
                "checkpoint": Path(ckpt.best_model_path).name,
            }
        dm = trainer.datamodule
        training = {
            "data": getattr(dm, "summary", {}),
            "steps_total": trainer.global_step,
            "best": best,
            "wall_time_s": round(time.time() - self.started, 1),
            "machine": machine(),
            "hyper_parameters": {k: plain(v) for k, v in pl_module.hparams.items() if not k.startswith("_")},
            "batch_size": dm.hparams.batch_size if dm is not None else None,
            "vqscore_version": vqscore.__version__,
            "notes": self.notes,
        }
        self.write(pl_module, training)

    def write(self, pl_module: L.LightningModule, training: dict) -> None:
        export(pl_module, self.directory, self.name, self.version, training)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Export a recipe checkpoint as a vqscore bundle with its model card.")
    parser.add_argument("checkpoint", help="Lightning .ckpt of a recipe module")
    parser.add_argument("output_dir")
    parser.add_argument("--module", default="recipes.qe.module.QETrainingModule", help="LightningModule class path")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--json-name", help="bundle JSON file name (default NAME.json; NAME-VERSION.json keeps versions apart)")
    parser.add_argument("--run-info", help="JSON with data/steps_total/wall_time_s/machine/batch_size of the run")
    parser.add_argument("--notes", default="")
    parser.add_argument("--pooling", help="pooling the bundle declares (default: the one the checkpoint was selected with)")
    args = parser.parse_args(argv)
    module_path, _, cls_name = args.module.rpartition(".")
    cls = getattr(__import__(module_path, fromlist=[cls_name]), cls_name)
    module = cls.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True)
    training = json.loads(Path(args.run_info).read_text()) if args.run_info else {}
    training.update(
        best=checkpoint_best(args.checkpoint),
        hyper_parameters={k: plain(v) for k, v in module.hparams.items() if not k.startswith("_")},
        vqscore_version=vqscore.__version__,
        notes=args.notes,
    )
    print(export(module, args.output_dir, args.name, args.version, training, json_name=args.json_name, pooling=args.pooling))


if __name__ == "__main__":
    main()
