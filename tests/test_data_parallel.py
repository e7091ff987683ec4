"""Data-parallel training keeps one codebook: rank 0's k-means init is broadcast and EMA steps sum all ranks' codes,
so two gloo processes end with the codebook one process makes from the whole batch; and the recipe's DDP config
trains with 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vqscore.quantizer import VectorQuantizer

ROOT = Path(__file__).resolve().parents[1]


def frames(rank: int) -> torch.Tensor:
    return torch.randn(40, 8, generator=torch.Generator().manual_seed(100 + rank))


def run_rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)  # different k-means seeds: only rank 0's init may survive
    q = VectorQuantizer(16, 8, "cosine", decay=0.8)
    q.init_from(q.transform(frames(rank)))
    q.train()
    for step in range(3):
        z = frames(10 * step + rank)[None]
        q(z, update=True)
    torch.save({k: v.clone() for k, v in q.state_dict().items()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_keep_one_codebook_equal_to_the_global_batch(tmp_path):
    port = 29_500 + os.getpid() % 1000
    mp.start_processes(run_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method="spawn")
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    # one process, the whole batch: rank 0's init, then EMA on both ranks' frames together
    torch.manual_seed(0)
    single = VectorQuantizer(16, 8, "cosine", decay=0.8)
    single.init_from(single.transform(frames(0)))
    single.train()
    for step in range(3):
        z = torch.cat([frames(10 * step), frames(10 * step + 1)])[None]
        single(z, update=True)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(states[0][key], value, rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_recipe_trains_with_ddp_on_two_cpu_processes(tmp_path):
    pytest.importorskip("lightning")
    import numpy as np
    from test_recipe_qe import write_clean_corpus  # the same generated speech as the single-process smoke run

    clean = write_clean_corpus(tmp_path / "clean", np.random.default_rng(0))
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "recipes.qe.train", "fit",
        "--config", "recipes/qe/tiny.yaml", "--config", "recipes/qe/ddp.yaml",
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.max_steps=4", "--trainer.val_check_interval=2",
        "--data.batch_size=2", "--data.num_workers=0", f"--data.sources=[{clean}]",
        f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
        f"--trainer.callbacks.init_args.directory={run / 'bundle'}",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    import vqscore

    model = vqscore.load(run / "bundle" / "tiny-qe.json")
    assert model.network.quantizer.initialized.item()
