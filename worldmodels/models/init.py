"""Parameter initialisation: PyTorch's defaults or the reference TF code's (``model.init``).

``reference`` reproduces what the TF implementations of PlaNet, DreamerV2 and LEXA get from their
layers' defaults:

* ``Linear`` / ``Conv2d`` / ``ConvTranspose2d``: Glorot-uniform kernels,
  ``U(-sqrt(6 / (fan_in + fan_out)), +...)`` with fans counting the receptive field, and zero biases
  (Keras ``Dense`` / ``Conv2D`` / ``Conv2DTranspose`` defaults in DreamerV2 ``common/nets.py`` and LEXA;
  TF1 ``tf.layers.dense`` / ``conv2d`` take ``tf.get_variable``'s default Glorot-uniform in PlaNet).
  PyTorch's default is Kaiming-uniform with ``a = sqrt(5)``, i.e. ``U(-1/sqrt(fan_in), +...)``, for
  weights *and* biases.
* DreamerV2's GRU (``nets.py::GRUCell``) is one Keras ``Dense(3 * size)`` on ``[x, h]``, not a Keras
  ``GRUCell``: its kernel is Glorot-uniform too (no orthogonal recurrent kernel), and with LayerNorm it
  has no bias. Our :class:`~worldmodels.models.rssm.LayerNormGRUCell` holds exactly that ``nn.Linear``.
* PlaNet's GRU is TF1 ``tf.contrib.rnn.GRUBlockCell`` (``planet/models/rssm.py``): Glorot-uniform
  kernels of shape ``[I + H, 2H]`` (reset and update gates) and ``[I + H, H]`` (candidate), gate bias
  1.0, candidate bias 0. ``torch.nn.GRUCell`` splits each kernel into ``weight_ih`` / ``weight_hh``; both
  are drawn with the bound of the joint TF kernel, the gate bias goes into ``bias_ih`` (``bias_hh`` 0).
* ``LayerNorm``: scale 1, offset 0 (the same in both frameworks).

PLDM's reference is PyTorch (vladisai/PLDM), so PLDM keeps PyTorch's defaults and has no option.
``benchmarks/bench_init.py`` measures the two schemes against each other.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INIT_SCHEMES = ("torch", "reference")


@torch.no_grad()
def _glorot_gru_cell(cell: nn.GRUCell) -> None:
    """TF1 ``GRUBlockCell`` initialisation on a ``torch.nn.GRUCell`` (gate order r, z, n in both)."""
    i, h = cell.input_size, cell.hidden_size
    gate = math.sqrt(6.0 / ((i + h) + 2 * h))  # joint kernel [I+H, 2H]
    cand = math.sqrt(6.0 / ((i + h) + h))  # joint kernel [I+H, H]
    for weight in (cell.weight_ih, cell.weight_hh):
        weight[: 2 * h].uniform_(-gate, gate)
        weight[2 * h :].uniform_(-cand, cand)
    if cell.bias:
        cell.bias_ih.zero_()
        cell.bias_ih[: 2 * h].fill_(1.0)
        cell.bias_hh.zero_()


@torch.no_grad()
def initialize(module: nn.Module, scheme: str = "reference") -> nn.Module:
    """Initialise every layer of ``module`` in place with ``scheme`` (module docstring); returns ``module``.

    ``torch`` leaves the parameters as PyTorch created them. Draws from the global torch RNG, so a
    seeded model is reproducible.

    Raises:
        ValueError: unknown scheme.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"Unknown init scheme {scheme!r}; allowed: {', '.join(INIT_SCHEMES)}.")
    if scheme == "torch":
        return module
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                layer.bias.zero_()
        elif isinstance(layer, nn.GRUCell):
            _glorot_gru_cell(layer)
        elif isinstance(layer, nn.LayerNorm) and layer.elementwise_affine:
            layer.weight.fill_(1.0)
            if layer.bias is not None:
                layer.bias.zero_()
    return module


__all__ = ["initialize", "INIT_SCHEMES"]
