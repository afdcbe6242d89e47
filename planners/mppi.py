"""Batched model predictive path integral control (Williams et al. 2017) over ``model.imagine``."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor

from planners.population import (
    WarmStart,
    bound_actions,
    check_state,
    expand_states,
    keep_objective_rows,
    resolve_horizon,
    score_population,
)
from worldmodels.core.interface import WorldModel
from worldmodels.core.config import MPPIConfig


class MPPIPlanner:
    """MPPI planner for a batch of start states at once.

    Per call of :meth:`plan` (Williams et al. 2017, "Information theoretic MPC", Alg. 2;
    warm start as in PLDM / TD-MPC2):

    1. mean mu = previous plan shifted by one step, zero-padded (``warm_start``), else zeros,
    2. for ``iterations`` rounds: sample ``samples`` sequences a^i = clip(mu + eps^i, -1, 1) with
       eps ~ N(0, noise_std^2) (each step's norm then capped at ``max_norm`` when set), imagine all
       ``B * samples`` in ONE ``model.imagine`` call, score J^i, weights
       w^i = softmax(J^i / temperature) (max subtracted, numerically stable), mu = sum_i w^i a^i,
    3. return mu ``[B, H, A]``; the agent executes ``[:, 0]``.

    Args:
        model: any :class:`~worldmodels.core.interface.WorldModel`.
        objective: ``objective(model, imagined [N,H]) -> [N]``.
        config: :class:`~worldmodels.core.config.MPPIConfig`.

    Example:
        >>> objective = GoalDistanceObjective(model, metric="l2", steps="last_k", k=3)
        >>> planner = MPPIPlanner(model, objective, MPPIConfig(horizon=16))
        >>> plan = planner.plan(belief)        # [B] -> [B, 16, A]
    """

    def __init__(self, model: WorldModel, objective, config: MPPIConfig | None = None):
        self.model = model
        self.objective = objective
        self.config = config if config is not None else MPPIConfig()
        self._warm = WarmStart()

    def reset(self, batch_size: int | None = None, entries: Tensor | None = None) -> None:
        """Forget the previous plan: entirely, or only for batch entries where ``entries`` (bool ``[B]``)
        is True (their next plan starts from zeros, as at an episode start)."""
        self._warm.reset(entries)

    def keep(self, rows: Tensor) -> None:
        """Keep only the batch entries ``rows`` (bool mask ``[B]`` or indices) of the warm start and the
        objective's goals, e.g. to stop planning for episodes that have ended (Two Rooms evaluation)."""
        self._warm.keep(rows)
        keep_objective_rows(self.objective, rows)

    def plan(self, state: TensorDict, horizon: int | None = None) -> Tensor:
        """Plan from ``state [B]``; returns the weighted mean sequence ``[B, H, A]`` in [-1, 1].

        ``horizon`` overrides ``config.horizon`` for this call (PLDM: ``min(steps_left, 96)``); the
        warm start is the previous plan minus its first step, cropped or zero-padded to it. The mean
        of capped candidates obeys the cap too (the norm ball is convex).

        Runs under ``torch.inference_mode`` (planning only serves acting).
        """
        with torch.inference_mode():
            return self._plan(state, resolve_horizon(horizon, self.config.horizon))

    def _plan(self, state: TensorDict, h: int) -> Tensor:
        cfg = self.config
        b = check_state(state)
        device = self.model.device
        a = self.model.action_dim
        start = expand_states(state.to(device), cfg.samples)  # [B*S]
        mean = self._warm.initial_mean(self.config.warm_start, (b, h, a), device)  # [B,H,A]
        for _ in range(cfg.iterations):
            noise = torch.randn(b, cfg.samples, h, a, device=device) * cfg.noise_std  # [B,S,H,A]
            candidates = bound_actions(mean[:, None] + noise, cfg.max_norm)  # [B,S,H,A]
            scores = score_population(self.model, self.objective, start, candidates)  # [B,S]
            weights = torch.softmax(scores / cfg.temperature, dim=1)  # [B,S]; softmax subtracts the max
            mean = torch.einsum("bs,bsha->bha", weights, candidates)  # [B,H,A]
        self._warm.plan = mean
        return mean
