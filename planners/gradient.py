"""Gradient-based planning: Adam on action sequences through ``model.imagine`` (PLDM's SGD planner)."""

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
from worldmodels.core.config import GradientPlannerConfig
from worldmodels.core.interface import WorldModel


class GradientPlanner:
    """Maximise ``objective(model, imagine(s, a))`` over ``a [B, R, H, A]`` by gradient ascent, for a
    batch of B start states and R restarts each, all in one ``imagine`` call per step.

    Per call of :meth:`plan` (PLDM ``SGDPlanner``; DINO-WM's GD planner):

    1. a^0: restart 0 is the previous plan shifted by one step (``warm_start``) or zeros (PLDM);
       restarts 1..R-1 are clip(N(0, init_std^2));
    2. for ``iterations`` steps: project a onto the action set (clip to [-1, 1], then the per-step
       norm cap ``max_norm``: projected gradient, as PLDM's ``normalize_actions`` after each step),
       J = objective(imagine(s, a)) ``[B, R]``, one Adam step on -sum J (the restarts and states
       are independent terms, and Adam's step is per element, so they do not interact);
    3. a last projection and evaluation; the best sequence seen per state over every evaluated
       iterate and restart is returned ``[B, H, A]``.

    Gradients: the planner differentiates through the model, so it is the one planner that does not
    run under ``torch.inference_mode``. :meth:`plan` leaves inference mode and enables grad itself,
    so it works when an agent acts under ``torch.inference_mode()``; the start states are detached
    clones (normal tensors), and ``torch.autograd.grad`` differentiates only w.r.t. the actions, so
    no model parameter's ``.grad`` is touched.

    Args:
        model: any :class:`~worldmodels.core.interface.WorldModel` whose ``imagine`` is differentiable
            in the actions.
        objective: ``objective(model, imagined [N,H]) -> [N]``, higher is better.
        config: :class:`~worldmodels.core.config.GradientPlannerConfig`.

    Example:
        >>> planner = GradientPlanner(model, objective, GradientPlannerConfig(horizon=16, iterations=50))
        >>> plan = planner.plan(belief)                 # [B] -> [B, 16, A]
    """

    def __init__(self, model: WorldModel, objective, config: GradientPlannerConfig | None = None):
        self.model = model
        self.objective = objective
        self.config = config if config is not None else GradientPlannerConfig()
        self._warm = WarmStart()

    def reset(self, batch_size: int | None = None, entries: Tensor | None = None) -> None:
        """Forget the previous plan: entirely, or only for entries where ``entries`` (bool ``[B]``) is True."""
        self._warm.reset(entries)

    def keep(self, rows: Tensor) -> None:
        """Keep only the batch entries ``rows`` (bool mask ``[B]`` or indices) of the warm start and the
        objective's goals, e.g. to stop planning for episodes that have ended (Two Rooms evaluation)."""
        self._warm.keep(rows)
        keep_objective_rows(self.objective, rows)

    def plan(self, state: TensorDict, horizon: int | None = None) -> Tensor:
        """Plan from ``state [B]``; returns the best sequence ``[B, H, A]`` within the action bounds
        (a normal, detached tensor). ``horizon`` overrides ``config.horizon`` for this call."""
        h = resolve_horizon(horizon, self.config.horizon)
        with torch.inference_mode(False), torch.enable_grad():
            start = state.apply(lambda t: t.detach().clone())
            return self._plan(start, h)

    def _initial(self, b: int, h: int, a: int, device) -> Tensor:
        """Starting sequences ``[B, R, H, A]`` (see the class docstring)."""
        cfg = self.config
        first = self._warm.initial_mean(cfg.warm_start, (b, h, a), device).clone()  # [B,H,A]
        others = torch.randn(b, cfg.restarts - 1, h, a, device=device) * cfg.init_std  # [B,R-1,H,A]
        return bound_actions(torch.cat([first[:, None], others], dim=1), cfg.max_norm)

    def _score(self, start: TensorDict, actions: Tensor) -> Tensor:
        return score_population(self.model, self.objective, start, actions)  # [B,R]

    def _plan(self, state: TensorDict, h: int) -> Tensor:
        cfg = self.config
        b = check_state(state)
        device, a = self.model.device, self.model.action_dim
        start = expand_states(state.to(device), cfg.restarts)  # [B*R]
        actions = self._initial(b, h, a, device).requires_grad_(True)  # [B,R,H,A]
        optimiser = torch.optim.Adam([actions], lr=cfg.lr)
        best = actions.detach().clone()[:, 0]  # [B,H,A]
        best_score = torch.full((b,), -torch.inf, device=device)
        for step in range(cfg.iterations + 1):
            with torch.no_grad():
                actions.copy_(bound_actions(actions, cfg.max_norm))
            scores = self._score(start, actions)  # [B,R]
            best, best_score = self._keep_best(best, best_score, actions.detach(), scores.detach())
            if step == cfg.iterations:
                break
            (grad,) = torch.autograd.grad(-scores.sum(), [actions])
            actions.grad = grad
            optimiser.step()
        self._warm.plan = best
        return best

    @staticmethod
    def _keep_best(best: Tensor, best_score: Tensor, actions: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Per state, the better of the best so far and this iterate's best restart.
        Shapes: best [B,H,A], best_score [B], actions [B,R,H,A], scores [B,R]."""
        score, index = scores.max(dim=1)  # [B]
        candidate = actions[torch.arange(actions.shape[0], device=actions.device), index]  # [B,H,A]
        better = score > best_score  # [B]
        return torch.where(better[:, None, None], candidate, best), torch.where(better, score, best_score)
