"""Acting toward goal images with a trained model: ``worldmodels plan`` and ``eval --goals``.

The goal image is embedded with ``model.embed_goal`` and a planner (CEM or MPPI) maximises a
``GoalDistanceObjective`` (cosine similarity summed over the imagined steps, as LEXA's
``lexa_cosine`` reward; PLDM runs use PLDM's squared L2 over the last 3 steps) -- the same
plumbing for every model of the interface. On goal
task sets (``envs/goals.py``) success is measured from the true simulator state, not pixels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from worldmodels.core import keys
from worldmodels.core.interface import WorldModel


def load_goal_image(path: str | Path, image_shape: tuple[int, int, int], resize: bool = False) -> torch.Tensor:
    """Read a goal image (PNG/JPG/..., or ``.npy``) as uint8 ``[C, H, W]`` matching ``image_shape``.

    Refuses, with one sentence each: a missing or unreadable file, NaN/inf values, a wrong number
    of channels, and a size different from the model's unless ``resize`` (then bilinear resize).
    """
    path = Path(path)
    c, h, w = image_shape
    if not path.is_file():
        raise FileNotFoundError(f"Goal image {str(path)!r} does not exist.")
    try:
        if path.suffix == ".npy":
            array = np.load(path)
        else:
            import imageio.v3 as iio

            array = iio.imread(path)
    except Exception as err:  # imageio/numpy raise many types for a bad file
        raise ValueError(f"Could not read goal image {str(path)!r}: {err}") from err
    array = np.asarray(array)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"Goal image {str(path)!r} contains NaN or inf values.")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"Goal image {str(path)!r} is float with values outside [0, 1]; save it as uint8 or in [0, 1].")
        array = np.round(array * 255).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ValueError(f"Goal image {str(path)!r} has dtype {array.dtype}; expected 8-bit (uint8) pixels.")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"Goal image {str(path)!r} has shape {array.shape}; expected an image [H, W, C].")
    if array.shape[0] == c and array.shape[-1] != c:  # channels-first .npy
        array = array.transpose(1, 2, 0)
    if c == 2 and array.shape[-1] == 3:  # Two Rooms: an RGB rendering holds (agent, walls, 0)
        array = array[..., :2]
    if array.shape[-1] != c:
        raise ValueError(
            f"Goal image {str(path)!r} has {array.shape[-1]} channel(s); the model observes {c}-channel images"
            + (" (save it as RGB without alpha)." if c == 3 else ".")
        )
    if array.shape[:2] != (h, w):
        if not resize:
            raise ValueError(
                f"Goal image {str(path)!r} is {array.shape[1]}x{array.shape[0]} but the model observes {w}x{h}; "
                "pass --resize to resize it."
            )
        from PIL import Image

        channels = [np.asarray(Image.fromarray(array[..., i]).resize((w, h), Image.BILINEAR)) for i in range(c)]
        array = np.stack(channels, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def goal_agent(cfg, model: WorldModel, planner: str | None = None, metric: str | None = None):
    """A PlanningAgent whose objective is the latent distance to a goal (set with ``objective.set_goal_pixels``).

    Default objective per method: PLDM's squared L2 over the last 3 imagined steps (Sobal et al.
    2025) for ``pldm``; otherwise LEXA's cosine similarity summed over all steps (``lexa_cosine``).
    """
    from planners.agents import PlanningAgent
    from planners.objectives import GoalDistanceObjective
    from worldmodels.methods import make_planner

    if planner is not None:
        cfg = dataclasses.replace(cfg, planner=planner)
    pldm = cfg.method == "pldm"
    metric = metric or ("l2" if pldm else "cosine")
    objective = GoalDistanceObjective(model, metric=metric, steps="last_k" if pldm else "all", k=3)
    agent = PlanningAgent(model, make_planner(cfg, model, objective), model.action_dim, exploration_noise=0.0)
    return agent, objective


@torch.inference_mode()
def latent_distances(model: WorldModel, pixels: torch.Tensor, goal: torch.Tensor) -> dict:
    """Cosine distance and L2 distance between ``embed_goal`` of observations ``[N,C,H,W]`` and of the goal."""
    dev = model.device
    feats = model.embed_goal(pixels.to(dev))
    goal_feat = model.embed_goal(goal[None].to(dev)).expand_as(feats)
    cosine = torch.nn.functional.cosine_similarity(feats, goal_feat, dim=-1)
    return {"cosine_distance": (1 - cosine).cpu(), "l2": (feats - goal_feat).norm(dim=-1).cpu()}


def side_by_side(observations: torch.Tensor, goal: torch.Tensor, upscale: int = 3) -> np.ndarray:
    """Video frames: each observation ``[T,C,H,W]`` beside the goal ``[C,H,W]`` -> uint8 ``[T,H',W',3]``."""
    goal_frames = goal[None].expand_as(observations)
    gap = torch.full_like(observations[..., :2], 255)
    frames = torch.cat([observations, gap, goal_frames], dim=-1)  # [T,C,H,2W+2]
    if frames.shape[1] == 2:  # two-channel (Two Rooms): show as RG
        frames = torch.cat([frames, torch.zeros_like(frames[:, :1])], dim=1)
    frames = frames.repeat_interleave(upscale, -1).repeat_interleave(upscale, -2)
    return frames.permute(0, 2, 3, 1).cpu().numpy()


def plan_to_goal(run_dir, goal: str, planner: str | None = None, steps: int | None = None,
                 video_path=None, resize: bool = False, device=None, metric: str | None = None) -> dict:  # fmt: skip
    """``worldmodels plan``: act toward a goal image; report the final latent distance (and success).

    Planning methods plan toward the goal's latent (CEM/MPPI); LEXA runs act with their achiever.

    ``goal`` is an image file, or ``TASKSET:INDEX`` (e.g. ``point_mass:3``) to use a goal of a
    goal task set, in which case success is measured from the true state.
    """
    from worldmodels.data.collect import episode_frames, episode_steps
    from worldmodels.training.online import load_trained
    from worldmodels.viz.openloop import write_video

    cfg, env, model, behaviour = load_trained(run_dir, device=device)
    goal_state_env = None
    if not Path(goal).exists() and ":" in goal:
        task_set, index = goal.split(":", 1)
        goal_state_env = _goal_env(cfg, task_set, int(index))
        env.close()
        env = goal_state_env
        goal_pixels = env.reset()[keys.GOAL_PIXELS]
    else:
        goal_pixels = load_goal_image(goal, model.image_shape, resize=resize)
    agent = goal_agent_factory(cfg, model, behaviour, planner, metric)(goal_pixels)
    agent.reset(1)
    rollout = env.rollout(max_steps=steps or episode_steps(env), policy=agent, auto_reset=True, break_when_any_done=True)
    frames = episode_frames(rollout)
    dist = latent_distances(model, frames, goal_pixels)
    result = {
        "steps": int(rollout.shape[0]),
        "initial_cosine_distance": float(dist["cosine_distance"][0]),
        "final_cosine_distance": float(dist["cosine_distance"][-1]),
        "initial_l2": float(dist["l2"][0]),
        "final_l2": float(dist["l2"][-1]),
    }
    if goal_state_env is not None:
        start, path = true_goal_distances(goal_state_env.task_set, rollout, goal_state_env.current_goal_index)
        result["success"] = bool(rollout[keys.NEXT, keys.SUCCESS][-1])
        result["initial_goal_distance"] = float(start)
        result["final_goal_distance"] = float(path[-1])
    if video_path:
        result["video"] = str(write_video(side_by_side(frames, goal_pixels), video_path, fps=20))
    env.close()
    return result


def check_goal_set(cfg, task_set: str, goal_index: int = 0) -> None:
    """Refuse an unknown goal set, one on another domain than the run's, or a goal index out of range."""
    from envs.goals import goal_domain_task, goal_set_names, num_goals

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


