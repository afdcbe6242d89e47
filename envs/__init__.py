"""Environments as torchrl EnvBases (DeepMind Control pixels, goal tasks, Two Rooms).

``make_env(cfg)`` is the one entry point: an explicit if/elif over ``cfg.suite`` (no registry).
Suites are imported lazily, so importing ``envs`` loads neither torchrl nor MuJoCo.
With ``cfg.goal_set`` a DMC goal-image task set is built instead (``envs/goals.py``); the set
decides the domain and task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worldmodels.core.config import EnvConfig

if TYPE_CHECKING:  # importing torchrl.envs here would load MuJoCo for every user of make_env
    import torch
    from torchrl.envs import EnvBase


def make_env(cfg: EnvConfig, seed: int = 0, device: str | torch.device = "cpu") -> EnvBase:
    """Build the environment described by ``cfg``.

    Args:
        cfg: environment config (``suite`` picks the simulator; see ``EnvConfig``).
        seed: seed of the environment's random state (initial states).
        device: device of the returned tensors.

    Returns:
        a torchrl ``EnvBase`` emitting ``pixels`` uint8 ``[C, H, W]`` (and ``proprio`` float32 ``[P]``,
        the DMC observation vector, when ``cfg.observation`` is proprio or both) and the keys of
        ``worldmodels/core/keys.py``.

    Raises:
        ValueError: unknown suite, or a domain/task the suite does not have.
    """
    if cfg.suite == "dmc" and cfg.goal_set is not None:
        from envs.goals import GoalEnv

        return GoalEnv.from_config(cfg, seed=seed, device=device)
    if cfg.suite == "dmc":
        from envs.dmc import DMCEnv  # loads MuJoCo

        return DMCEnv(
            domain=cfg.domain,
            task=cfg.task,
            image_size=cfg.image_size,
            camera=cfg.camera,
            action_repeat=cfg.action_repeat,
            episode_length=cfg.episode_length,
            seed=seed,
            fast_render=cfg.fast_render,
            proprio=cfg.observation != "pixels",
            pixels=cfg.renders(),
            device=device,
        )
    if cfg.suite == "two_rooms":
        from envs.two_rooms import TwoRoomsEnv

        return TwoRoomsEnv.from_config(cfg, seed=seed, device=device)
    raise ValueError(f"Unknown env suite {cfg.suite!r}; allowed: dmc, two_rooms.")
