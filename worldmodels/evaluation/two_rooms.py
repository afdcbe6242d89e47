"""Goal reaching in PLDM's Two Rooms with any world model and any planner (MPPI, CEM, iCEM, gradient).

Protocol (PLDM, Sobal, Zhang et al. 2025, methods.md 2.5 / 3.6): N start/goal pairs drawn by the
env's own sampler (level "medium": start and goal in different rooms) from seed 42, the goal
image embedded by ``model.embed_goal``, MPPI maximising ``-sum_{h=1..H} mean_d (z^_h - z_goal)^2``
(``GoalDistanceObjective(metric="l2", steps="all")``: PLDM's MPPI sums its ``RunningCost`` over
every planned step; the last-3 sum of its ``ReprTargetMPCObjective`` serves only its gradient
planner), replanning every step, 200 steps, success ``mean((p - goal)^2) < 1`` px^2 from the true
position (an episode ends at success and leaves the planning batch).

All N episodes run as one batch: the planner plans for ``[N]`` states at once and the positions
advance with ``envs.two_rooms.move`` -- the exact transition ``TwoRoomsEnv`` uses -- so results
equal N sequential ``TwoRoomsEnv(seed=42)`` episodes (pairs are drawn one per reset, as it does).

Protocol pieces: :func:`~worldmodels.evaluation.stats.wilson_interval` (95 % interval of a success rate), :func:`detour_ratio`
and :func:`difficulty_of` (shortest path through the door over the straight-line distance; bins
``direct`` < 1.1 <= ``bend`` < 1.5 <= ``detour``, about 24 / 37 / 39 % of the paper's pairs),
:func:`sample_same_room_pairs` (the paper's pairs are always cross-room), and the random floor with
the planner's action-norm cap (:func:`random_policy_success`). ``shrink_horizon`` plans
``min(steps_left, H)`` steps, as PLDM's ``min(steps_left, 96)``.
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
from worldmodels.evaluation.stats import wilson_interval


def sample_pairs(episodes: int, seed: int = 42, image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The start/goal pairs ``TwoRoomsEnv(seed=seed)`` would use in its first ``episodes`` resets.

    Returns: ``(start, goal)`` in px, Shapes: ``[N, 2]`` each.
    """
    rng, layout = np.random.default_rng(seed), layout_for(image_size)
    pairs = [sample_start_goal(rng, 1, layout) for _ in range(episodes)]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


DIFFICULTY_BINS = (("direct", 1.0, 1.1), ("bend", 1.1, 1.5), ("detour", 1.5, float("inf")))
"""Difficulty by :func:`detour_ratio` r: ``(name, low, high)`` with low <= r < high."""


def detour_ratio(start: np.ndarray, goal: np.ndarray, image_size: int = 64, door_points: int = 81) -> np.ndarray:
    """Shortest path length over straight-line distance: 1 within a room; across rooms the shortest
    polyline start -> (wall_left, y) -> (wall_right, y) -> goal over y in the door's rows (a grid of
    ``door_points``), walls treated as lines (the agent's blob radius ignored). Shapes: ``[N, 2]`` -> ``[N]``."""
    layout = layout_for(image_size)
    start, goal = np.asarray(start, dtype=np.float64), np.asarray(goal, dtype=np.float64)
    straight = np.maximum(np.linalg.norm(goal - start, axis=-1), 1e-9)  # [N]
    left_first = start[:, :1] < layout.wall_x
    left, right = np.where(left_first, start, goal), np.where(left_first, goal, start)  # [N,2]
    ys = np.linspace(layout.door_min, layout.door_max, door_points)  # [Y]
    through = (np.hypot(left[:, None, 0] - layout.wall_left, left[:, None, 1] - ys)
               + (layout.wall_right - layout.wall_left)
               + np.hypot(right[:, None, 0] - layout.wall_right, right[:, None, 1] - ys)).min(1)  # fmt: skip
    same = room_of(start, layout) == room_of(goal, layout)
    return np.where(same, 1.0, np.maximum(through / straight, 1.0))


