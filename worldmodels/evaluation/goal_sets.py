"""Acting toward the goal images of a goal task set (``envs/goals.py``), success measured from state.

Used by ``worldmodels eval --goals``, ``worldmodels plan TASKSET:INDEX``, LEXA's evaluation during
training and the goal benchmark. The agent is the caller's (``agent_for(goal_pixels) -> agent``):
a planner toward the goal's latent, or LEXA's achiever (``worldmodels.methods`` decides which).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from envs.goals import goal_distance, goal_domain_task, goal_names, goal_set_names, make_goal_env, num_goals
from worldmodels.core import keys
from worldmodels.core.interface import WorldModel
from worldmodels.data.collect import collect_episode, episode_frames
from worldmodels.evaluation.goal_images import latent_distances, side_by_side
from worldmodels.evaluation.sharding import merged, my_share, rank_and_size, seeded
from worldmodels.viz.video import write_video

EPISODE_STATS = ("success_rate", "reached_rate", "initial_distance", "min_distance", "final_distance",
                 "moved_closer_rate")  # fmt: skip
"""Per-episode measures :func:`run_goal_set` averages per goal and overall."""


def check_goal_set(cfg, task_set: str, goal_index: int = 0) -> None:
    """Refuse an unknown goal set, one on another domain than the run's, or a goal index out of range."""
    if task_set not in goal_set_names():
        raise ValueError(f"Unknown goal task set {task_set!r}; allowed: {', '.join(goal_set_names())}.")
    if cfg.env.suite != "dmc":
        raise ValueError(f"Goal task sets are DeepMind Control tasks but this run is on {cfg.env.suite!r}; "
                         "evaluate it with `worldmodels eval RUN_DIR --episodes N`.")  # fmt: skip
    domain, _ = goal_domain_task(task_set)
    if domain != cfg.env.domain:
        raise ValueError(f"Goal set {task_set!r} is on the {domain} domain but this run was trained on {cfg.env.domain}.")
    if not 0 <= goal_index < num_goals(task_set):
        raise ValueError(f"Goal index {goal_index} is out of range for {task_set!r} (0..{num_goals(task_set) - 1}).")


def make_goal_set_env(cfg, task_set: str, goal_index: int):
    """The run's env settings on goal ``goal_index`` of ``task_set`` (checked by :func:`check_goal_set`)."""
    check_goal_set(cfg, task_set, goal_index)
    return make_goal_env(task_set, goal_index=goal_index, image_size=cfg.env.image_size,
                         action_repeat=cfg.env.action_repeat, episode_length=cfg.env.episode_length,
                         seed=cfg.seed + 20_000 + goal_index)  # fmt: skip


def true_goal_distances(task_set: str, rollout, goal_index: int | None) -> tuple[float, np.ndarray]:
    """Simulator-state distance to the episode's goal: at reset (float) and after each step ``[T]``."""
    goal_state = rollout[keys.GOAL_STATE][0]
    start = float(goal_distance(task_set, rollout[keys.STATE][0], goal_state, goal_index))
    return start, goal_distance(task_set, rollout[keys.NEXT, keys.STATE], goal_state, goal_index)


def episode_seed(cfg, goal_index: int, episode: int) -> int:
    """Seed of episode ``episode`` toward goal ``goal_index`` (its start state and the agent's noise).

    A function of the two indices only, so a sharded evaluation matches one process's; episode 0
    uses the goal env's construction seed (:func:`make_goal_set_env`).
    """
    return cfg.seed + 20_000 + goal_index + 1_000 * episode


def goal_episode(env, task_set: str, goal_index: int, agent_for, seed: int, keep_frames: bool = False) -> dict:
    """One episode toward goal ``goal_index`` from the start state of ``seed``: the measures of
    :data:`EPISODE_STATS` (+ with ``keep_frames``, ``frames`` uint8 ``[T+1, C, H, W]`` and ``goal_pixels``)."""
    env.set_seed(seed)
    with seeded(seed):
        goal_pixels = env.reset()[keys.GOAL_PIXELS]
        rollout = collect_episode(env, agent_for(goal_pixels))
    start, path = true_goal_distances(task_set, rollout, goal_index)
    record = {
        "success_rate": bool(rollout[keys.NEXT, keys.SUCCESS][-1]),
        "reached_rate": bool(rollout[keys.NEXT, keys.SUCCESS].any()),
        "initial_distance": float(start),
        "min_distance": float(path.min()),
        "final_distance": float(path[-1]),
        "moved_closer_rate": bool(path[-1] < start),
    }
    if keep_frames:
        record["frames"], record["goal_pixels"] = episode_frames(rollout), goal_pixels
    return record


