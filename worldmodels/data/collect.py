"""Acting in an env to produce data: whole episodes as torchrl rollouts, random-policy datasets.

* :func:`collect_episode` -- one episode with an agent (or random actions) as a rollout ``[T]``;
  :func:`episode_steps`, :func:`episode_return`, :func:`episode_frames` read sizes and results.
* :func:`collect_random_episodes` -- uniform-random-policy episodes into an episode dataset.
* :func:`collect_command` -- ``worldmodels collect``: the same for a DeepMind Control task.

Rollouts become rows by :func:`worldmodels.data.rows.steps_to_rows` (the alignment rule).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tensordict import TensorDict
from tqdm import tqdm

from envs import make_env
from worldmodels.core import keys
from worldmodels.core.config import EnvConfig
from worldmodels.core.paths import writable_directory
from worldmodels.data.datasets import EpisodeDatasetWriter
from worldmodels.data.rows import steps_to_rows

__all__ = ["episode_steps", "collect_episode", "episode_return", "episode_returns", "episode_frames",
           "random_actions", "collect_random_episodes", "collect_command"]  # fmt: skip

_MAX_EPISODE_STEPS = 1_000_000


def episode_steps(env) -> int:
    """Agent steps in one episode (env steps / action repeat, rounded up)."""
    return math.ceil(env.episode_length / env.action_repeat)


def collect_episode(env, agent=None) -> TensorDict:
    """One whole episode as a torchrl rollout ``[T]`` (random actions when ``agent`` is None); from a
    batched env (``envs.parallel``, batch ``[N]``) one episode per env, ``[N, T]``, the agent acting
    for all N in one call. The rollout ends when any env's episode ends (DMC episodes have one
    length, so all end together; a cut one stays pending in the replay and is committed truncated)."""
    if agent is not None:
        agent.reset(env.batch_size.numel())
    return env.rollout(
        max_steps=episode_steps(env) + 1, policy=agent, auto_reset=True, break_when_any_done=True
    )


def episode_return(rollout: TensorDict) -> float:
    """Summed reward of a rollout ``[T]``."""
    return float(rollout[keys.NEXT, keys.REWARD].sum())


def episode_returns(rollout: TensorDict) -> list[float]:
    """Summed reward per env of a rollout ``[T]`` (one value) or ``[N, T]`` (N values)."""
    reward = rollout[keys.NEXT, keys.REWARD].reshape(*rollout.shape, -1)  # [(N,) T, 1]
    return reward.sum(dim=(-2, -1)).reshape(-1).tolist()


def episode_frames(rollout: TensorDict) -> torch.Tensor:
    """All observations of a rollout, uint8 ``[T+1, C, H, W]`` (first obs + every next obs)."""
    return torch.cat([rollout[keys.PIXELS][:1], rollout[keys.NEXT, keys.PIXELS]], dim=0)


def random_actions(action_spec, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform actions in the spec's box. Shapes: ``-> [steps, A]``."""
    low, high = action_spec.space.low, action_spec.space.high  # [A]
    return low + (high - low) * torch.rand(steps, *low.shape, generator=generator)


def collect_random_episodes(env, num_episodes: int, writer_or_directory, seed: int = 0, progress: bool = True,
                            store_pixels: bool = True, env_config: dict | None = None) -> EpisodeDatasetWriter:
    """Run ``num_episodes`` uniform-random-policy episodes of a torchrl env into a dataset.

    Each episode is one ``env.rollout`` to its end (time limit or terminal), flattened into rows
    by :func:`worldmodels.data.rows.steps_to_rows` and written atomically.

    Args:
        env: torchrl env (e.g. ``envs.dmc.DMCEnv``) with a bounded ``action_spec``.
        writer_or_directory: an :class:`~worldmodels.data.datasets.EpisodeDatasetWriter`, or a
            directory for a new one made with ``env_config`` and ``store_pixels``.
        seed: seeds the env and the action sampler.

    Returns:
        the writer (``writer.num_episodes`` episodes on disk).
    """
    writer = writer_or_directory
    if not isinstance(writer, EpisodeDatasetWriter):
        writer = EpisodeDatasetWriter(writer_or_directory, env_config or {}, store_pixels)
    generator = torch.Generator().manual_seed(seed)
    env.set_seed(seed)

    def policy(td):
        return td.set(keys.ACTION, random_actions(env.action_spec, 1, generator)[0])

    for _ in tqdm(range(num_episodes), desc="collect", unit="ep", disable=not progress):
        with torch.inference_mode():
            rollout = env.rollout(_MAX_EPISODE_STEPS, policy=policy, break_when_any_done=True)
        if not rollout[-1].get((keys.NEXT, keys.DONE)).all():
            raise ValueError(f"an episode did not end within {_MAX_EPISODE_STEPS} steps; give the env a time limit.")
        writer.add_episode(steps_to_rows(rollout.clone()))
    return writer


def collect_command(domain: str, task: str, episodes: int, out, image_size: int = 64,
                    action_repeat: int | None = None, episode_length: int = 1000, seed: int = 0,
                    store_pixels: bool = True, progress: bool = True) -> Path:
    """``worldmodels collect --domain D --task T --episodes N --out DIR [--no-pixels]``.

    Runs ``episodes`` uniform-random-policy episodes of the DeepMind Control task
    (``envs.make_env`` with ``suite="dmc"``) and writes them to the dataset directory ``out``
    (appending if it already holds a dataset). ``episodes < 1`` and an ``out`` that cannot be a
    writable directory are refused (ValueError, one sentence) before the env is made.

    Args:
        image_size: rendered square side (PlaNet/Dreamer: 64).
        action_repeat: None = PlaNet's per-domain value.
        episode_length: env steps per episode (DMC: 1000).
        store_pixels: False (``--no-pixels``) stores state only; frames must then be re-rendered.

    Returns:
        ``Path(out)``.
    """
    if episodes < 1:
        raise ValueError(f"--episodes must be an integer >= 1, got {episodes}.")
    config = EnvConfig(suite="dmc", domain=domain, task=task, image_size=image_size, action_repeat=action_repeat,
                       episode_length=episode_length)  # fmt: skip
    writable_directory(out, "--out")  # before the env is made
    env = make_env(config, seed=seed)
    env_config = {"suite": "dmc", "domain": domain, "task": task, "image_size": image_size,
                  "camera": env.camera, "action_repeat": env.action_repeat, "episode_length": episode_length, "seed": seed}
    try:
        collect_random_episodes(env, episodes, EpisodeDatasetWriter(out, env_config, store_pixels), seed, progress)
    finally:
        env.close()
    return Path(out)
