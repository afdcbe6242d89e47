"""Acting in an env to produce data: whole-episode rollouts, random-policy datasets, `worldmodels collect`."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch

from envs.two_rooms import TwoRoomsEnv
from worldmodels.core import keys
from worldmodels.data.collect import (
    collect_command,
    collect_episode,
    collect_random_episodes,
    episode_frames,
    episode_return,
    episode_steps,
)
from worldmodels.data.datasets import load_dataset
from worldmodels.data.rows import check_rows


def test_collect_episode_runs_one_whole_episode_and_reads_its_results():
    env = TwoRoomsEnv(episode_length=6, seed=0)
    assert episode_steps(env) == 6
    torch.manual_seed(0)
    rollout = collect_episode(env)
    assert rollout.shape[0] <= 6 and rollout[keys.NEXT, keys.DONE][-1] and not rollout[keys.NEXT, keys.DONE][:-1].any()
    frames = episode_frames(rollout)
    assert frames.shape == (rollout.shape[0] + 1, 2, 64, 64) and frames.dtype == torch.uint8
    assert torch.equal(frames[1:], rollout[keys.NEXT, keys.PIXELS])
    assert episode_return(rollout) == float(rollout[keys.NEXT, keys.REWARD].sum())


def test_collect_random_episodes_writes_whole_episodes_in_row_format(tmp_path):
    env = TwoRoomsEnv(episode_length=5, seed=0)
    writer = collect_random_episodes(env, 3, tmp_path, seed=2, progress=False, store_pixels=False,
                                     env_config={"suite": "two_rooms"})  # fmt: skip
    dataset = load_dataset(tmp_path)
    assert writer.num_episodes == dataset.num_episodes == 3 and dataset.env_config == {"suite": "two_rooms"}
    for position in range(3):
        episode = dataset.episode(position, pixels=False)
        check_rows(episode)
        assert keys.PIXELS not in episode.keys() and episode.shape[0] <= 6


def test_collect_command_writes_random_dmc_episodes(tmp_path):
    out = collect_command("cartpole", "swingup", episodes=2, out=tmp_path / "data", image_size=32,
                          episode_length=40, seed=1, progress=False)
    dataset = load_dataset(out)
    assert dataset.num_episodes == 2 and dataset.lengths.tolist() == [6, 6]  # 40 env steps / repeat 8 + 1
    assert dataset.env_config == {"suite": "dmc", "domain": "cartpole", "task": "swingup", "image_size": 32,
                                  "camera": 0, "action_repeat": 8, "episode_length": 40, "seed": 1}  # fmt: skip
    episode = dataset.episode(1)
    assert episode[keys.PIXELS].shape == (6, 3, 32, 32) and episode[keys.IS_LAST][-1]
    actions = episode[keys.ACTION][:-1]
    assert (actions.abs() <= 1).all() and actions.std() > 0.1  # uniform in [-1, 1], not constant
    assert not torch.equal(dataset.episode(0)[keys.ACTION], episode[keys.ACTION])
    states = collect_command("cartpole", "swingup", episodes=1, out=tmp_path / "states", image_size=32,
                             episode_length=40, store_pixels=False, progress=False)
    assert keys.PIXELS not in load_dataset(states).episode(0, pixels=False).keys()