def difficulty_of(start: np.ndarray, goal: np.ndarray, image_size: int = 64) -> np.ndarray:
    """The :data:`DIFFICULTY_BINS` name of each pair. Shapes: ``[N, 2]`` -> ``[N]`` str."""
    ratio = detour_ratio(start, goal, image_size)
    names = np.empty(len(ratio), dtype=object)
    for name, low, high in DIFFICULTY_BINS:
        names[(ratio >= low) & (ratio < high)] = name
    return names


def sample_same_room_pairs(episodes: int, seed: int = 42, image_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Start and goal in the SAME room (a room drawn uniformly per pair), each coordinate uniform over
    the room's interior kept ``2 dot_std`` from the walls as PLDM's sampler does. Shapes: ``[N, 2]`` each."""
    rng, layout = np.random.default_rng(seed), layout_for(image_size)
    pad, margin = layout.border_padding, 2 * layout.dot_std
    far_edge = layout.image_size - 1 - pad
    right = rng.random(episodes) < 0.5  # [N]
    x_low = np.where(right, layout.wall_right + margin, pad)
    x_high = np.where(right, far_edge, layout.wall_left - margin)
    points = [np.stack([rng.uniform(x_low, x_high), rng.uniform(pad, far_edge, episodes)], -1) for _ in range(2)]
    return points[0], points[1]


def random_policy_success(start: np.ndarray, goal: np.ndarray, steps: int = 200, seed: int = 0,
                          image_size: int = 64, max_norm: float | None = None) -> float:  # fmt: skip
    """Chance level: success rate of uniform random actions in [-1, 1]^2 from the same pairs, each
    action's norm capped at ``max_norm`` (the planner's cap, same units) when given. Shapes: ``[N, 2]`` each."""
    rng, layout = np.random.default_rng(seed), layout_for(image_size)
    pos, done = start.astype(np.float64), np.zeros(len(start), dtype=bool)
    for _ in range(steps):
        action = rng.uniform(-1, 1, size=pos.shape)
        if max_norm is not None:
            action = action * np.minimum(1.0, max_norm / np.maximum(np.linalg.norm(action, axis=-1, keepdims=True), 1e-12))
        pos = move(pos, action * layout.max_step, layout)
        done |= is_success(pos, goal)
    return float(done.mean())


def flat_protocol(success: np.ndarray, start: np.ndarray, goal: np.ndarray, image_size: int = 64) -> dict:
    """The interval and the difficulty table as flat scalars: ``success_ci95_low/high``,
    ``episodes_{bin}``, ``success_rate_{bin}``, ``success_ci95_low_{bin}``, ``success_ci95_high_{bin}``."""
    low, high = wilson_interval(int(np.sum(success)), len(success))
    out = {"success_ci95_low": low, "success_ci95_high": high}
    for name, row in success_by_difficulty(success, start, goal, image_size).items():
        out[f"episodes_{name}"] = row["episodes"]
        out[f"success_rate_{name}"] = row["success_rate"]
        out[f"success_ci95_low_{name}"], out[f"success_ci95_high_{name}"] = row["ci95"]
    return out


def success_by_difficulty(success: np.ndarray, start: np.ndarray, goal: np.ndarray, image_size: int = 64) -> dict:
    """Per :data:`DIFFICULTY_BINS` bin: ``{name: {"episodes", "success_rate", "ci95"}}`` (rate nan when empty)."""
    names, success = difficulty_of(start, goal, image_size), np.asarray(success, dtype=bool)
    table = {}
    for name, _, _ in DIFFICULTY_BINS:
        hits, n = int(success[names == name].sum()), int((names == name).sum())
        table[name] = {"episodes": n, "success_rate": hits / n if n else float("nan"), "ci95": wilson_interval(hits, n)}
    return table


def evaluate_goal_reaching(cfg, model: WorldModel, episodes: int | None = None, planner_config=None,
                           seed: int | None = None, steps: int | None = None, starts: np.ndarray | None = None,
                           goals: np.ndarray | None = None, progress: bool = False,
                           shrink_horizon: bool | None = None, cost_steps: str = "all") -> dict:  # fmt: skip
    """Plan toward goal images in Two Rooms and measure success from the true positions.

    Args:
        cfg: the run's :class:`~worldmodels.core.config.RunConfig` (``env`` must be Two Rooms; ``planner``
            and ``mppi``/``cem`` pick the planner; ``offline.eval_episodes``/``eval_seed`` the defaults).
        model: any world model (PLDM, PlaNet, DreamerV2) trained on Two Rooms pixels.
        episodes: number of start/goal pairs N (default ``cfg.offline.eval_episodes``; PLDM: 100).
        planner_config: an ``MPPIConfig``/``CEMConfig`` overriding the run's.
        seed: seed of the pair sampler (default ``cfg.offline.eval_seed``; PLDM: 42).
        steps: episode length (default ``cfg.env.episode_length``; PLDM: 200).
        starts, goals: explicit pairs ``[N, 2]`` px instead of sampled ones (e.g.
            :func:`sample_same_room_pairs`).
        shrink_horizon: plan ``min(steps_left, H)`` steps at each step (PLDM: H = 96); else H always
            (default ``cfg.offline.eval_shrink_horizon``).
        cost_steps: which imagined steps the latent cost sums: ``"all"`` (PLDM's MPPI, whose running
            cost sums mean_d (z_t - z_goal)^2 over every step of the plan) or ``"last_k"`` (the last 3,
            PLDM's ``ReprTargetMPCObjective`` as its gradient planner uses it).

    Episodes that have succeeded stop there (PLDM terminates them) and are dropped from the planning
    batch (``agent.keep``), so the cost of a step falls as pairs are reached.

    Returns:
        a flat dict of numbers (loggable as scalars): ``success_rate`` (fraction),
        ``success_ci95_low`` / ``success_ci95_high`` (Wilson 95 %), per difficulty bin ``episodes_{bin}``
        and ``success_rate_{bin}`` (nan when empty; :func:`flat_protocol`), ``mean_final_distance`` (px,
        Euclidean), ``mean_initial_distance`` (px), ``mean_success_steps`` (over successes; nan if
        none), ``cross_wall_rate`` (fraction of episodes that changed room), ``random_success_rate``
        (uniform random actions from the same pairs with the planner's ``max_norm``: chance level)
        and ``episodes``.
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
    agent = goal_planning_agent(cfg, model, goal_pixels, metric="l2", steps=cost_steps, k=3, config=planner_config)
    agent.reset(n)
    pos, done = starts.copy(), is_success(starts, goals)
    success_step = np.full(n, np.nan)
    crossed = np.zeros(n, dtype=bool)
    active = np.flatnonzero(~done)  # the pairs still planned for, in the agent's batch order
    agent.keep(torch.from_numpy(active))
    horizon = agent.planner.config.horizon
    shrink_horizon = cfg.offline.eval_shrink_horizon if shrink_horizon is None else shrink_horizon
    for step in tqdm(range(steps), desc="goal eval", disable=not progress, leave=False):
        if len(active) == 0:
            break
        if shrink_horizon:
            agent.horizon = min(steps - step, horizon)
        pixels = torch.from_numpy(render_positions(pos[active], layout, channels))
        action = agent.act(TensorDict({keys.PIXELS: pixels}, batch_size=[len(active)])).cpu().double().numpy()
        pos[active] = move(pos[active], np.clip(action, -1.0, 1.0) * layout.max_step, layout)  # [N',2]
        crossed[active] |= room_of(pos[active], layout) != room_of(starts[active], layout)
        reached = is_success(pos[active], goals[active])  # [N']
        success_step[active[reached]] = step + 1
        done[active[reached]] = True
        if reached.any():
            agent.keep(torch.from_numpy(~reached))
            active = active[~reached]
    model.train(was_training)
    max_norm = agent.planner.config.max_norm
    return {
        "success_rate": float(done.mean()),
        **flat_protocol(done, starts, goals, cfg.env.image_size),
        "mean_final_distance": float(np.linalg.norm(pos - goals, axis=-1).mean()),
        "mean_initial_distance": float(np.linalg.norm(starts - goals, axis=-1).mean()),
        "mean_success_steps": float(np.nanmean(success_step)) if done.any() else float("nan"),
        "cross_wall_rate": float(crossed.mean()),
        "random_success_rate": random_policy_success(starts, goals, steps, image_size=cfg.env.image_size,
                                                     max_norm=max_norm),  # fmt: skip
        "episodes": n,
    }
