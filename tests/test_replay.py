"""SequenceReplay: windows stay inside episodes, chunked adds, disk persistence, kill -9, eviction."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from synthetic_episodes import assert_same_rows, expected_rows, synthetic_steps
from worldmodels.core import keys
from worldmodels.data.replay import SequenceReplay
from worldmodels.data.rows import steps_to_rows

REPO = Path(__file__).resolve().parents[1]


def test_windows_are_contiguous_inside_episodes_and_is_first_marks_true_starts(tmp_path):
    replay = SequenceReplay(tmp_path, capacity=500)
    replay.add_rollout(synthetic_steps([6, 2, 9, 3, 5]))  # 2-transition episode (3 rows) is too short
    torch.manual_seed(0)
    batch = replay.sample(64, 4)
    assert batch.shape == (64, 4)
    state = batch[keys.STATE]  # [B,T,2] = (episode, step)
    assert (state[..., 0] == state[:, :1, 0]).all(), "a window mixed two episodes"
    assert (state[..., 1].diff(dim=1) == 1).all(), "a window is not contiguous"
    assert (batch[keys.IS_FIRST][..., 0] == (state[..., 1] == 0)).all()
    assert not batch[keys.IS_FIRST][:, 1:].any()
    assert (batch[keys.EPISODE] == state[..., 0].long()).all()
    assert torch.equal(batch[keys.PREV_ACTION][:, 1:], batch[keys.ACTION][:, :-1])
    assert 1 not in state[..., 0].unique().tolist()  # too short: never sampled
    assert set(state[:, 0, 1].tolist()) >= {0.0}  # windows at episode starts do occur
    # uniform over valid windows: rows per episode 7, 3, 10, 4, 6 -> 4, 0, 7, 1, 3 window starts
    counts = torch.bincount(replay.sample(4000, 4)[keys.EPISODE][:, 0], minlength=5).float() / 4000
    assert torch.allclose(counts, torch.tensor([4, 0, 7, 1, 3]) / 15.0, atol=0.03)


def test_sample_errors_until_an_episode_is_long_enough(tmp_path):
    replay = SequenceReplay(tmp_path, capacity=100)
    with pytest.raises(ValueError, match="empty episode store"):
        replay.sample(2, 8)
    replay.add_rollout(synthetic_steps([3, 4]))
    with pytest.raises(ValueError, match=r"no stored episode is that long yet \(2 episodes, longest 5 rows\)"):
        replay.sample(2, 8)
    assert replay.sample(2, 5).shape == (2, 5)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        replay.sample(0, 5)


def test_chunked_rollouts_equal_whole_episode_adds(tmp_path):
    lengths = [7, 3, 11, 5]
    whole = SequenceReplay(tmp_path / "whole", capacity=200)
    for i, n in enumerate(lengths):
        whole.add_episode(expected_rows(i, n))
    chunked = SequenceReplay(tmp_path / "chunked", capacity=200)
    steps = synthetic_steps(lengths)
    committed = [chunked.add_rollout(steps[a:b]) for a, b in [(0, 2), (2, 9), (9, 10), (10, 26)]]
    assert committed == [0, 1, 1, 2] and chunked.num_pending_steps == 0
    # [N, T] collector output: two envs, chunks of 4 steps, each env continuing its own episodes
    batched = SequenceReplay(tmp_path / "batched", capacity=200)
    env_steps = torch.stack([synthetic_steps([5, 3]), synthetic_steps([2, 6], first_episode=10)])  # [2,8]
    for a in range(0, 8, 4):
        batched.add_rollout(env_steps[:, a : a + 4])
    for replay, episodes in [(whole, enumerate(lengths)), (chunked, enumerate(lengths))]:
        assert replay.num_episodes == 4 and replay.num_rows == sum(lengths) + 4
        for position, (episode, n) in enumerate(episodes):
            assert_same_rows(replay.episode(position), expected_rows(episode, n))
    stored = sorted(int(batched.episode(i)[keys.STATE][0, 0]) for i in range(batched.num_episodes))
    assert stored == [0, 1, 10, 11]
    for i in range(4):
        rows = batched.episode(i)
        episode = int(rows[keys.STATE][0, 0])
        assert_same_rows(rows, expected_rows(episode, {0: 5, 1: 3, 10: 2, 11: 6}[episode]))


def test_reset_while_pending_commits_truncated_episode_and_orphan_steps_are_dropped(tmp_path):
    replay = SequenceReplay(tmp_path, capacity=100)
    replay.add_rollout(synthetic_steps([6])[:4])  # episode 0 unfinished ...
    assert replay.num_episodes == 0 and replay.num_pending_steps == 4
    replay.add_rollout(synthetic_steps([3], first_episode=1))  # ... then the env was reset
    assert replay.num_episodes == 2
    truncated = replay.episode(0)
    assert truncated.shape == (5,) and truncated[keys.IS_LAST][-1] and not truncated[keys.IS_TERMINAL].any()
    assert_same_rows(truncated[:4], expected_rows(0, 6)[:4])
    assert truncated[keys.STATE][-1].tolist() == [0.0, 4.0]  # the last observation seen
    fresh = SequenceReplay(tmp_path / "fresh", capacity=100)
    fresh.add_rollout(synthetic_steps([6])[3:])  # starts mid-episode (e.g. after a restart)
    assert fresh.num_episodes == 0 and fresh.dropped_steps == 3


def test_reopen_from_disk_gives_identical_data_and_samples(tmp_path):
    replay = SequenceReplay(tmp_path, capacity=100)
    replay.add_rollout(synthetic_steps([4, 6, 8, 5])[:20])  # the 4th episode stays pending in memory
    torch.manual_seed(1)
    before = replay.sample(5, 3)
    reopened = SequenceReplay(tmp_path, capacity=100)
    assert reopened.num_episodes == 3 and reopened.num_rows == replay.num_rows == 21
    assert torch.equal(reopened.episode_returns(), replay.episode_returns())
    torch.manual_seed(1)
    assert_same_rows(reopened.sample(5, 3), before)
    reopened.add_rollout(synthetic_steps([5], first_episode=3))
    assert reopened.episode_ids() == [0, 1, 2, 3]
    assert_same_rows(reopened.episode(-1), expected_rows(3, 5))
    with pytest.raises(ValueError, match="capacity 100"):
        SequenceReplay(tmp_path, capacity=50)


def test_capacity_evicts_oldest_whole_episodes_and_never_mixes_them(tmp_path):
    capacity = 30
    replay = SequenceReplay(tmp_path, capacity=capacity)
    lengths = [5, 8, 3, 9, 6, 7, 4, 10, 5, 6, 8, 3, 7]
    for i, n in enumerate(lengths):
        replay.add_rollout(synthetic_steps([n], first_episode=i))
        assert replay.num_rows <= capacity
        ids = replay.episode_ids()
        assert ids == list(range(ids[0], i + 1)), "eviction must remove the oldest episodes first"
        for position, episode in enumerate(ids):
            assert_same_rows(replay.episode(position), expected_rows(episode, lengths[episode]))
        batch = replay.sample(32, 3)
        assert (batch[keys.STATE][..., 0] == batch[keys.EPISODE][..., :1]).all()
        assert (batch[keys.STATE][..., 1].diff(dim=1) == 1).all()
    reopened = SequenceReplay(tmp_path, capacity=capacity)
    assert reopened.episode_ids() == replay.episode_ids()
    with pytest.raises(ValueError, match="does not fit"):
        replay.add_rollout(synthetic_steps([capacity], first_episode=99))


def test_mismatched_fields_raise(tmp_path):
    replay = SequenceReplay(tmp_path, capacity=100)
    replay.add_rollout(synthetic_steps([3]))
    with pytest.raises(ValueError, match="differ from the stored fields"):
        replay.add_episode(steps_to_rows(synthetic_steps([3], image_size=8)))
    with pytest.raises(ValueError, match="is_first only on row 0"):
        replay.add_episode(expected_rows(0, 3)[1:])


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from synthetic_episodes import synthetic_steps
from worldmodels.data.replay import SequenceReplay
replay = SequenceReplay({directory!r}, capacity=400)
episode = 0
while True:  # 64x64 episodes in two chunks each (the first stays pending), into a wrapping ring
    steps = synthetic_steps([20 + episode % 13], first_episode=episode, image_size=64)
    replay.add_rollout(steps[:7])
    replay.add_rollout(steps[7:])
    print("@", episode, flush=True)
    episode += 1
"""


