"""One learner update, shared by the online and the offline loop.

    batch = store.sample(B, T)                         # replay or offline dataset: one contract
    out = model.loss(batch) -> backward -> clip -> step    # NaN/inf stops *before* the step
    behaviour.update(out)                              # actor-critic / LEXA; absent for planners

Also here: the stop request that turns Ctrl-C / SIGTERM into a flag the loops check between
updates, the interrupt that names the run to resume, and the averaging of logged metrics.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import torch
from tensordict import TensorDict


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


def gradient_step(model, optimizer, grad_clip: float, batch: TensorDict, index: int):
    """One world-model gradient step on a ``[B, T]`` batch; returns ``(metrics, LossOutput)``.

    Non-finite loss or gradient norm raises :class:`TrainingDiverged` *before* the optimiser
    step, so the parameters stay at their last good values.
    """
    model.train()
    out = model.loss(batch)
    check_finite(out.loss.detach(), "world-model loss", index)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    check_finite(grad_norm, "world-model gradient norm", index)
    optimizer.step()
    metrics = {f"train/{k}": v for k, v in out.metrics.items()}
    metrics["train/loss/total"] = out.loss.detach()
    metrics["train/grad_norm/model"] = grad_norm
    return metrics, out


def learner_update(cfg, model, optimizer, behaviour, store, index: int) -> dict:
    """Sample ``cfg.replay.batch_size`` x ``cfg.replay.sequence_length`` windows from ``store``, update
    the world model, then the behaviour learner (if any) from the batch's :class:`LossOutput`.

    Returns:
        ``{"train/...": scalar tensor}`` metrics of both updates.
    """
    batch = store.sample(cfg.replay.batch_size, cfg.replay.sequence_length)  # [B,T]
    metrics, out = gradient_step(model, optimizer, cfg.model.grad_clip, batch, index)
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
    """
    lr, eps, wd = model_cfg.learning_rate, model_cfg.adam_eps, model_cfg.weight_decay
    if wd > 0:
        return torch.optim.AdamW(model.parameters(), lr, eps=eps, weight_decay=wd / lr)
    return torch.optim.Adam(model.parameters(), lr, eps=eps)
