"""``model.init``: the reference (TF) initialisation against PyTorch's defaults."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from worldmodels.core.config import ConfigError, DreamerConfig, PlaNetConfig, load_config
from worldmodels.models.dreamer import DreamerV2
from worldmodels.models.init import initialize
from worldmodels.models.planet import PlaNet
from worldmodels.models.rssm import LayerNormGRUCell


def glorot_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_dense_and_conv_layers_get_glorot_kernels_and_zero_biases():
    torch.manual_seed(0)
    dense, conv, deconv = nn.Linear(300, 200), nn.Conv2d(32, 64, 4), nn.ConvTranspose2d(64, 32, 5)
    initialize(nn.Sequential(dense, conv, deconv), "reference")
    for layer, fan_in, fan_out in [(dense, 300, 200), (conv, 32 * 16, 64 * 16), (deconv, 64 * 25, 32 * 25)]:
        bound = glorot_bound(fan_in, fan_out)
        w = layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound  # uniform filling its range
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.03 * bound  # std of U(-b, b)
        assert torch.count_nonzero(layer.bias) == 0
    torch.manual_seed(0)
    default = nn.Linear(300, 200)
    assert default.bias.abs().max() > 0 and default.weight.abs().max() <= 1 / math.sqrt(300)  # PyTorch's own


def test_gru_cells_follow_their_tf_reference():
    torch.manual_seed(0)
    cell = nn.GRUCell(200, 100)  # PlaNet: TF1 GRUBlockCell
    initialize(cell, "reference")
    gate, cand = glorot_bound(300, 200), glorot_bound(300, 100)
    for weight in (cell.weight_ih, cell.weight_hh):
        assert weight[:200].abs().max() <= gate and weight[:200].abs().max() > 0.95 * gate
        assert weight[200:].abs().max() <= cand and weight[200:].abs().max() > 0.95 * cand
    assert torch.all(cell.bias_ih[:200] == 1.0) and torch.count_nonzero(cell.bias_ih[200:]) == 0
    assert torch.count_nonzero(cell.bias_hh) == 0
    ln = LayerNormGRUCell(200, 100)  # DreamerV2: one Dense(3 * size) on [x, h], no bias
    initialize(ln, "reference")
    bound = glorot_bound(300, 300)
    assert ln.linear.weight.abs().max() <= bound and ln.linear.weight.abs().max() > 0.95 * bound
    assert torch.all(ln.norm.weight == 1) and torch.count_nonzero(ln.norm.bias) == 0


@pytest.mark.parametrize("cls,config", [(PlaNet, PlaNetConfig), (DreamerV2, DreamerConfig)])
def test_models_apply_the_configured_scheme(cls, config):
    small = dict(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4)
    torch.manual_seed(3)
    torch_model = cls(config(**small, init="torch"), action_dim=2)
    torch.manual_seed(3)
    plain = cls(config(**small), action_dim=2) if config().init == "torch" else None
    if plain is not None:  # "torch" leaves PyTorch's parameters untouched
        assert all(torch.equal(a, b) for a, b in zip(torch_model.parameters(), plain.parameters()))
    ref = cls(config(**small, init="reference"), action_dim=2)
    linears = [m for m in ref.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert linears and all(m.bias is None or torch.count_nonzero(m.bias) == 0 for m in linears)
    assert any(m.bias is not None and torch.count_nonzero(m.bias) > 0 for m in torch_model.modules()
               if isinstance(m, nn.Linear))  # fmt: skip


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="allowed: torch, reference"):
        initialize(nn.Linear(2, 2), "keras")
    with pytest.raises(ConfigError, match="model.init"):
        load_config(None, ["model.init=glorot"])
