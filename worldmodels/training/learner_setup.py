"""The learner set up once per run: ``train.compile``, ``train.precision`` and ``train.cuda_graph``
applied to a model before its first update.

It sits above :mod:`worldmodels.training.step` (the update itself) and
:mod:`worldmodels.training.cuda_graph` (the captured update, built from ``step``'s eager one), so
the imports run one way.
"""

from __future__ import annotations

import torch
from torch import nn

from worldmodels.training.cuda_graph import GraphedUpdate, check_graphable
from worldmodels.training.step import Precision, compile_networks


def prepare_learner(cfg, model: nn.Module, device: torch.device | str) -> Precision:
    """Apply ``cfg.train.compile`` to ``model`` and return its update :class:`Precision`, once per run
    (a float16 run on a CPU is refused here, before any episode is collected). On CUDA, cuDNN picks
    its fastest convolution algorithms per shape (``cudnn.benchmark``; training shapes are fixed)."""
    precision = Precision(cfg.train.precision, device)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
    if cfg.train.compile:
        compile_networks(model)
    if cfg.train.cuda_graph:
        check_graphable(model, device, precision)
        precision.graph = GraphedUpdate(model, precision)
    return precision
