"""``env.num_envs`` environments in worker processes: torchrl's ``ParallelEnv`` over :func:`envs.make_env`.

The batched env has batch size ``[N]``; ``rollout`` returns ``[N, T]`` steps, which
``SequenceReplay.add_rollout`` turns into one episode per env (row ``n`` is env ``n``), and the
agents act for the ``[N]`` observations in one call. Sub-env ``n`` is seeded ``seed + n`` by
torchrl's ``set_seed``; a single env (``num_envs: 1``) is returned as is.
"""

from __future__ import annotations

import functools

from torchrl.envs import EnvCreator, ParallelEnv

from envs import make_env
from worldmodels.core.config import EnvConfig


def make_batched_env(cfg: EnvConfig, seed: int = 0):
    """``cfg.num_envs`` envs of ``cfg`` stepped in worker processes, or the one env itself when 1.

    The attributes the loops read from a single env (``action_repeat``, ``episode_length``) are
    copied onto the batched one from a probe env, so callers need not tell the two apart.
    """
    if cfg.num_envs == 1:
        return make_env(cfg, seed=seed)
    probe = make_env(cfg, seed=seed)
    action_repeat, episode_length = probe.action_repeat, probe.episode_length
    probe.close()
    env = ParallelEnv(cfg.num_envs, EnvCreator(functools.partial(make_env, cfg, seed)), mp_start_method="spawn")
    env.set_seed(seed)
    env.action_repeat, env.episode_length = action_repeat, episode_length
    return env
