"""``env.num_envs: N``: N DMC envs in torchrl ParallelEnv workers, the agent acting for all in one call.

* a batched rollout ``[2, T]`` becomes one replay episode per env, each obeying the alignment rule
  of ``worldmodels/core/keys.py`` (checked row by row against that env's own steps);
* a tiny training run with 2 envs keeps the train ratio (updates per episode) of the config;
* (slow) kill -9 of a 2-env run, then ``--resume``: every completed episode of both envs is kept.
"""

import signal
import subprocess
import time

import pytest
import torch

from envs.parallel import make_batched_env
from tests.test_faults import REPO, SUBPROCESS_ENV, cli, counters_of, replay_state, run_cli, tiny_yaml
from tests.test_training import tiny_config
from worldmodels.core import keys
from worldmodels.core.config import EnvConfig
from worldmodels.data.collect import collect_episode, episode_returns
from worldmodels.data.replay import SequenceReplay
from worldmodels.methods import train
from worldmodels.training.logger import read_metrics
from worldmodels.training.online import updates_owed

ENV = EnvConfig(domain="cartpole", task="swingup", image_size=32, episode_length=40, action_repeat=8, num_envs=2)
STEPS = 40 // 8


def assert_alignment(rows, steps):
    """``rows`` [T+1] are the row form (keys.py alignment rule) of one env's whole-episode steps [T]."""
    nxt = steps[keys.NEXT]
    assert rows.shape[0] == steps.shape[0] + 1
    assert torch.equal(rows[keys.PIXELS][0], steps[keys.PIXELS][0])
    assert torch.equal(rows[keys.PIXELS][1:], nxt[keys.PIXELS])  # pixels[t+1] = ("next","pixels")[t]
    assert torch.equal(rows[keys.STATE][1:], nxt[keys.STATE])
    assert torch.equal(rows[keys.ACTION][:-1], steps[keys.ACTION]) and not rows[keys.ACTION][-1].any()
    assert torch.equal(rows[keys.PREV_ACTION][1:], rows[keys.ACTION][:-1]) and not rows[keys.PREV_ACTION][0].any()
    assert rows[keys.REWARD][0].item() == 0.0 and torch.equal(rows[keys.REWARD][1:], nxt[keys.REWARD])
    assert rows[keys.IS_FIRST].flatten().tolist() == [True] + [False] * steps.shape[0]
    assert rows[keys.IS_LAST].flatten().tolist() == [False] * steps.shape[0] + [True]


class BatchedRandomAgent:
    """Random actions for the whole batch in one call; records the batch sizes it was called with."""

    def __init__(self, action_dim: int):
        self.action_dim, self.calls = action_dim, []

    def reset(self, batch_size):
        self.calls.append(("reset", batch_size))

    def __call__(self, td):
        self.calls.append(tuple(td.batch_size))
        return td.set(keys.ACTION, torch.rand(*td.batch_size, self.action_dim) * 2 - 1)


def test_two_envs_collect_one_aligned_episode_each_with_one_agent_call_per_step(tmp_path):
    env = make_batched_env(ENV, seed=5)
    try:
        agent = BatchedRandomAgent(env.action_spec.shape[-1])
        rollout = collect_episode(env, agent).clone()
    finally:
        env.close()
    assert rollout.shape == (2, STEPS)
    assert agent.calls == [("reset", 2)] + [(2,)] * STEPS  # one call per step for both envs
    replay = SequenceReplay(tmp_path, capacity=100)
    assert replay.add_rollout(rollout) == 2 and replay.num_pending_steps == 0
    for n in range(2):  # row n of the rollout is env n's episode, committed in env order
        assert rollout[n][keys.IS_FIRST][0] and rollout[n][keys.NEXT, keys.DONE][-1]
        assert_alignment(replay.episode(n), rollout[n])
    assert not torch.equal(rollout[0][keys.PIXELS][0], rollout[1][keys.PIXELS][0])  # seeded apart
    assert replay.episode_returns().tolist() == pytest.approx(episode_returns(rollout))


@pytest.mark.slow
def test_tiny_run_with_two_envs_keeps_the_train_ratio(tmp_path):
    cfg = tiny_config("env.num_envs=2", "train.total_episodes=4", "train.eval_every=2", "train.eval_episodes=2",
                      "train.final_eval_episodes=0")  # fmt: skip
    run_dir = train(cfg, run_dir=tmp_path / "run")
    replay = SequenceReplay(run_dir / "replay", capacity=1000)
    assert replay.num_episodes == 4 and replay.num_rows == 4 * (48 // 4 + 1)
    assert counters_of(run_dir)["updates"] == updates_owed(cfg, 4)  # C per collected episode, as with 1 env
    records = read_metrics(run_dir)
    assert sum("train/episode/return" in r for r in records) == 4
    assert sum("eval/episode/return" in r for r in records) == 2  # after episodes 2 and 4


@pytest.mark.slow
def test_kill_9_then_resume_with_two_envs_keeps_every_completed_episode(tmp_path):
    run_dir, config = tmp_path / "run", tiny_yaml(tmp_path, "env.num_envs=2")
    proc = subprocess.Popen(cli("train", str(config), "--run-dir", str(run_dir)), env=SUBPROCESS_ENV, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 180
    while replay_state(run_dir)[0] < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    episodes, rows, before = replay_state(run_dir)
    assert episodes >= 4 and episodes % 2 == 0, proc.stderr.read().decode()[-2000:]  # both envs' episodes, whole
    result = run_cli("train", "--resume", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    episodes, rows, after = replay_state(run_dir)
    assert episodes == 8 and rows == 8 * (48 // 4 + 1)  # 7 asked, 2 at a time
    for i, pixels in enumerate(before):
        assert torch.equal(after[i], pixels), f"episode {i} changed across the kill"
    assert counters_of(run_dir)["updates"] == 6 * (8 - 2 + 1)
