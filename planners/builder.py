"""A RunConfig's planner and planning agents: the one place a planner is assembled from a config.

``cfg.planner`` names the planner (``cem``, ``mppi``, ``icem`` or ``gradient``) and ``cfg.cem`` /
``cfg.mppi`` / ``cfg.icem`` / ``cfg.gradient`` its settings;
the objective is the caller's (predicted reward by default, a goal distance for goal images).
"""

from __future__ import annotations

from torch import Tensor

from planners.agents import PlanningAgent
from planners.cem import CEMPlanner
from planners.gradient import GradientPlanner
from planners.icem import ICEMPlanner
from planners.mppi import MPPIPlanner
from planners.objectives import Features, GoalDistanceObjective, Metric, Part, RewardObjective, Steps
from worldmodels.core.config import RunConfig
from worldmodels.core.interface import WorldModel

PLANNERS = {"cem": CEMPlanner, "mppi": MPPIPlanner, "icem": ICEMPlanner, "gradient": GradientPlanner}
"""Planner name (``cfg.planner``, the CLI's ``--planner``) -> class; its settings are ``cfg.<name>``."""


def make_planner(cfg: RunConfig, model: WorldModel, objective, name: str | None = None, config=None):
    """The planner ``name`` toward ``objective``; each has ``reset`` and ``plan(state[B], horizon=None)``.

    Args:
        name: ``"cem"``, ``"mppi"``, ``"icem"`` or ``"gradient"``; default ``cfg.planner``.
        config: a ``CEMConfig`` / ``MPPIConfig`` / ``ICEMConfig`` / ``GradientPlannerConfig`` instead of
            the run's ``cfg.<name>``.
    """
    name = name or cfg.planner
    if name not in PLANNERS:
        raise ValueError(f"Unknown planner {name!r}; allowed: {', '.join(PLANNERS)}.")
    return PLANNERS[name](model, objective, config or getattr(cfg, name))


def sequences_per_plan(name: str, config) -> int:
    """Action sequences imagined per state in one steady-state ``plan`` call (each ``H`` steps): the
    compute axis for comparing planners. CEM ``iterations * candidates``; MPPI ``iterations * samples``;
    iCEM sum_i N_i + the reused elites + the mean (warm, i.e. after an episode's first step);
    gradient ``(iterations + 1) * restarts`` forward passes, each of the first ``iterations`` also
    with a backward pass (roughly 2x a forward)."""
    if name == "cem":
        return config.iterations * config.candidates
    if name == "mppi":
        return config.iterations * config.samples
    if name == "icem":
        reused, total, population = int(config.fraction_elites_reused * config.elites), 0, config.population
        for i in range(config.iterations):
            population = population if i == 0 else max(2 * config.elites, int(population / config.population_decay))
            extras = reused * ((i == 0 and config.shift_elites_over_time) + (i > 0 and config.keep_previous_elites))
            total += population + extras + (i == config.iterations - 1 and config.use_mean_actions)
        return total
    if name == "gradient":
        return (config.iterations + 1) * config.restarts
    raise ValueError(f"Unknown planner {name!r}; allowed: {', '.join(PLANNERS)}.")


def planning_agent(cfg: RunConfig, model: WorldModel, objective=None, explore: bool = False,
                   name: str | None = None, config=None) -> PlanningAgent:  # fmt: skip
    """MPC agent planning toward ``objective`` (default: predicted reward, PlaNet); ``explore`` adds
    the planner's ``exploration_noise`` to executed actions (collection), none otherwise. ``name`` and
    ``config`` as in :func:`make_planner`."""
    objective = objective if objective is not None else RewardObjective(model)
    planner = make_planner(cfg, model, objective, name, config)
    noise = planner.config.exploration_noise if explore else 0.0
    return PlanningAgent(model, planner, model.action_dim, exploration_noise=noise)


def goal_planning_agent(cfg: RunConfig, model: WorldModel, goal_pixels: Tensor, metric: Metric, steps: Steps,
                        k: int = 3, name: str | None = None, config=None, features: Features = "sample",
                        part: Part = "full", goal_hold: int = 1) -> PlanningAgent:  # fmt: skip
    """A new agent planning toward one goal image ``[C, H, W]`` (or goals ``[B, C, H, W]``, one per
    batch entry) with :class:`GoalDistanceObjective` ``(metric, steps, k, features, part, goal_hold)`` (PLDM's
    MPPI cost is ``metric="l2", steps="all"``, its gradient planner's ``steps="last_k", k=3``;
    LEXA's ``cosine`` over ``all`` steps)."""
    objective = GoalDistanceObjective(model, metric=metric, steps=steps, k=k, features=features, part=part,
                                      goal_hold=goal_hold)  # fmt: skip
    pixels = goal_pixels[None] if goal_pixels.dim() == 3 else goal_pixels
    objective.set_goal_pixels(pixels.to(model.device))
    return planning_agent(cfg, model, objective, name=name, config=config)
