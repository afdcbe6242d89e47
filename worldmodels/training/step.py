"""One learner update, shared by the online and the offline loop.

    batch = store.sample(B, T)                         # replay or offline dataset: one contract
    out = model.loss(batch) -> backward -> clip -> step    # NaN/inf stops *before* the step
    behaviour.update(out)                              # actor-critic / LEXA; absent for planners

Also here: the stop request that turns Ctrl-C / SIGTERM into a flag the loops check between
updates, the interrupt that names the run to resume, and the averaging of logged metrics.

GPU-ready switches (``train.compile``, ``train.precision``, ``train.cuda_graph``; :func:`prepare_learner`
applies them once per run): networks compiled in place (:func:`compile_networks`), the loss under
autocast (:class:`Precision`: float16 with a GradScaler as DreamerV2's ``precision: 16``, or bfloat16),
the whole update replayed as one CUDA graph (``training/cuda_graph.py``).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import torch
from tensordict import TensorDict
from torch import nn

from worldmodels.core.config import ConfigError


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good state was checkpointed."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM ended a training run; carries ``run_dir`` so the CLI can say what to resume."""

    def __init__(self, run_dir, message: str = "training interrupted"):
        super().__init__(message)
        self.run_dir = run_dir


@contextmanager
def interrupts_name(run_dir):
    """Re-raise any KeyboardInterrupt inside as :class:`RunInterrupted` naming ``run_dir``."""
    try:
        yield
    except RunInterrupted:
        raise
    except KeyboardInterrupt as err:
        raise RunInterrupted(run_dir, str(err) or "training interrupted") from err


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag that the loops check between updates and episodes.

    Ctrl-C (or a scheduler's SIGTERM) then checkpoints the run at a consistent point -- never in the
    middle of an optimiser step -- and ends it with ``KeyboardInterrupt``; a second Ctrl-C stops at
    once. Outside the main thread (where handlers cannot be installed) it is a no-op flag.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def check_finite(value: torch.Tensor, what: str, update: int) -> None:
    """Raise :class:`TrainingDiverged` naming ``what`` when ``value`` is NaN or infinite."""
    if not torch.isfinite(value):
        raise TrainingDiverged(
            f"The {what} became {value.item()} at update {update}; the run stopped and the last good "
            "state is in checkpoints/latest.pt. Lower model.learning_rate or model.grad_clip and resume."
        )


class Precision:
    """Mixed precision of the world-model update: autocast dtype (None = float32) and, for float16, a
    GradScaler (Micikevicius et al. 2018; DreamerV2 ``precision: 16`` = Keras ``mixed_float16`` with
    loss scaling).

    Float16 overflows in a gradient make the scaler skip that optimiser step and halve its scale, as
    Keras' LossScaleOptimizer does; a non-finite *loss* still stops the run. The scaler's state is not
    checkpointed: a resumed run starts again from scale 2**16 (a few skipped steps at most).
    """

    DTYPES = {32: None, 16: torch.float16, "bf16": torch.bfloat16}

    def __init__(self, precision, device: torch.device | str = "cpu"):
        device = torch.device(device)
        if precision not in self.DTYPES:
            raise ConfigError(f"Invalid value {precision!r} for 'train.precision': must be one of 32, 16, 'bf16'.")
        if precision == 16 and device.type != "cuda":
            raise ConfigError(
                f"train.precision=16 needs a CUDA GPU (float16 autocast with a GradScaler), but the run is on "
                f"{device.type}; use train.precision=bf16 or 32 there."
            )
        self.precision = precision
        self.device_type = device.type
        self.dtype = self.DTYPES[precision]
        self.scaler = torch.amp.GradScaler(self.device_type) if precision == 16 else None
        self.graph = None
        """the update's CUDA graph (``train.cuda_graph``; :class:`~worldmodels.training.cuda_graph.GraphedUpdate`),
        set by :func:`prepare_learner`; None = eager updates"""

    def autocast(self):
        """Autocast context for the forward pass (disabled at float32)."""
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


FLOAT32 = Precision(32)
"""Plain float32 updates (the default)."""


def compile_networks(module: nn.Module) -> list[str]:
    """``torch.compile`` each network of ``module`` in place (``nn.Module.compile``: parameters and
    ``state_dict`` keys unchanged, so checkpoints do not notice); returns the compiled names.

    A network is a submodule with its own ``forward`` that is not a single torch.nn op (Linear, ReLU,
    GRUCell: nothing to fuse): the encoder, decoder, MLP heads, ``prior_net`` and the LayerNorm-GRU
    cell. Modules without a ``forward`` (the RSSM, whose scan is a Python loop over time) are searched
    inside. Each compiled graph is small and reused at every step of the scan, so compile time stays
    in minutes, where compiling the whole unrolled loss took 150 s at a 6-step toy size on this CPU.
    """
    compiled = []

    def visit(parent: nn.Module, prefix: str) -> None:
        for name, child in parent.named_children():
            path = f"{prefix}{name}"
            cls = type(child)
            own_forward = cls.forward is not nn.Module.forward
            single_op = cls.__module__.startswith("torch.nn.modules") and not isinstance(child, nn.Sequential)
            if own_forward and not single_op and any(True for _ in child.parameters()):
                child.compile()
                compiled.append(path)
            elif not own_forward:
                visit(child, path + ".")

    visit(module, "")
    return compiled


def _float32(out):
    """``out`` with its posterior and embedding in float32 (autocast leaves them in half precision),
    so the behaviour learner runs in float32."""
    posterior = out.posterior.apply(lambda x: x.float() if x.is_floating_point() else x)
    embed = None if out.embed is None else out.embed.float()
    return out._replace(posterior=posterior, embed=embed)


def gradient_step(model, optimizer, grad_clip: float, batch: TensorDict, index: int, precision: Precision = FLOAT32):
    """One world-model gradient step on a ``[B, T]`` batch; returns ``(metrics, LossOutput)``.

    Non-finite loss or gradient norm raises :class:`TrainingDiverged` *before* the optimiser
    step, so the parameters stay at their last good values. Under ``precision`` the loss runs in
    autocast; with float16's GradScaler a non-finite gradient skips the step instead (loss scaling).
    With ``precision.graph`` (``train.cuda_graph``) the update replays its CUDA graph instead.
    """
    if precision.graph is not None:
        return precision.graph(optimizer, grad_clip, batch, index)
    return eager_gradient_step(model, optimizer, grad_clip, batch, index, precision)


def eager_gradient_step(model, optimizer, grad_clip: float, batch: TensorDict, index: int,
                        precision: Precision = FLOAT32):  # fmt: skip
    """:func:`gradient_step` run op by op (also the CUDA graph's warm-up)."""
    model.train()
    with precision.autocast():
        out = model.loss(batch)
    check_finite(out.loss.detach(), "world-model loss", index)
    optimizer.zero_grad(set_to_none=True)
    scaler = precision.scaler
    if scaler is None:
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        check_finite(grad_norm, "world-model gradient norm", index)
        optimizer.step()
    else:
        scaler.scale(out.loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)  # skipped when the unscaled gradients hold inf/NaN
        scaler.update()
    if precision.dtype is not None:
        out = _float32(out)
    metrics = {f"train/{k}": v for k, v in out.metrics.items()}
    metrics["train/loss/total"] = out.loss.detach()
    metrics["train/grad_norm/model"] = grad_norm
    if scaler is not None:
        metrics["train/loss_scale"] = torch.as_tensor(scaler.get_scale())
    return metrics, out


def learner_update(cfg, model, optimizer, behaviour, store, index: int, precision: Precision = FLOAT32) -> dict:
    """Sample ``cfg.replay.batch_size`` x ``cfg.replay.sequence_length`` windows from ``store``, update
    the world model (in ``precision``, from :func:`prepare_learner`), then the behaviour learner (if
    any, float32) from the batch's :class:`LossOutput`.

    Returns:
        ``{"train/...": scalar tensor}`` metrics of both updates.
    """
    batch = store.sample(cfg.replay.batch_size, cfg.replay.sequence_length)  # [B,T]
    metrics, out = gradient_step(model, optimizer, cfg.model.grad_clip, batch, index, precision)
    if behaviour is not None:
        metrics.update({f"train/{k}": v for k, v in behaviour.update(out).items()})
    return metrics


def mean_metrics(history: list[dict]) -> dict:
    """Average lists of metric dicts (tensors or floats) into floats, one sync at the end."""
    if not history:
        return {}
    out = {}
    for name in history[0]:
        values = torch.stack([torch.as_tensor(h[name], dtype=torch.float32).detach().cpu() for h in history])
        out[name] = float(values.mean())
    return out


def make_model_optimizer(model_cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The world-model optimiser from the model config's ``learning_rate``, ``adam_eps``, ``weight_decay``.

    Adam; with ``weight_decay`` > 0, DreamerV2's decoupled decay ``w <- (1 - wd) w`` per update,
    which is AdamW with ``weight_decay = wd / lr`` (AdamW decays by ``lr * weight_decay``).
    On CUDA the fused implementation (one kernel for all parameters) is used; same maths and state.
    """
    lr, eps, wd = model_cfg.learning_rate, model_cfg.adam_eps, model_cfg.weight_decay
    fused = {"fused": True} if all(p.is_cuda for p in model.parameters()) else {}
    if wd > 0:
        return torch.optim.AdamW(model.parameters(), lr, eps=eps, weight_decay=wd / lr, **fused)
    return torch.optim.Adam(model.parameters(), lr, eps=eps, **fused)