def _goal_env(cfg, task_set: str, goal_index: int):
    from envs.goals import make_goal_env

    check_goal_set(cfg, task_set, goal_index)
    return make_goal_env(task_set, goal_index=goal_index, image_size=cfg.env.image_size,
                         action_repeat=cfg.env.action_repeat, episode_length=cfg.env.episode_length,
                         seed=cfg.seed + 20_000 + goal_index)  # fmt: skip


def goal_agent_factory(cfg, model: WorldModel, behaviour=None, planner: str | None = None, metric: str | None = None):
    """``agent_for(goal_pixels [C, H, W]) -> agent`` acting toward that goal image.

    LEXA runs act with the achiever (goal-conditioned policy on the goal's embedding); every other
    model plans toward the goal with :func:`goal_agent`'s latent-distance objective.
    """
    if cfg.method == "lexa":
        from planners.agents import PolicyAgent

        return lambda goal_pixels: PolicyAgent(model, behaviour.achiever_policy(goal_pixels))
    agent, objective = goal_agent(cfg, model, planner, metric)

    def agent_for(goal_pixels: torch.Tensor):
        objective.set_goal_pixels(goal_pixels[None].to(model.device))
        return agent

    return agent_for


def true_goal_distances(task_set: str, rollout, goal_index: int | None) -> tuple[float, np.ndarray]:
    """Simulator-state distance to the episode's goal: at reset (float) and after each step ``[T]``."""
    from envs.goals import goal_distance

    goal_state = rollout[keys.GOAL_STATE][0]
    start = float(goal_distance(task_set, rollout[keys.STATE][0], goal_state, goal_index))
    return start, goal_distance(task_set, rollout[keys.NEXT, keys.STATE], goal_state, goal_index)


