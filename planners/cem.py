"""Batched cross-entropy method over action sequences (PlaNet, Hafner et al. 2019, Sec. 3 / planning.py)."""

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
from worldmodels.core.config import CEMConfig


class CEMPlanner:
    """CEM planner over ``model.imagine`` for a batch of start states at once.

    Per call of :meth:`plan` (PlaNet semantics, methods.md 2.1 / 3.7):

    1. q(a_{0:H}) = N(0, I) (or, with ``warm_start``, the previous mean shifted by one step, std 1),
    2. for ``iterations`` rounds: sample ``candidates`` sequences a ~ q, clip to [-1, 1] (and cap
       each step's norm at ``max_norm`` when set, :func:`~planners.population.bound_actions`), imagine
       all ``B * candidates`` of them in ONE ``model.imagine`` call, score with ``objective``, keep
       the ``top_k`` elites per batch item and refit mean and std = sqrt(var + 1e-6) (optionally
       floored at ``min_std``),
    3. return the final mean ``[B, H, A]``; the agent executes ``[:, 0]`` (MPC).

    Args:
        model: any :class:`~worldmodels.core.interface.WorldModel`.
        objective: ``objective(model, imagined [N,H]) -> [N]`` (e.g. RewardObjective).
        config: :class:`~worldmodels.core.config.CEMConfig` (PlaNet: H 12, 1000 candidates, top 100, 10 iterations).

    Example:
        >>> planner = CEMPlanner(model, RewardObjective(model), CEMConfig())
        >>> planner.reset(batch_size=4)
        >>> plan = planner.plan(belief)        # belief TensorDict [4] -> [4, 12, A]
        >>> short = planner.plan(belief, horizon=5)   # -> [4, 5, A]
        >>> action = plan[:, 0]
    """

    def __init__(self, model: WorldModel, objective, config: CEMConfig | None = None):
        self.model = model
        self.objective = objective
        self.config = config if config is not None else CEMConfig()
        self._warm = WarmStart()

    def reset(self, batch_size: int | None = None, entries: Tensor | None = None) -> None:
        """Forget the warm-start mean: entirely, or only for batch entries where ``entries`` (bool ``[B]``)
        is True (their next plan starts from zeros, as at an episode start)."""
        self._warm.reset(entries)

    def keep(self, rows: Tensor) -> None:
        """Keep only the batch entries ``rows`` (bool mask ``[B]`` or indices) of the warm start and the
        objective's goals, e.g. to stop planning for episodes that have ended (Two Rooms evaluation)."""
        self._warm.keep(rows)
        keep_objective_rows(self.objective, rows)

    def plan(self, state: TensorDict, horizon: int | None = None) -> Tensor:
        """Plan from ``state [B]``; returns the refit mean action sequence ``[B, H, A]`` in [-1, 1].

        ``horizon`` overrides ``config.horizon`` for this call (e.g. ``min(steps_left, 96)`` as PLDM);
        the warm start is the previous plan minus its first step, cropped or zero-padded to it.

        Runs under ``torch.inference_mode`` (planning only serves acting; nothing is trained),
        so the result is an inference tensor: clone it to use it in autograd.
        """
        with torch.inference_mode():
            return self._plan(state, resolve_horizon(horizon, self.config.horizon))

    def _plan(self, state: TensorDict, h: int) -> Tensor:
        cfg = self.config
        b = check_state(state)
        device = self.model.device
        state = state.to(device)
        a = self.model.action_dim
        start = expand_states(state, cfg.candidates)  # [B*J]
        mean = self._warm.initial_mean(self.config.warm_start, (b, h, a), device)  # [B,H,A]
        std = torch.ones_like(mean)  # [B,H,A]
        for _ in range(cfg.iterations):
            noise = torch.randn(b, cfg.candidates, h, a, device=device)  # [B,J,H,A]
            candidates = bound_actions(mean[:, None] + std[:, None] * noise, cfg.max_norm)  # [B,J,H,A]
            scores = score_population(self.model, self.objective, start, candidates)  # [B,J]
            elite_idx = scores.topk(cfg.top_k, dim=1).indices  # [B,K]
            elites = candidates.gather(
                1, elite_idx[:, :, None, None].expand(b, cfg.top_k, h, a)
            )  # [B,K,H,A]
            mean = elites.mean(1)  # [B,H,A]
            std = (elites.var(1, unbiased=False) + 1e-6).sqrt()  # [B,H,A]
            if cfg.min_std > 0:
                std = std.clamp_min(cfg.min_std)
        self._warm.plan = mean
        return mean
