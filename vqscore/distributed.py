"""`vqscore score --distributed N`: the same scoring spread over N processes with Lightning's `Trainer.predict`.

Imported only by that command (and its tests): `import vqscore` never imports Lightning, which stays an optional
dependency (the `train` extra).

How it runs:
- strategy "ddp" with its subprocess launcher: the command's process is rank 0 and Lightning starts ranks
  1..N-1 by re-running the same command line (`python -m vqscore score ...` or the `vqscore` script) with
  LOCAL_RANK set; the process group uses gloo on CPU and NCCL on GPUs (`--device cuda`: one GPU per rank);
- every rank walks the same inputs, reads the same finished rows (the output and any shards left by a killed
  run) and plans the same length-sorted batches; rank r takes batches r, r + N, r + 2N, ... (Lightning's
  distributed sampler is off: it would pad ranks to equal length by scoring some files twice);
- each rank decodes with its own worker processes and writes its rows to its own shard beside the output
  (`.OUT.shardR.csv`), with the crash-safety rules of `vqscore.results` (one write per row, fsync per batch,
  a partial last line cut off before appending);
- at the end all ranks meet at a barrier and rank 0 merges the shards into OUT (rows already in OUT first, each
  path once, in file order), atomically, and deletes the shards.
With `--windows WOUT` each rank also writes the window rows of its files to its own shard of WOUT (before the files'
main rows); rank 0 folds them into WOUT, keeping only files that have a main row, each (path, window) once.
Resume is the single-process rule: files with a row in OUT or in any shard are skipped, so a killed distributed run
(or a distributed run after a killed single-process one, and vice versa) can simply be started again.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.strategies import DDPStrategy

from .api import load
from .corpus import ResultAssembler, default_workers, make_loader, plan_paths, score_item
from .engine import DEFAULT_BATCH_FRAMES, GPU_BATCH_FRAMES, physical_cores
from .longform import DEFAULT_POLICY, LongformPolicy
from .models.base import VQVAE
from .results import (
    ResultsFile,
    Stamp,
    WindowsFile,
    check_stamp,
    complete_text,
    fold_window_rows,
    is_jsonl,
    merge_shards,
    read_done,
    row_values,
    shard_path,
    shard_paths,
    truncate_partial_line,
    window_rows,
)
from .scoring import engine_for


class ScoringModule(L.LightningModule):
    """Wraps a network for `Trainer.predict`: each predict step scores one decoded batch and returns its rows."""

    def __init__(
        self, network: VQVAE, with_decoder: bool = False, threads: int | None = None, pooling: str = "mean", mos_scale=None
    ):
        super().__init__()
        self.network = network.eval()
        self.pooling, self.mos_scale = pooling, mos_scale
        self.with_decoder = with_decoder
        self.threads = threads
        self.assembler: ResultAssembler | None = None

    def on_predict_start(self) -> None:
        if self.device.type == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        self.assembler = ResultAssembler(engine_for(self.network), self.pooling)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # the engine moves the spectrum itself (non-blocking from pinned memory on CUDA)

    def predict_step(self, item, batch_idx: int = 0) -> dict[str, list[dict]]:
        """{"rows": the batch's table rows, "windows": the per-window rows of its files scored in windows}."""
        engine = engine_for(self.network)
        results = self.assembler.add(item, score_item(engine, item, self.with_decoder))
        return {"rows": [row_values(r, self.mos_scale) for r in results], "windows": [w for r in results for w in window_rows(r)]}


class ShardWriter(BasePredictionWriter):
    """Appends each batch's rows to this rank's shard (window rows first, to the window table's shard); at the end
    rank 0 merges the shards into the output and the window table."""

    def __init__(
        self, output: Path, order: Sequence[str], stamp: Stamp, windows: Path | None = None, done: Sequence[str] = ()
    ):
        super().__init__(write_interval="batch")
        self.output, self.order, self.stamp = Path(output), list(order), stamp
        self.windows, self.done = (Path(windows) if windows else None), list(done)
        self.table: ResultsFile | None = None
        self.window_table: WindowsFile | None = None
        self.failed = 0

    def setup(self, trainer, pl_module, stage) -> None:
        # every rank read the finished rows before the process group formed, so cutting a partial line now is safe
        self.table = ResultsFile(shard_path(self.output, trainer.global_rank), resume=True, stamp=self.stamp)
        if self.windows is not None:  # window rows of files without a main row are dropped: they are scored again
            self.window_table = WindowsFile(shard_path(self.windows, trainer.global_rank), resume=True, keep=self.done)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if self.window_table is not None and prediction["windows"]:
            self.window_table.write(prediction["windows"])
        if prediction["rows"]:
            self.table.write(prediction["rows"])

    def on_predict_end(self, trainer, pl_module) -> None:
        self.table.close()
        if self.window_table is not None:
            self.window_table.close()
        trainer.strategy.barrier("vqscore-shards-written")
        if trainer.global_rank == 0:
            truncate_partial_line(self.output) if self.output.exists() else None
            merge_shards(self.output, self.order)
            if self.windows is not None:
                keep = read_done(self.output, is_jsonl(self.output))
                fold_window_rows(self.windows, self.order, keep, shard_paths(self.windows))
        trainer.strategy.barrier("vqscore-merged")


def finished_rows(output: Path, stamp: Stamp) -> dict[str, bool]:
    """Rows already written, in the output and in shards of an earlier run: path -> failed. `ResultsError` if any
    of them came from another model or scoring."""
    jsonl = is_jsonl(output)
    done = read_done(output, jsonl)
    for table in [output, *shard_paths(output)]:
        check_stamp(table, complete_text(table), jsonl, stamp)
    for shard in shard_paths(output):
        for path, failed in read_done(shard, jsonl).items():
            done.setdefault(path, failed)
    return done


def run(
    model_name: str,
    files: Sequence[str],
    output: str | os.PathLike,
    processes: int,
    *,
    device: str | None = None,
    overwrite: bool = False,
    batch_frames: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    policy: LongformPolicy = DEFAULT_POLICY,
    windows: str | os.PathLike | None = None,
    conditioning: str | None = None,
    pooling: str | None = None,
) -> tuple[int, int, int, int]:
    """Score `files` into `output` with `processes` DDP ranks. Must run as a script's main code path (the ddp
    launcher re-runs the command line for the other ranks). Returns (rank, scored, failed, skipped)."""
    output = Path(output)
    for name in ("lightning.pytorch", "lightning.fabric"):  # no banner lines from every rank
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*Couldn't infer the batch indices.*")
    warnings.filterwarnings("ignore", message=r".*treespec.*", category=Warning)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if overwrite and rank == 0 and "LOCAL_RANK" not in os.environ:
        tables = [output] + ([Path(windows)] if windows else [])
        for stale in [*tables, *(shard for table in tables for shard in shard_paths(table))]:
            stale.unlink(missing_ok=True)
    gpu = device is not None and torch.device(device).type == "cuda"
    model = load(model_name, device="cpu", conditioning=conditioning, pooling=pooling)
    model.policy = policy
    stamp = Stamp(model.tag, model.scoring)
    done = finished_rows(output, stamp)
    todo = [f for f in files if f not in done]
    per_rank_threads = max(1, (threads or physical_cores()) // processes)
    module = ScoringModule(
        model.network, threads=None if gpu else per_rank_threads, pooling=model.pooling, mos_scale=model.mos_scale
    )
    engine = engine_for(model.network)
    batch_frames = batch_frames or (GPU_BATCH_FRAMES if gpu else DEFAULT_BATCH_FRAMES)
    tasks = plan_paths(engine, todo, batch_frames, policy)
    trainer = L.Trainer(
        accelerator="gpu" if gpu else "cpu",
        devices=processes,
        num_nodes=1,
        strategy=DDPStrategy(process_group_backend="nccl" if gpu else "gloo"),
        callbacks=[ShardWriter(output, files, stamp, windows, done)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        inference_mode=True,
    )
    rank = trainer.global_rank
    mine = tasks[rank :: trainer.world_size]
    if workers is None:
        workers = max(1, default_workers(torch.device("cuda" if gpu else "cpu")) // processes)
    loader = make_loader(
        engine,
        mine,
        with_decoder=False,
        batch_frames=batch_frames,
        policy=policy,
        num_workers=workers,
        pin_memory=gpu,
        conditioning=model.conditioning,
    )
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    final = read_done(output, is_jsonl(output))
    failed = sum(1 for f in files if final.get(f))
    return rank, len(files) - failed, failed, len(files) - len(todo)


def score_distributed(args: argparse.Namespace, files: Sequence[str], policy: LongformPolicy = DEFAULT_POLICY) -> int:
    """The `vqscore score --distributed N` command; exit status like the single-process command (rank 0)."""
    rank, scored, failed, skipped = run(
        args.model,
        files,
        args.output,
        args.distributed,
        device=args.device,
        overwrite=args.overwrite,
        batch_frames=args.batch_frames,
        workers=args.workers,
        threads=args.threads,
        policy=policy,
        windows=args.windows,
        conditioning=args.conditioning,
        pooling=args.pooling,
    )
    if rank == 0:
        note = f" ({skipped} already in {args.output})" if skipped else ""
        print(
            f"vqscore score: {scored} scored, {failed} failed{note} -> {args.output} [{args.distributed} processes]",
            file=sys.stderr,
        )
    return 1 if failed else 0
