"""Build models, planners and agents from a RunConfig (explicit if/elif; no registry).

Values derived from the environment (action size, image shape) are passed in as arguments,
never written back into the config.
"""

from __future__ import annotations

import torch

from worldmodels.core.interface import WorldModel
from worldmodels.core.config import ConfigError, RunConfig


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} was requested but no CUDA GPU is available; use device=auto or cpu.")
    return torch.device(name)


def make_model(cfg: RunConfig, action_dim: int, image_shape: tuple[int, int, int]) -> WorldModel:
    """The world model named by ``cfg.method``."""
    if cfg.method == "planet":
        from worldmodels.models.planet import PlaNet

        return PlaNet(cfg.model, action_dim=action_dim, image_shape=image_shape)
    if cfg.method in ("dreamerv2", "lexa"):  # LEXA: DreamerV2's model with LexaModelConfig defaults
        from worldmodels.models.dreamer import DreamerV2

        return DreamerV2(cfg.model, action_dim=action_dim, image_shape=image_shape)
    if cfg.method == "pldm":
        from worldmodels.models.pldm import PLDM

        return PLDM(cfg.model, action_dim=action_dim, image_shape=image_shape)
    raise ConfigError(f"Unknown method {cfg.method!r}.")


def make_model_optimizer(model_cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The world-model optimiser from the model config's ``learning_rate``, ``adam_eps``, ``weight_decay``.

    Adam; with ``weight_decay`` > 0, DreamerV2's decoupled decay ``w <- (1 - wd) w`` per update,
    which is AdamW with ``weight_decay = wd / lr`` (AdamW decays by ``lr * weight_decay``).
    """
    lr, eps, wd = model_cfg.learning_rate, model_cfg.adam_eps, model_cfg.weight_decay
    if wd > 0:
        return torch.optim.AdamW(model.parameters(), lr, eps=eps, weight_decay=wd / lr)
    return torch.optim.Adam(model.parameters(), lr, eps=eps)


def uses_actor(cfg: RunConfig) -> bool:
    """Whether the method learns a policy in imagination (DreamerV2, LEXA) instead of planning (PlaNet)."""
    return cfg.method in ("dreamerv2", "lexa")


def make_behaviour(cfg: RunConfig, model: WorldModel):
    """The imagination actor-critic (DreamerV2), LEXA's explorer + achiever, or None (planning methods)."""
    if cfg.method == "lexa":
        from planners.lexa_behaviour import LexaBehaviour

        return LexaBehaviour(model, cfg.actor_critic, cfg.lexa, model_lr=cfg.model.learning_rate)
    if not uses_actor(cfg):
        return None
    from planners.actor_critic import ImaginationActorCritic

    return ImaginationActorCritic(model, cfg.actor_critic)


def make_planner(cfg: RunConfig, model: WorldModel, objective=None):
    """CEM or MPPI (``cfg.planner``) toward ``objective`` (default: predicted reward)."""
    from planners.objectives import RewardObjective

    objective = objective if objective is not None else RewardObjective(model)
    if cfg.planner == "cem":
        from planners.cem import CEMPlanner

        return CEMPlanner(model, objective, cfg.cem)
    from planners.mppi import MPPIPlanner

    return MPPIPlanner(model, objective, cfg.mppi)


def make_agent(cfg: RunConfig, model: WorldModel, behaviour=None, explore: bool = False, objective=None):
    """The acting agent: a PolicyAgent on the actor when the method has one, else a PlanningAgent.

    ``explore`` adds the configured exploration noise (collection); evaluation uses none.
    """
    from planners.agents import PlanningAgent, PolicyAgent

    if cfg.method == "lexa":  # task-free: the explorer acts; goals go through behaviour.achiever_policy
        return PolicyAgent(model, behaviour.policy(sample=explore))
    if behaviour is not None:
        return PolicyAgent(model, behaviour.policy(sample=explore))
    planner = make_planner(cfg, model, objective)
    noise = (cfg.cem.exploration_noise if cfg.planner == "cem" else cfg.mppi.exploration_noise) if explore else 0.0
    return PlanningAgent(model, planner, model.action_dim, exploration_noise=noise)
