"""The score-gated pair (recipes/unet/gated.py): the gate's choice per item, a training step that teaches only the
member the score preferred, and a smoke run of tiny.yaml + tiny-gated.yaml that trains, validates the selection and
each member, and exports one bundle per member."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recipes.unet.gated import ScoreGatedUNets, main, preferred  # noqa: E402
from tests.test_recipe_unet import corpus  # noqa: E402, F401  (the fixture)


def test_preferred_takes_the_highest_finite_value_and_the_first_on_a_tie():
    values = np.array([[0.5, 0.7, np.nan, np.nan, 0.2], [0.6, 0.7, 0.1, np.nan, np.inf]])
    assert preferred(values).tolist() == [1, 0, 1, 0, 0]


class FixedGate:
    """A gate that scores every output of member k with `values[k]` (members are scored in order)."""

    def __init__(self, values: list[float]):
        self.values, self.calls = values, 0

    def vqscore(self, outputs, sr=None):
        value = self.values[self.calls % len(self.values)]
        self.calls += 1
        return [value] * len(outputs)


@pytest.mark.parametrize("winner", [0, 1])
def test_only_the_preferred_member_learns(winner):
    module = ScoreGatedUNets(members=2, channels=(4, 8))
    module._gate = FixedGate([1.0, 0.0] if winner == 0 else [0.0, 1.0])
    module.log_dict = lambda *args, **kwargs: None
    noisy, clean = torch.randn(3, 8000) * 0.1, torch.randn(3, 8000) * 0.1
    module.training_step((noisy, clean), 0).backward()
    for k, member in enumerate(module.members):
        grads = [p.grad for p in member.parameters()]
        if k == winner:
            assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads)
    assert all(m.training for m in module.members)  # scoring ran them in eval mode and put them back


def test_a_gated_ensemble_needs_two_members():
    with pytest.raises(ValueError, match="a gated ensemble needs at least 2 members, got 1"):
        ScoreGatedUNets(members=1, channels=(4, 8))


def test_tiny_gated_recipe_trains_and_exports_each_member(corpus, tmp_path):  # noqa: F811
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    from tests.helpers import tiny_network
    from vqscore.bundle import save_bundle
    from vqscore.enhancers import EnhancerSpec, build_enhancer

    save_bundle(tiny_network("qe"), tmp_path, "qe", "0.0.1", {"source": "test"})
    run = tmp_path / "run"
    qe = str(tmp_path / "qe.json")
    main(
        [
            "fit",
            "--config",
            str(ROOT / "recipes/unet/tiny.yaml"),
            "--config",
            str(ROOT / "recipes/unet/tiny-gated.yaml"),
            f"--data.sources=[{corpus['clean']}]",
            f"--data.noise_root={corpus['noise']}",
            f"--data.rir_root={corpus['rir']}",
            f"--data.noisy_manifest={corpus['manifest']}",
            f"--model.score_model={qe}",
            f"--model.gate_model={qe}",
            f"--trainer.default_root_dir={run}",
            f"--trainer.logger.init_args.save_dir={run}",
            f"--trainer.callbacks.init_args.directory={run / 'bundle'}",
            "--trainer.log_every_n_steps=1",
        ]
    )
    metrics = next(run.rglob("metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    for key in ("val/pesq", "val/pesq_member_0", "val/pesq_member_1", "val/chosen_0", "val/chosen_1", "train/share_0"):
        assert key in header, key
    rows = [dict(zip(header, line.split(","), strict=True)) for line in metrics[1:]]
    shares = [float(r["train/share_0"]) + float(r["train/share_1"]) for r in rows if r["train/share_0"]]
    chosen = [float(r["val/chosen_0"]) + float(r["val/chosen_1"]) for r in rows if r["val/chosen_0"]]
    assert shares and np.allclose(shares, 1.0) and chosen and np.allclose(chosen, 1.0)
    for name in ("tiny-gated-a", "tiny-gated-b"):
        info = json.loads((run / "bundle" / f"{name}.json").read_text())
        assert info["model"]["kind"] == "unet" and info["training"]["steps_total"] == 4
        enhancer = build_enhancer(EnhancerSpec("bundle", {"model": str(run / "bundle" / f"{name}.json")}))
        assert enhancer.name == f"{name}@0.0.1"