_EPISODE_STATS = ("success_rate", "reached_rate", "initial_distance", "min_distance", "final_distance",
                  "moved_closer_rate")
"""Per-episode measures :func:`run_goal_set` averages per goal and overall."""


def run_goal_set(cfg, model: WorldModel, task_set: str, agent_for, episodes: int = 1, video_dir=None,
                 progress: bool = True) -> dict:  # fmt: skip
    """Act toward every goal of ``task_set`` (``episodes`` each) with ``agent_for(goal_pixels)``.

    ``success_rate`` is read at the episode's last step (LEXA's protocol); ``reached_rate`` counts
    an episode as a success if the goal was reached at any step (PLDM's protocol, whose episodes end
    on success). True-state distances to the goal: ``initial_distance`` at reset, ``min_distance``
    the closest approach, ``final_distance`` at the last step; ``moved_closer_rate`` is the fraction
    of episodes that end closer than they started. With ``video_dir``, one video per goal shows the
    observation beside the goal image.
    """
    from envs.goals import goal_names, num_goals
    from worldmodels.data.collect import collect_episode, episode_frames
    from worldmodels.viz.openloop import write_video

    check_goal_set(cfg, task_set)
    names = goal_names(task_set)
    per_goal = []
    for index in tqdm(range(num_goals(task_set)), desc=f"goals {task_set}", disable=not progress):
        genv = _goal_env(cfg, task_set, index)
        stats = {name: [] for name in _EPISODE_STATS}
        for episode in range(episodes):
            goal_pixels = genv.reset()[keys.GOAL_PIXELS]
            rollout = collect_episode(genv, agent_for(goal_pixels))
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
        genv.close()
        per_goal.append({"goal": index, "name": names[index], **{k: float(np.mean(v)) for k, v in stats.items()}})
    overall = {k: float(np.mean([g[k] for g in per_goal])) for k in _EPISODE_STATS}
    return {"task_set": task_set, "episodes_per_goal": episodes, **overall, "per_goal": per_goal}


def evaluate_goals(run_dir, task_set: str, episodes: int = 1, planner: str | None = None,
                   video_dir=None, device=None, metric: str | None = None) -> dict:  # fmt: skip
    """``worldmodels eval --goals TASKSET``: success rate per goal and overall, measured from state
    (see :func:`run_goal_set`); LEXA runs use their achiever, other runs plan toward the goal."""
    from worldmodels.training.online import load_trained

    cfg, env, model, behaviour = load_trained(run_dir, device=device)
    env.close()
    agent_for = goal_agent_factory(cfg, model, behaviour, planner, metric)
    return run_goal_set(cfg, model, task_set, agent_for, episodes, video_dir)
