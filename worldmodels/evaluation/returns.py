"""Task return of an agent: whole episodes without exploration noise, mean and std (+ a video)."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from tqdm.auto import tqdm

from worldmodels.data.collect import collect_episode, episode_frames, episode_return
from worldmodels.viz.video import write_video


def evaluate(env, agent, episodes: int, video_path: str | Path | None = None, progress: bool = False) -> dict:
    """Run ``episodes`` whole episodes with ``agent``; mean/std of returns (+ an mp4 of all of them).

    Returns:
        ``{"returns": [...], "mean": float, "std": float}`` (population std; 0 for one episode).
    """
    if episodes < 1:
        raise ValueError(f"Evaluation needs at least 1 episode, got episodes={episodes}.")
    returns, frames = [], []
    for _ in tqdm(range(episodes), desc="eval", disable=not progress, leave=False):
        rollout = collect_episode(env, agent)
        returns.append(episode_return(rollout))
        if video_path is not None:
            frames.append(episode_frames(rollout))
    if video_path is not None:
        video = torch.cat(frames).permute(0, 2, 3, 1).numpy()
        write_video(video, video_path, fps=20)
    std = statistics.pstdev(returns) if len(returns) > 1 else 0.0
    return {"returns": returns, "mean": statistics.fmean(returns), "std": std}
