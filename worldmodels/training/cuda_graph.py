"""The world-model update as one CUDA graph (``train.cuda_graph``; GPU only).

At DMC batch sizes a GPU spends most of an RSSM update launching small kernels: the scan runs the
GRU cell, the posterior layers and the sampler once per time step (50 steps forward, 50 backward).
Capturing the whole forward + backward + gradient clip once and replaying it turns ~thousands of
launches into one (PyTorch "whole-network capture", ``torch.cuda.graph``).

Why the whole update and not one scan step: a graphed step (``make_graphed_callables``) keeps the
activations of its *last* replay only, so replaying it T times before one backward would give wrong
gradients; and CUDA-graph trees (``torch.compile(mode="reduce-overhead")``) overwrite each step's
outputs on the next replay while the scan still holds them. Capturing all T steps in one graph has
neither problem: every step's activations live in the graph's own memory pool.

Per update:

    static_batch <- batch (in-place copy)     graph.replay()   (loss, grads, clipped grad norm)
    check loss and grad norm on the host      optimizer.step() eagerly (fused Adam)

The finiteness check stays before the optimiser step, so a NaN still stops the run with the last
good parameters (one host sync per update, as the eager path). Requirements, checked in
:func:`check_graphable`: a CUDA device, an RSSM model (PlaNet, DreamerV2, LEXA; PLDM's loss reads
its batch on the host), float32 or bfloat16 (float16's GradScaler decides on the host whether to
step), one process (gradient averaging hooks talk to other ranks during backward), and a fixed batch
shape (the replay's ``[B, T]``; a batch of another shape is refused). The RSSM masks resets at every
step (``RSSM.static_resets``: the same numbers, no host read of ``is_first``).

Checked here only on CPU for what does not need a GPU (the static-reset scan equals the default
one; the refusals); the capture itself and its speed need a GPU (``benchmarks/bench_gpu.py --modes
graph``; ``tests/test_learner.py`` compares graph and eager losses when CUDA is present).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import nn

from worldmodels.core.config import ConfigError
from worldmodels.training.step import _float32, check_finite, eager_gradient_step


def check_graphable(model: nn.Module, device: torch.device | str, precision) -> None:
    """Raise one :class:`ConfigError` sentence when ``train.cuda_graph`` cannot run here."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ConfigError(
            f"train.cuda_graph=true needs a CUDA GPU, but the run is on {device.type}; set train.cuda_graph=false."
        )
    if not hasattr(model, "rssm"):
        raise ConfigError(
            f"train.cuda_graph=true supports the RSSM models (planet, dreamerv2, lexa), not {type(model).__name__}, "
            "whose loss reads its batch on the host; set train.cuda_graph=false."
        )
    if getattr(precision, "scaler", None) is not None:
        raise ConfigError("train.cuda_graph=true works with train.precision=32 or bf16, not 16 (its GradScaler "
                          "decides on the host whether to step).")  # fmt: skip
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        raise ConfigError("train.cuda_graph=true runs in one process only; under torchrun set train.cuda_graph=false.")


class GraphedUpdate:
    """Forward + backward + clip of the world-model loss captured once, replayed per update.

    ``warmup`` eager updates run first on a side stream (as ``torch.cuda.graph`` requires: lazy
    cuBLAS/cuDNN initialisation and the optimizer state must exist before capture); the next call
    captures, and every call from then on copies its batch into the captured one and replays.
    """

    def __init__(self, model: nn.Module, precision, warmup: int = 3):
        self.model, self.precision, self.warmup = model, precision, warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_batch: TensorDict | None = None
        self.static = None  # (LossOutput, grad_norm) of the captured graph
        model.rssm.static_resets = True

    def __call__(self, optimizer: torch.optim.Optimizer, grad_clip: float, batch: TensorDict, index: int):
        """One update on ``batch [B, T]``; returns ``(metrics, LossOutput)`` as ``gradient_step`` does."""
        self.calls += 1
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                result = eager_gradient_step(self.model, optimizer, grad_clip, batch, index, self.precision)
            torch.cuda.current_stream().wait_stream(side)
            return result
        if self.graph is None:
            self._capture(optimizer, grad_clip, batch)
        if batch.batch_size != self.static_batch.batch_size:
            raise ValueError(f"train.cuda_graph replays a graph captured for batch {list(self.static_batch.batch_size)}, "
                             f"got {list(batch.batch_size)}; keep replay.batch_size and replay.sequence_length fixed.")  # fmt: skip
        self.static_batch.update_(batch)
        self.graph.replay()
        out, grad_norm = self.static
        check_finite(out.loss.detach(), "world-model loss", index)
        check_finite(grad_norm, "world-model gradient norm", index)
        optimizer.step()
        # the graph's outputs are overwritten by the next replay: hand out copies
        out = out._replace(loss=out.loss.detach().clone(), metrics=out.metrics.clone(),
                           posterior=out.posterior.clone(), embed=None if out.embed is None else out.embed.clone())  # fmt: skip
        if self.precision.dtype is not None:
            out = _float32(out)
        metrics = {f"train/{k}": v for k, v in out.metrics.items()}
        metrics["train/loss/total"] = out.loss
        metrics["train/grad_norm/model"] = grad_norm.clone()
        return metrics, out

    def _capture(self, optimizer: torch.optim.Optimizer, grad_clip: float, batch: TensorDict) -> None:
        self.model.train()
        self.static_batch = batch.clone()
        optimizer.zero_grad(set_to_none=True)  # grads are then allocated in the graph's pool, written per replay
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            with self.precision.autocast():
                out = self.model.loss(self.static_batch)
            out.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.static = (out, grad_norm)
