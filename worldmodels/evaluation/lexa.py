"""LEXA's measures: the achiever on a goal set, and the explorer against random actions.

Both are only logged, never a training signal. The explorer's raw imagined intrinsic reward falls
as its ensemble learns, so it is reported next to that of uniform random actions from the same
replay starts: seeking disagreement shows as the gap (``LexaBehaviour.explorer_vs_random``).
"""

from __future__ import annotations

import torch

from planners.agents import PolicyAgent
from worldmodels.core import keys
from worldmodels.evaluation.goal_sets import run_goal_set


def achiever_agent_for(model, behaviour):
    """``agent_for(goal_pixels [C,H,W]) -> PolicyAgent`` acting with LEXA's achiever toward that goal."""
    return lambda goal_pixels: PolicyAgent(model, behaviour.achiever_policy(goal_pixels))


def explorer_vs_random_on_replay(model, behaviour, replay, batch_size: int, sequence_length: int,
                                 batches: int = 1) -> dict[str, float]:  # fmt: skip
    """:meth:`LexaBehaviour.explorer_vs_random` from the posterior states of ``batches`` replay batches
    ``[batch_size, sequence_length]`` (filtered with ``model.observe``), averaged over the batches.

    Returns:
        ``{"explorer": float, "random": float}``.
    """
    totals = {"explorer": 0.0, "random": 0.0}
    for _ in range(batches):
        batch = replay.sample(batch_size, sequence_length)
        with torch.no_grad():
            start = model.observe(batch, batch[keys.PREV_ACTION], batch[keys.IS_FIRST]).reshape(-1)
        for name, value in behaviour.explorer_vs_random(start).items():
            totals[name] += value / batches
    return totals


def achiever_on_goal_set(cfg, model, behaviour, team=None) -> dict:
    """The achiever once on every goal of ``lexa.goal_eval_set`` (default ``env.goal_set``):
    :func:`run_goal_set`, split across ``team``'s ranks when given (every rank must call it)."""
    task_set = cfg.lexa.goal_eval_set or cfg.env.goal_set
    return run_goal_set(cfg, task_set, achiever_agent_for(model, behaviour), episodes=1, progress=False, team=team)


def lexa_scalars(cfg, model, behaviour, replay, team=None) -> dict[str, float]:
    """The achiever once on every goal of ``lexa.goal_eval_set`` (default ``env.goal_set``) and the
    explorer against random actions on one replay batch. With a data-parallel ``team`` the goal
    episodes are split across its ranks (the followers run :func:`achiever_on_goal_set` alone).

    Returns:
        ``eval/goal_success`` (at the last step), ``eval/goal_reached`` (at any step),
        ``eval/goal_distance`` (true-state distance at the last step, mean over goals),
        ``eval/explorer/intrinsic`` and ``eval/random/intrinsic``.
    """
    result = achiever_on_goal_set(cfg, model, behaviour, team)
    intrinsic = explorer_vs_random_on_replay(model, behaviour, replay, cfg.replay.batch_size,
                                             cfg.replay.sequence_length)  # fmt: skip
    return {
        "eval/goal_success": result["success_rate"],
        "eval/goal_reached": result["reached_rate"],
        "eval/goal_distance": result["final_distance"],
        "eval/explorer/intrinsic": intrinsic["explorer"],
        "eval/random/intrinsic": intrinsic["random"],
    }
