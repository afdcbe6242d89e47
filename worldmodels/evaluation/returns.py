"""Task return of an agent: whole episodes without exploration noise, mean and std (+ a video)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import torch
from tqdm.auto import tqdm

from worldmodels.data.collect import collect_episode, episode_frames, episode_returns
from worldmodels.evaluation.sharding import merged, my_share, rank_and_size, seeded
from worldmodels.viz.video import write_video


def evaluate(env, agent, episodes: int, video_path: str | Path | None = None, progress: bool = False) -> dict:
    """Run ``episodes`` whole episodes with ``agent``; mean/std of returns (+ an mp4 of all of them).

    A batched env of N (``env.num_envs``) runs them N at a time (the last round's extras are
    dropped); the video then shows the first env's episodes.

    Returns:
        ``{"returns": [...], "mean": float, "std": float}`` (population std; 0 for one episode).
    """
    if episodes < 1:
        raise ValueError(f"Evaluation needs at least 1 episode, got episodes={episodes}.")
    returns, frames = [], []
    envs = env.batch_size.numel()  # a batched env (env.num_envs) runs its episodes side by side
    for _ in tqdm(range(math.ceil(episodes / envs)), desc="eval", disable=not progress, leave=False):
        rollout = collect_episode(env, agent)  # [T] or [N, T]
        returns.extend(episode_returns(rollout)[: episodes - len(returns)])
        if video_path is not None:
            frames.append(episode_frames(rollout if rollout.batch_dims == 1 else rollout[0]))
    if video_path is not None:
        video = torch.cat(frames).permute(0, 2, 3, 1).numpy()
        write_video(video, video_path, fps=20)
    std = statistics.pstdev(returns) if len(returns) > 1 else 0.0
    return {"returns": returns, "mean": statistics.fmean(returns), "std": std}


def evaluate_seeded(env, agent, episodes: int, env_seed: int, torch_seed: int, team=None,
                    video_path: str | Path | None = None, progress: bool = False) -> dict:  # fmt: skip
    """Like :func:`evaluate` on an unbatched ``env``, but episode ``i`` starts from ``env.set_seed(env_seed + i)``
    with the torch RNG (the agent's noise) at ``torch_seed + i``, so it can be split across a team.

    With a ``team`` (``evaluation.sharding``; ``torchrun``), rank r runs episodes r, r + K, ...; one
    gather merges the returns in episode order, the same for every K. Only rank 0 shows progress and
    writes the video (all episodes, in order).

    Returns:
        ``{"returns": [...], "mean": float, "std": float}`` on every rank.
    """
    if episodes < 1:
        raise ValueError(f"Evaluation needs at least 1 episode, got episodes={episodes}.")
    if env.batch_size.numel() != 1:
        raise ValueError("evaluate_seeded runs one env; evaluate a batched env (env.num_envs > 1) with evaluate().")
    rank, _ = rank_and_size(team)
    records = []
    for index in tqdm(my_share(range(episodes), team), desc="eval", disable=not progress or rank != 0, leave=False):
        env.set_seed(env_seed + index)
        with seeded(torch_seed + index):
            rollout = collect_episode(env, agent)
        record = {"item": index, "return": episode_returns(rollout)[0]}
        if video_path is not None:
            record["frames"] = episode_frames(rollout)
        records.append(record)
    records = merged(records, team, "item")
    if video_path is not None and rank == 0:
        write_video(torch.cat([r["frames"] for r in records]).permute(0, 2, 3, 1).numpy(), video_path, fps=20)
    returns = [r["return"] for r in records]
    std = statistics.pstdev(returns) if len(returns) > 1 else 0.0
    return {"returns": returns, "mean": statistics.fmean(returns), "std": std}
