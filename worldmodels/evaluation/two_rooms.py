"""Goal reaching in PLDM's Two Rooms with any world model and a sampling planner (MPPI/CEM).

Protocol (PLDM, Sobal, Zhang et al. 2025, methods.md 2.5 / 3.6): N start/goal pairs drawn by the
env's own sampler (level "medium": start and goal in different rooms) from seed 42, the goal
image embedded by ``model.embed_goal``, MPPI maximising ``-sum_{last 3} mean_d (z^_h - z_goal)^2``
(``GoalDistanceObjective(metric="l2", steps="last_k", k=3)``), replanning every step, 200 steps,
success ``mean((p - goal)^2) < 1`` px^2 from the true position (an episode ends at success).

All N episodes run as one batch: the planner plans for ``[N]`` states at once and the positions
advance with ``envs.two_rooms.move`` -- the exact transition ``TwoRoomsEnv`` uses -- so results
equal N sequential ``TwoRoomsEnv(seed=42)`` episodes (pairs are drawn one per reset, as it does).
"""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict
from tqdm.auto import tqdm

from envs.two_rooms import is_success, layout_for, move, render_positions, room_of, sample_start_goal
from planners.builder import goal_planning_agent
from worldmodels.core import keys
from worldmodels.core.interface import WorldModel


def sample_pairs(episodes: int, seed: int = 42, image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The start/goal pairs ``TwoRoomsEnv(seed=seed)`` would use in its first ``episodes`` resets.

    Returns: ``(start, goal)`` in px, Shapes: ``[N, 2]`` each.
    """
    rng, layout = np.random.default_rng(seed), layout_for(image_size)
    pairs = [sample_start_goal(rng, 1, layout) for _ in range(episodes)]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def random_policy_success(start: np.ndarray, goal: np.ndarray, steps: int = 200, seed: int = 0,
                          image_size: int = 64) -> float:  # fmt: skip
    """Chance level: success rate of uniform random actions from the same pairs. Shapes: ``[N, 2]`` each."""
    rng, layout = np.random.default_rng(seed), layout_for(image_size)
    pos, done = start.astype(np.float64), np.zeros(len(start), dtype=bool)
    for _ in range(steps):
        pos = move(pos, rng.uniform(-1, 1, size=pos.shape) * layout.max_step, layout)
        done |= is_success(pos, goal)
    return float(done.mean())


def evaluate_goal_reaching(cfg, model: WorldModel, episodes: int | None = None, planner_config=None,
                           seed: int | None = None, steps: int | None = None, starts: np.ndarray | None = None,
                           goals: np.ndarray | None = None, progress: bool = False) -> dict:  # fmt: skip
    """Plan toward goal images in Two Rooms and measure success from the true positions.

    Args:
        cfg: the run's :class:`~worldmodels.core.config.RunConfig` (``env`` must be Two Rooms; ``planner``
            and ``mppi``/``cem`` pick the planner; ``offline.eval_episodes``/``eval_seed`` the defaults).
        model: any world model (PLDM, PlaNet, DreamerV2) trained on Two Rooms pixels.
        episodes: number of start/goal pairs N (default ``cfg.offline.eval_episodes``; PLDM: 100).
        planner_config: an ``MPPIConfig``/``CEMConfig`` overriding the run's.
        seed: seed of the pair sampler (default ``cfg.offline.eval_seed``; PLDM: 42).
        steps: episode length (default ``cfg.env.episode_length``; PLDM: 200).
        starts, goals: explicit pairs ``[N, 2]`` px instead of sampled ones (e.g. same-room tests).

    Returns:
        dict with ``success_rate`` (fraction), ``mean_final_distance`` (px, Euclidean),
        ``mean_initial_distance`` (px), ``mean_success_steps`` (over successes; nan if none),
        ``cross_wall_rate`` (fraction of episodes that changed room), ``random_success_rate``
        (uniform random actions from the same pairs: chance level) and ``episodes``.
    """
    if cfg.env.suite != "two_rooms":
        raise ValueError(f"evaluate_goal_reaching is for the two_rooms suite, got env.suite={cfg.env.suite!r}.")
    layout, channels = layout_for(cfg.env.image_size), cfg.env.two_rooms_channels
    steps = int(steps or cfg.env.episode_length)
    if starts is None or goals is None:
        n = int(episodes if episodes is not None else cfg.offline.eval_episodes)
        starts, goals = sample_pairs(n, cfg.offline.eval_seed if seed is None else seed, cfg.env.image_size)
    starts, goals = np.asarray(starts, dtype=np.float64), np.asarray(goals, dtype=np.float64)
    n = len(starts)
    was_training = model.training
    model.eval()
    goal_pixels = torch.from_numpy(render_positions(goals, layout, channels))  # [N,C,H,W]
    agent = goal_planning_agent(cfg, model, goal_pixels, metric="l2", steps="last_k", k=3, config=planner_config)
    agent.reset(n)
    pos, done = starts.copy(), is_success(starts, goals)
    success_step = np.full(n, np.nan)
    crossed = np.zeros(n, dtype=bool)
    for step in tqdm(range(steps), desc="goal eval", disable=not progress, leave=False):
        obs = TensorDict({keys.PIXELS: torch.from_numpy(render_positions(pos, layout, channels))}, batch_size=[n])
        action = agent.act(obs).cpu().double().numpy()  # [N,2] in [-1,1]
        moved = move(pos, np.clip(action, -1.0, 1.0) * layout.max_step, layout)
        pos = np.where(done[:, None], pos, moved)  # finished episodes stay put (PLDM terminates them)
        crossed |= room_of(pos, layout) != room_of(starts, layout)
        newly = is_success(pos, goals) & ~done
        success_step[newly] = step + 1
        done |= newly
        if done.all():
            break
    model.train(was_training)
    return {
        "success_rate": float(done.mean()),
        "mean_final_distance": float(np.linalg.norm(pos - goals, axis=-1).mean()),
        "mean_initial_distance": float(np.linalg.norm(starts - goals, axis=-1).mean()),
        "mean_success_steps": float(np.nanmean(success_step)) if done.any() else float("nan"),
        "cross_wall_rate": float(crossed.mean()),
        "random_success_rate": random_policy_success(starts, goals, steps, image_size=cfg.env.image_size),
        "episodes": n,
    }
