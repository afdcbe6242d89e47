"""Probe decoder: look at a decoder-free model's states by decoding its *frozen* features.

A JEPA such as PLDM (Sobal et al. 2025) has no decoder, so its open-loop predictions cannot be
shown directly. A probe decoder is trained afterwards, on top of the frozen model, to map
``features(observe(pixels))`` back to pixels (the "probing" used to inspect JEPA latents); its
reconstructions of *imagined* states then visualise what the predictor believes. The model's
weights never change: features are computed in eval mode under ``torch.no_grad()`` and the
optimiser holds only the probe's parameters. A probe shows what the features *contain*, not
what the model was trained to reconstruct, so videos made with it are labelled as such.

Example:
    >>> probe = train_probe(model, lambda: replay.sample(16, 8), steps=2000)
    >>> rollout = worldmodels.viz.openloop.openloop(model, batch, probe=probe)
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys
from worldmodels.core.interface import WorldModel
from worldmodels.models.networks import IMAGE_SIZE, ConvDecoder


@contextlib.contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and restore each submodule's mode afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


class _UpsamplingDecoder(nn.Module):
    """Small decoder for any image size: dense -> ``[c, ceil(H/2^k), ceil(W/2^k)]`` -> k x (2x upsampling
    transposed conv) -> 3x3 conv to C channels -> crop to ``[C, H, W]``."""

    def __init__(self, feature_dim: int, image_shape: tuple[int, int, int], depth: int):
        super().__init__()
        c, h, w = image_shape
        self.stages = max(0, min(4, int(math.log2(max(min(h, w), 1) / 4))))  # base side >= 4
        self.base = (math.ceil(h / 2**self.stages), math.ceil(w / 2**self.stages))
        width = self.width0 = 4 * depth
        self.dense = nn.Linear(feature_dim, width * self.base[0] * self.base[1])
        layers: list[nn.Module] = []
        for _ in range(self.stages):
            out = max(width // 2, 8)
            layers += [nn.ConvTranspose2d(width, out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            width = out
        layers.append(nn.Conv2d(width, c, kernel_size=3, padding=1))
        self.convs = nn.Sequential(*layers)
        self.image_shape = (c, h, w)

    def forward(self, features: Tensor) -> Tensor:
        c, h, w = self.image_shape
        x = torch.relu(self.dense(features)).view(-1, self.width0, *self.base)  # [N, c0, h0, w0]
        return self.convs(x)[:, :, :h, :w]  # [N, C, H, W]


class ProbeDecoder(nn.Module):
    """Pixel decoder trained on frozen world-model features; ``[..., F] -> [..., C, H, W]``.

    For 64x64 images it is the model decoders' ``conv_ha`` :class:`~worldmodels.models.networks.ConvDecoder`
    (PlaNet/DreamerV2 architecture); for other sizes (Two Rooms 65x65) a small upsampling
    decoder. Outputs are pixel means in [0, 1] units (unclamped; clamp for display).

    Args:
        feature_dim: ``model.feature_dim``.
        image_shape: ``(C, H, W)`` of the pixels, ``model.image_shape``.
        depth: base channel count (conv_ha: 32).

    Shapes:
        ``[*batch, F] -> [*batch, C, H, W]``.
    """

    def __init__(self, feature_dim: int, image_shape: tuple[int, int, int], depth: int = 32):
        super().__init__()
        self.feature_dim, self.image_shape = int(feature_dim), tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {image_shape}.")
        if self.image_shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
            self.net: nn.Module = ConvDecoder(self.feature_dim, self.image_shape, depth)
        else:
            self.net = _UpsamplingDecoder(self.feature_dim, self.image_shape, depth)

    def forward(self, features: Tensor) -> Tensor:
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"ProbeDecoder expects features [..., {self.feature_dim}], got {list(features.shape)}.")
        batch = features.shape[:-1]
        x = self.net(features.reshape(-1, self.feature_dim)) + 0.5  # [N, C, H, W]; mean image ~ grey
        return x.reshape(*batch, *self.image_shape)


@torch.no_grad()
def frozen_features(model: WorldModel, batch: TensorDict) -> Tensor:
    """``features(observe(batch))`` with no graph to the model: ``[B, T, F]`` (model in eval mode)."""
    with evaluation_mode(model):
        post = model.observe(batch, batch[keys.PREV_ACTION], batch[keys.IS_FIRST])  # [B,T]; reads its observation keys
        return model.features(post).detach()  # [B,T,F]


def probe_loss(probe: ProbeDecoder, model: WorldModel, batch: TensorDict) -> Tensor:
    """Mean squared pixel error (pixels in [0, 1]) of the probe on a ``[B, T]`` batch; grads reach the probe only."""
    batch = batch.to(next(probe.parameters()).device)
    target = batch[keys.PIXELS].float() / 255.0  # [B,T,C,H,W]
    return F.mse_loss(probe(frozen_features(model, batch)), target)


def train_probe(
    model: WorldModel,
    sample_batch_fn: Callable[[], TensorDict],
    steps: int = 2000,
    lr: float = 1e-3,
    probe: ProbeDecoder | None = None,
    progress: bool = True,
    grad_clip: float = 100.0,
) -> ProbeDecoder:
    """Fit a :class:`ProbeDecoder` to reconstruct frames from the frozen model's posterior features.

    ``min_probe E || probe(sg(features(observe(o_{1:T})))) - o_{1:T} ||^2`` with Adam over the
    probe's parameters only; the model is used in eval mode under ``no_grad`` (its weights,
    buffers and train/eval mode are left exactly as they were).

    Args:
        model: any :class:`WorldModel` (typically one with ``has_decoder = False``).
        sample_batch_fn: returns a ``[B, T]`` batch with ``PIXELS``, ``PREV_ACTION``, ``IS_FIRST``.
        steps: optimiser steps.
        lr: Adam learning rate.
        probe: continue training this probe (default: a fresh one on the model's device).
        progress: show a tqdm bar with the loss.
        grad_clip: gradient-norm clip of the probe's update.

    Returns:
        the trained probe, in eval mode.
    """
    if steps < 0 or lr <= 0:
        raise ValueError(f"train_probe needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}.")
    if probe is None:
        probe = ProbeDecoder(model.feature_dim, model.image_shape).to(model.device)
    model_params = {id(p) for p in model.parameters()}
    if any(id(p) in model_params for p in probe.parameters()):
        raise ValueError("the probe shares parameters with the model; a probe must be a separate module.")
    optimiser = torch.optim.Adam(probe.parameters(), lr=lr)
    from tqdm.auto import tqdm

    probe.train()
    bar = tqdm(range(steps), desc="probe", disable=not progress, leave=False)
    for _ in bar:
        loss = probe_loss(probe, model, sample_batch_fn())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(probe.parameters(), grad_clip)
        optimiser.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return probe.eval()
