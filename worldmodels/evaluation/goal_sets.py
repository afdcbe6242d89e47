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


def run_goal_set(cfg, task_set: str, agent_for, episodes: int = 1, video_dir=None, progress: bool = True) -> dict:
    """Act toward every goal of ``task_set`` (``episodes`` each) with ``agent_for(goal_pixels [C,H,W])``.

    ``success_rate`` is read at the episode's last step (LEXA's protocol); ``reached_rate`` counts
    an episode as a success if the goal was reached at any step (PLDM's protocol, whose episodes end
    on success). True-state distances to the goal: ``initial_distance`` at reset, ``min_distance``
    the closest approach, ``final_distance`` at the last step; ``moved_closer_rate`` is the fraction
    of episodes that end closer than they started. With ``video_dir``, one video per goal shows the
    observation beside the goal image. Each ``per_goal`` entry also keeps its episodes' values
    (``"episodes": {measure: [value per episode]}``, booleans as 0.0 / 1.0) for intervals and checks.
    """
    check_goal_set(cfg, task_set)
    names = goal_names(task_set)
    per_goal = []
    for index in tqdm(range(num_goals(task_set)), desc=f"goals {task_set}", disable=not progress):
        env = make_goal_set_env(cfg, task_set, index)
        stats = {name: [] for name in EPISODE_STATS}
        for episode in range(episodes):
            goal_pixels = env.reset()[keys.GOAL_PIXELS]
            rollout = collect_episode(env, agent_for(goal_pixels))
            start, path = true_goal_distances(task_set, rollout, index)
            stats["success_rate"].append(bool(rollout[keys.NEXT, keys.SUCCESS][-1]))
            stats["reached_rate"].append(bool(rollout[keys.NEXT, keys.SUCCESS].any()))
            stats["initial_distance"].append(float(start))
            stats["min_distance"].append(float(path.min()))
            stats["final_distance"].append(float(path[-1]))
            stats["moved_closer_rate"].append(bool(path[-1] < start))
            if video_dir and episode == 0:
                Path(video_dir).mkdir(parents=True, exist_ok=True)
                frames = side_by_side(episode_frames(rollout), goal_pixels)
                write_video(frames, Path(video_dir) / f"goal_{index:02d}_{names[index]}.mp4", fps=20)
        env.close()
        per_goal.append({"goal": index, "name": names[index], **{k: float(np.mean(v)) for k, v in stats.items()},
                         "episodes": {k: [float(x) for x in v] for k, v in stats.items()}})  # fmt: skip
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