def run_goal_set(cfg, task_set: str, agent_for, episodes: int = 1, video_dir=None, progress: bool = True,
                 team=None) -> dict:  # fmt: skip
    """Act toward every goal of ``task_set`` (``episodes`` each) with ``agent_for(goal_pixels [C,H,W])``.

    ``success_rate`` is read at the episode's last step (LEXA's protocol); ``reached_rate`` counts
    an episode as a success if the goal was reached at any step (PLDM's protocol, whose episodes end
    on success). True-state distances to the goal: ``initial_distance`` at reset, ``min_distance``
    the closest approach, ``final_distance`` at the last step; ``moved_closer_rate`` is the fraction
    of episodes that end closer than they started. With ``video_dir``, one video per goal shows the
    observation beside the goal image. Each ``per_goal`` entry also keeps its episodes' values
    (``"episodes": {measure: [value per episode]}``, booleans as 0.0 / 1.0) for intervals and checks.

    With a ``team`` (``evaluation.sharding``; ``torchrun``), rank r runs the (goal, episode) pairs
    r, r + K, ... of the goal-major list, each from the seeds of :func:`episode_seed`; one gather
    merges them, so every rank returns what one process would. Only rank 0 shows progress and writes
    the videos.
    """
    check_goal_set(cfg, task_set)
    names = goal_names(task_set)
    rank, _ = rank_and_size(team)
    work = [(goal, episode) for goal in range(num_goals(task_set)) for episode in range(episodes)]
    records, env, env_goal = [], None, None
    try:
        for goal, episode in tqdm(my_share(work, team), desc=f"goals {task_set}", disable=not progress or rank != 0):
            if goal != env_goal:  # the share is goal-major: one env per goal of this rank
                if env is not None:
                    env.close()
                env, env_goal = make_goal_set_env(cfg, task_set, goal), goal
            record = goal_episode(env, task_set, goal, agent_for, episode_seed(cfg, goal, episode),
                                  keep_frames=bool(video_dir) and episode == 0)  # fmt: skip
            records.append({"item": goal * episodes + episode, **record})
    finally:
        if env is not None:
            env.close()
    records = merged(records, team, "item")
    per_goal = []
    for index in range(num_goals(task_set)):
        goal_records = records[index * episodes : (index + 1) * episodes]
        if video_dir and rank == 0:
            Path(video_dir).mkdir(parents=True, exist_ok=True)
            frames = side_by_side(goal_records[0]["frames"], goal_records[0]["goal_pixels"])
            write_video(frames, Path(video_dir) / f"goal_{index:02d}_{names[index]}.mp4", fps=20)
        stats = {k: [float(r[k]) for r in goal_records] for k in EPISODE_STATS}
        per_goal.append({"goal": index, "name": names[index], **{k: float(np.mean(v)) for k, v in stats.items()},
                         "episodes": stats})  # fmt: skip
    overall = {k: float(np.mean([g[k] for g in per_goal])) for k in EPISODE_STATS}
    return {"task_set": task_set, "episodes_per_goal": episodes, **overall, "per_goal": per_goal}


def act_toward_goal(env, model: WorldModel, agent, goal_pixels: torch.Tensor, steps: int, task_set: str | None = None,
                    goal_index: int | None = None, video_path=None) -> dict:  # fmt: skip
    """One episode of ``agent`` toward ``goal_pixels [C,H,W]`` for ``steps`` agent steps.

    Returns the latent distances (cosine and L2 of ``embed_goal``) at the first and last frame and,
    when the env is a goal task set's (``task_set``), success and the true-state distances.
    """
    agent.reset(1)
    rollout = env.rollout(max_steps=steps, policy=agent, auto_reset=True, break_when_any_done=True)
    frames = episode_frames(rollout)
    distances = latent_distances(model, frames, goal_pixels)
    result = {
        "steps": int(rollout.shape[0]),
        "initial_cosine_distance": float(distances["cosine_distance"][0]),
        "final_cosine_distance": float(distances["cosine_distance"][-1]),
        "initial_l2": float(distances["l2"][0]),
        "final_l2": float(distances["l2"][-1]),
    }
    if task_set is not None:
        start, path = true_goal_distances(task_set, rollout, goal_index)
        result["success"] = bool(rollout[keys.NEXT, keys.SUCCESS][-1])
        result["initial_goal_distance"] = float(start)
        result["final_goal_distance"] = float(path[-1])
    if video_path:
        result["video"] = str(write_video(side_by_side(frames, goal_pixels), video_path, fps=20))
    return result
