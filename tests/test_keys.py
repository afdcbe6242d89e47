"""Real DMC data, flattened into rows, obeys the alignment rule written in worldmodels/core/keys.py."""

import os


import pytest
import torch
from torchrl.collectors import Collector  # torchrl 0.14 name of SyncDataCollector
from torchrl.envs.utils import RandomPolicy

from envs.dmc import DMCEnv
from worldmodels.core import keys
from worldmodels.data.replay import SequenceReplay
from worldmodels.data.rows import steps_to_rows

STEPS = 5  # cartpole: episode_length 40 env steps / action repeat 8


@pytest.fixture(scope="module")
def env():
    env = DMCEnv("cartpole", "swingup", image_size=32, episode_length=40, seed=3, proprio=True)
    yield env
    env.close()


def assert_alignment(rows, steps):
    """``rows`` [T+1] are the row form of the torchrl ``steps`` [T] of one whole episode."""
    nxt = steps[keys.NEXT]
    assert rows.shape[0] == steps.shape[0] + 1
    assert torch.equal(rows[keys.PIXELS][0], steps[keys.PIXELS][0])
    assert torch.equal(rows[keys.PIXELS][1:], nxt[keys.PIXELS])  # pixels[t+1] = ("next","pixels")[t]
    for key in (keys.STATE, keys.PROPRIO):  # every observation key follows pixels
        assert torch.equal(rows[key][0], steps[key][0]) and torch.equal(rows[key][1:], nxt[key])
    assert torch.equal(rows[keys.ACTION][:-1], steps[keys.ACTION])  # taken at t
    assert not rows[keys.ACTION][-1].any()  # no action on the last row
    assert torch.equal(rows[keys.PREV_ACTION][1:], rows[keys.ACTION][:-1])  # prev_action[t] = action[t-1]
    assert not rows[keys.PREV_ACTION][0].any()  # zeros at is_first
    assert rows[keys.REWARD][0].item() == 0.0  # 0 at is_first
    assert torch.equal(rows[keys.REWARD][1:], nxt[keys.REWARD])  # reward[t] = ("next","reward")[t-1]
    assert rows[keys.IS_FIRST].flatten().tolist() == [True] + [False] * steps.shape[0]
    assert rows[keys.IS_LAST].flatten().tolist() == [False] * steps.shape[0] + [True]
    assert torch.equal(rows[keys.IS_TERMINAL][-1], nxt[keys.TERMINATED][-1])
    assert rows[keys.PIXELS].dtype == torch.uint8 and rows[keys.REWARD].shape[-1] == 1


def test_env_rollout_rows_obey_alignment_rule(env):
    steps = env.rollout(100, break_when_any_done=True)
    assert steps.shape == (STEPS,) and steps[keys.IS_FIRST][0] and steps[keys.NEXT, keys.DONE][-1]
    assert steps[keys.NEXT, keys.REWARD].abs().sum() > 0  # so the reward shift is really checked
    assert_alignment(steps_to_rows(steps), steps)


def test_collector_chunks_in_replay_obey_alignment_rule(env, tmp_path):
    """A torchrl collector delivers 3-step chunks that cut 5-step episodes; the replay stitches them."""
    collector = Collector(env, RandomPolicy(env.action_spec), frames_per_batch=3, total_frames=15)
    replay = SequenceReplay(tmp_path, capacity=100)
    chunks = []
    for chunk in collector:
        chunks.append(chunk.clone())
        replay.add_rollout(chunk)
    collector.shutdown()
    data = torch.cat(chunks)  # [15] consecutive steps of 3 episodes
    assert replay.num_episodes == 3 and replay.num_pending_steps == 0
    for episode in range(3):
        steps = data[episode * STEPS : (episode + 1) * STEPS]
        assert steps[keys.IS_FIRST][0] and steps[keys.NEXT, keys.DONE][-1]
        assert_alignment(replay.episode(episode), steps)
    batch = replay.sample(4, STEPS + 1)  # whole episodes: every window starts its episode
    assert batch[keys.IS_FIRST][:, 0].all() and batch[keys.IS_LAST][:, -1].all()
