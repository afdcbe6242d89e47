"""benchmarks/bench_dreamer.py: ours and torchrl's Dreamer updates are built at equal sizes and run."""

import math

import pytest
import torch

from benchmarks import bench_dreamer as bd
from worldmodels.core.config import ActorCriticConfig, DreamerConfig

CPU = torch.device("cpu")
TINY = DreamerConfig(deter_dim=16, hidden_dim=16, stoch_dim=4, classes=4, cnn_depth=4, mlp_layers=1, mlp_units=16)
AC = ActorCriticConfig(horizon=3, layers=2, units=16)


def _changes(module: torch.nn.Module, update) -> bool:
    before = [p.detach().clone() for p in module.parameters()]
    loss = update()
    assert math.isfinite(loss)
    return all(not torch.equal(a, p) for a, p in zip(before, module.parameters()))


def test_dreamer_dims_give_torchrl_the_categorical_feature_width():
    dims = bd.dreamer_dims(TINY)
    assert (dims.deter, dims.stoch, dims.hidden, dims.cnn) == (16, 16, 16, 4)
    assert (dims.reward_layers, dims.reward_units) == (1, 16)


def test_actor_critic_updates_have_equal_sizes_and_train():
    torch.manual_seed(0)
    ours, ours_update = bd.build_ours_ac(TINY, AC, 2, CPU, 2, 3)
    theirs, theirs_update = bd.build_torchrl_ac(bd.dreamer_dims(TINY), AC, 2, CPU, 2, 3)
    # actor (F -> 2A) and critic (F -> 1), 2 x 16 hidden on both sides: identical parameter counts
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    assert _changes(ours, ours_update)
    assert _changes(theirs, theirs_update)


def test_world_model_updates_train():
    torch.manual_seed(0)
    ours, ours_update = bd.build_ours_wm(TINY, 2, CPU, 2, 3)
    theirs, theirs_update = bd.build_torchrl_wm(bd.dreamer_dims(TINY), 100.0, 2, CPU, 2, 3)
    assert _changes(ours.decoder, ours_update)
    assert any(p.grad is not None for p in theirs.parameters()) is False  # nothing before the first update
    theirs_update()
    assert all(p.grad is not None for p in theirs.parameters())


def test_ratio_is_median_of_per_round_ratios():
    assert bd.ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0]) == 3.0


def test_unknown_row_is_rejected():
    with pytest.raises(ValueError, match="unknown row"):
        bd.row_builders("wm-lexa", "cpu", 6, CPU)
