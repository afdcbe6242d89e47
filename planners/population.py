"""Population helpers shared by the sampling planners (CEM, MPPI).

A planner for ``B`` states keeps ``K`` candidate action sequences per state, ``[B, K, H, A]``,
and evaluates all of them with ONE ``model.imagine`` call on ``N = B * K`` rows (row-major:
rows ``b*K .. b*K+K-1`` belong to state ``b``, the rule the goal objectives follow).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core.interface import WorldModel


def expand_states(state: TensorDict, population: int) -> TensorDict:
    """Repeat each state ``population`` times without a Python loop.

    Shapes: state [B] -> [B * population] (row b*K + k is a copy of state b).
    """
    b = state.batch_size[0]
    return state.unsqueeze(1).expand(b, population).reshape(b * population)  # [B*K]


def score_population(model: WorldModel, objective, start: TensorDict, candidates: Tensor) -> Tensor:
    """One ``imagine`` call for the whole population; returns the objective per candidate.

    Args:
        model: the world model.
        objective: ``objective(model, imagined [N,H]) -> [N]``.
        start: the expanded start states ``[B*K]`` (see :func:`expand_states`).
        candidates: action sequences ``[B, K, H, A]``.

    Returns:
        scores ``[B, K]`` (higher is better).
    """
    b, k, h, a = candidates.shape
    imagined = model.imagine(start, candidates.reshape(b * k, h, a))  # [B*K,H]
    scores = objective(model, imagined)  # [B*K]
    if scores.shape != (b * k,):
        raise ValueError(f"objective must return one score per candidate, shape [{b * k}], got {list(scores.shape)}.")
    return scores.reshape(b, k)


def shift_plan(plan: Tensor) -> Tensor:
    """Warm start (TD-MPC style): drop the executed first step, pad the end with zeros.

    Shapes: [B, H, A] -> [B, H, A].
    """
    return torch.cat([plan[:, 1:], torch.zeros_like(plan[:, :1])], dim=1)


class WarmStart:
    """The previous plan of a planner, kept to warm-start the next one (shifted by one step).

    Shapes: the stored plan is ``[B, H, A]``.
    """

    def __init__(self) -> None:
        self.plan: Tensor | None = None

    def reset(self, entries: Tensor | None = None) -> None:
        """Forget the plan entirely, or only for batch entries where ``entries`` (bool ``[B]``) is True
        (their next plan starts from zeros, as at an episode start)."""
        if entries is None or self.plan is None:
            self.plan = None
        else:
            self.plan = self.plan * (~entries.to(self.plan.device, torch.bool))[:, None, None]  # [B,H,A]

    def initial_mean(self, enabled: bool, shape: tuple[int, int, int], device: torch.device) -> Tensor:
        """The shifted previous plan when ``enabled`` and its shape ``(B, H, A)`` still fits, else zeros."""
        if enabled and self.plan is not None and tuple(self.plan.shape) == tuple(shape):
            return shift_plan(self.plan.to(device))
        return torch.zeros(shape, device=device)  # [B,H,A]


def check_state(state: TensorDict, name: str = "state") -> int:
    """Return the batch size B of a planner's start state, or raise one clear ValueError."""
    if not isinstance(state, TensorDict) or state.batch_dims != 1:
        shape = list(state.batch_size) if isinstance(state, TensorDict) else type(state).__name__
        raise ValueError(f"{name} must be a TensorDict with batch size [B] (one state per batch item), got {shape}.")
    return state.batch_size[0]
