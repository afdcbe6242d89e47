"""Population helpers shared by the planners (CEM, MPPI, iCEM, gradient).

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


def fit_horizon(plan: Tensor, horizon: int, pad: Tensor | None = None) -> Tensor:
    """Crop ``plan [..., H', A]`` to its first ``horizon`` steps or extend it with ``pad`` steps
    (default zeros; ``pad`` broadcasts to ``[..., horizon - H', A]``). Shapes: -> ``[..., horizon, A]``."""
    steps = plan.shape[-2]
    if steps >= horizon:
        return plan[..., :horizon, :]
    shape = (*plan.shape[:-2], horizon - steps, plan.shape[-1])
    extra = plan.new_zeros(shape) if pad is None else pad.expand(shape)
    return torch.cat([plan, extra], dim=-2)


def bound_actions(actions: Tensor, max_norm: float | None = None) -> Tensor:
    """Project actions into the planners' action set: each coordinate clipped to [-1, 1], then, with
    ``max_norm``, each step's action vector scaled down to ``||a||_2 <= max_norm`` (direction kept,
    PLDM's ``normalize_actions``). Out of place. Shapes: ``[..., A] -> [..., A]``."""
    actions = actions.clamp(-1.0, 1.0)
    if max_norm is None:
        return actions
    norm = torch.linalg.vector_norm(actions, dim=-1, keepdim=True)  # [...,1]
    return actions * (max_norm / norm).clamp(max=1.0)


def resolve_horizon(horizon: int | None, default: int) -> int:
    """The horizon of one ``plan`` call: ``horizon`` when given (>= 1), else the config's ``default``."""
    if horizon is None:
        return default
    if int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}.")
    return int(horizon)


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

    def keep(self, rows: Tensor) -> None:
        """Keep only the batch entries ``rows`` (bool mask ``[B]`` or indices ``[B']``) of the stored plan."""
        if self.plan is not None:
            self.plan = self.plan[rows.to(self.plan.device)]  # [B',H,A]

    def initial_mean(self, enabled: bool, shape: tuple[int, int, int], device: torch.device) -> Tensor:
        """The previous plan without its executed first step, cropped or zero-padded to the horizon H
        of ``shape (B, H, A)``, when ``enabled`` and B and A still fit; zeros otherwise. With the
        same H this is :func:`shift_plan`; a horizon shrinking by one per step keeps every step."""
        b, h, a = shape
        if enabled and self.plan is not None and self.plan.shape[0] == b and self.plan.shape[-1] == a:
            return fit_horizon(self.plan.to(device)[:, 1:], h)
        return torch.zeros(shape, device=device)  # [B,H,A]


def keep_objective_rows(objective, rows: Tensor) -> None:
    """Shrink an objective's per-batch state (a goal objective's goals) to ``rows``; objectives
    without per-batch state (predicted reward, disagreement) have no ``keep`` and need nothing."""
    keep = getattr(objective, "keep", None)
    if keep is not None:
        keep(rows)


def check_state(state: TensorDict, name: str = "state") -> int:
    """Return the batch size B of a planner's start state, or raise one clear ValueError."""
    if not isinstance(state, TensorDict) or state.batch_dims != 1:
        shape = list(state.batch_size) if isinstance(state, TensorDict) else type(state).__name__
        raise ValueError(f"{name} must be a TensorDict with batch size [B] (one state per batch item), got {shape}.")
    return state.batch_size[0]