def test_kill_9_mid_episode_keeps_every_committed_episode_exactly(tmp_path):
    """kill -9 lands while an episode is pending, being written, evicting or being committed;
    reopening must restore every committed episode bit-exactly and nothing of the interrupted one."""
    code = _CHILD.format(tests=str(REPO / "tests"), directory=str(tmp_path))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    committed = []
    while len(committed) < 18:  # past the first wrap of the ring (~27 rows per episode)
        line = child.stdout.readline()
        assert line, "child died"
        if line.startswith("@"):
            committed.append(int(line.split()[1]))
    time.sleep(float(torch.rand(())) * 0.1)  # about one episode cycle
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # The pipe may hold reports the parent has not read yet (the child runs ahead under load).
    committed += [int(line.split()[1]) for line in child.stdout.read().splitlines() if line.startswith("@")]
    replay = SequenceReplay(tmp_path, capacity=400)
    ids = replay.episode_ids()
    # Every reported episode is back; at most one more (committed, killed before it printed).
    assert committed[-1] <= ids[-1] <= committed[-1] + 1 and ids == list(range(ids[0], ids[-1] + 1))
    assert replay.num_rows <= 400 and replay.num_pending_steps == 0
    for position, episode in enumerate(ids):
        assert_same_rows(replay.episode(position), expected_rows(episode, 20 + episode % 13, image_size=64))
    replay.add_rollout(synthetic_steps([4], first_episode=ids[-1] + 1, image_size=64))
    assert replay.episode_ids()[-1] == ids[-1] + 1


def test_staged_sampling_draws_the_same_windows_as_sample(tmp_path):
    """The CUDA path (gather into a reused pinned buffer, async copy) draws the same windows from the same
    RNG as the plain path; checked here without pinning (pinned memory and the copy event need CUDA)."""
    replay = SequenceReplay(tmp_path, capacity=500)
    replay.add_rollout(synthetic_steps([6, 9, 5]))
    torch.manual_seed(3)
    plain = replay.sample(8, 4)
    torch.manual_seed(3)
    replay.sampler.window_shape = (8, 4)
    staged = replay._sample_staged(8, 4, pin=False)
    assert staged.batch_size == plain.batch_size and set(staged.keys(True, True)) == set(plain.keys(True, True))
    assert all(torch.equal(staged.get(k), plain.get(k)) for k in plain.keys(True, True))
    again = replay._sample_staged(8, 4, pin=False)  # a second batch does not overwrite the first
    assert all(torch.equal(staged.get(k), plain.get(k)) for k in plain.keys(True, True))
    buffer = replay.storage.gather(torch.arange(32))  # gather into an existing buffer writes every key
    replay.storage.gather(torch.arange(32, 64) % replay.num_rows, out=buffer)
    assert torch.equal(buffer[keys.STATE], replay.storage.gather(torch.arange(32, 64) % replay.num_rows)[keys.STATE])
    assert not torch.equal(again[keys.STATE], staged[keys.STATE])
