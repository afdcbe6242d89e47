"""DMCEnv: specs, pixels, action repeat, time limit, seeding, render/state helpers, batched envs."""

import functools
import os
import subprocess
import sys
from pathlib import Path


import numpy as np
import pytest
import torch
from dm_control import suite
from torchrl.collectors import Collector  # torchrl 0.14 name of SyncDataCollector
from torchrl.envs import ParallelEnv, SerialEnv
from torchrl.envs.utils import check_env_specs

from envs import make_env
from envs.dmc import DMCEnv, default_action_repeat, default_camera
from worldmodels.core import keys
from worldmodels.core.config import EnvConfig


def _actions(env, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(env.action_spec.shape, generator=g) * 2 - 1 for _ in range(steps)]


def _run(env, actions):
    """Reset, step with the given actions; return (pixels list, rewards list)."""
    td = env.reset()
    pixels, rewards = [td[keys.PIXELS].clone()], []
    for a in actions:
        td = env.step(td.set(keys.ACTION, a))["next"]
        pixels.append(td[keys.PIXELS].clone())
        rewards.append(td[keys.REWARD].item())
    return pixels, rewards


@pytest.mark.parametrize("domain,task", [("cartpole", "swingup"), ("walker", "walk"), ("point_mass", "easy")])
def test_check_env_specs(domain, task):
    env = DMCEnv(domain, task, image_size=32, episode_length=16, proprio=True)
    check_env_specs(env, seed=0)
    env.close()


@pytest.mark.parametrize("size", [32, 64])
def test_pixels_uint8_chw_of_requested_size(size):
    env = DMCEnv("cartpole", "swingup", image_size=size, episode_length=16)
    td = env.reset()
    assert td[keys.PIXELS].dtype == torch.uint8 and td[keys.PIXELS].shape == (3, size, size)
    assert td[keys.PIXELS].float().std() > 0  # a real image, not a blank buffer
    td = env.rand_step(td)
    assert td["next", keys.PIXELS].shape == (3, size, size)
    assert td["next", keys.STATE].shape == (env.physics.get_state().shape[0],)
    env.close()


def test_paper_defaults():
    planet = ("cartpole", "reacher", "cheetah", "cup", "ball_in_cup")
    assert [default_action_repeat(d) for d in planet] == [8, 4, 4, 4, 4]
    assert [default_action_repeat(d) for d in ("finger", "walker", "quadruped", "point_mass")] == [2, 2, 2, 2]
    assert default_camera("quadruped") == 2 and default_camera("walker") == 0
    env = DMCEnv("cup", "catch", image_size=16, episode_length=8)
    assert env.domain == "ball_in_cup" and env.action_repeat == 4 and env.camera == 0
    env.close()


def test_same_seed_same_sequence_different_seed_differs():
    runs = []
    for seed in (3, 3, 4):
        env = DMCEnv("cartpole", "swingup", image_size=32, action_repeat=2, episode_length=20, seed=seed)
        runs.append(_run(env, _actions(env, 6)))
        env.close()
    (p0, r0), (p1, r1), (p2, r2) = runs
    assert all(torch.equal(a, b) for a, b in zip(p0, p1)) and r0 == r1
    assert not torch.equal(p0[0], p2[0])  # another seed draws another initial state


def test_set_seed_reproduces_reset():
    env = DMCEnv("point_mass", "easy", image_size=16, episode_length=8, seed=0)
    env.set_seed(11)
    first = env.reset()[keys.STATE]
    env.reset()
    env.set_seed(11)
    assert torch.equal(env.reset()[keys.STATE], first)
    env.close()


def test_action_repeat_sums_rewards_like_raw_dm_control():
    env = DMCEnv("walker", "walk", image_size=16, action_repeat=3, episode_length=30, seed=5)
    actions = _actions(env, 5, seed=1)
    _, ours = _run(env, actions)
    raw = suite.load("walker", "walk", task_kwargs={"random": 5})
    raw.reset()
    expected = [sum(raw.step(a.numpy()).reward for _ in range(3)) for a in actions]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert max(ours) > 0  # walker-walk gives dense reward: the sum is not trivially zero
    np.testing.assert_allclose(env.physics.get_state(), raw.physics.get_state(), atol=1e-9)
    env.close()


def test_truncation_at_episode_length_in_env_steps():
    env = DMCEnv("cartpole", "swingup", image_size=16, action_repeat=4, episode_length=10, seed=0)
    assert env.agent_steps_per_episode == 3  # ceil(10 / 4)
    td = env.reset()
    assert td[keys.IS_FIRST].item() and not td[keys.IS_LAST].item() and not td[keys.DONE].item()
    flags = []
    for _ in range(3):
        td = env.rand_step(td)
        nxt = td["next"]
        names = (keys.IS_FIRST, keys.IS_LAST, keys.IS_TERMINAL, keys.DONE, keys.TRUNCATED, keys.TERMINATED)
        flags.append([nxt[k].item() for k in names])
        td = nxt
    assert flags[:2] == [[False, False, False, False, False, False]] * 2
    assert flags[2] == [False, True, False, True, True, False]
    assert env.physics.time() == pytest.approx(10 * env.control_timestep)  # 4 + 4 + 2 env steps
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(td.set(keys.ACTION, torch.zeros(env.action_spec.shape)))
    td = env.reset()
    assert td[keys.IS_FIRST].item() and not td[keys.DONE].item()


def test_rollout_stops_at_time_limit():
    env = DMCEnv("cartpole", "swingup", image_size=16, action_repeat=8, episode_length=40, seed=0)
    rollout = env.rollout(100)
    assert rollout.shape == (5,)
    assert rollout["next", keys.TRUNCATED].squeeze(-1).tolist() == [False] * 4 + [True]
    assert rollout[keys.IS_FIRST].squeeze(-1).tolist() == [True] + [False] * 4
    env.close()


def test_render_matches_last_step_and_physics_render():
    env = DMCEnv("walker", "walk", image_size=32, episode_length=20, seed=0)
    td = env.rand_step(env.reset())
    assert torch.equal(env.render(), td["next", keys.PIXELS])
    reference = env.physics.render(32, 32, camera_id=env.camera)  # dm_control's own renderer
    assert np.array_equal(env.render().permute(1, 2, 0).numpy(), reference)
    env.close()


def test_closing_one_env_leaves_another_env_rendering_correctly():
    keep = DMCEnv("cheetah", "run", image_size=32, episode_length=8, seed=0)
    keep.reset()
    for _ in range(2):  # close other envs (other GL contexts) while `keep`'s context is current
        other = DMCEnv("cartpole", "swingup", image_size=32, episode_length=8, seed=0)
        other.reset()
        keep.render()
        other.close()
    reference = keep.physics.render(32, 32, camera_id=0)
    assert np.array_equal(keep.render().permute(1, 2, 0).numpy(), reference)
    keep.close()


def test_set_state_restores_the_scene():
    env = DMCEnv("walker", "walk", image_size=32, episode_length=20, seed=0)
    td = env.reset()
    for a in _actions(env, 3):
        td = env.step(td.set(keys.ACTION, a))["next"]
    other = DMCEnv("walker", "walk", image_size=32, episode_length=20, seed=1)
    other.reset()
    assert not torch.equal(other.render(), td[keys.PIXELS])
    other.set_state(env.physics.get_state())  # float64: the exact scene
    assert torch.equal(other.render(), td[keys.PIXELS])
    other.reset()
    other.set_state(td[keys.STATE])  # the float32 observation: equal up to rounding
    diff = (other.render().int() - td[keys.PIXELS].int()).abs()
    assert diff.max() <= 2 and (diff > 0).float().mean() < 0.01
    with pytest.raises(ValueError, match="state must have shape"):
        other.set_state(torch.zeros(3))
    env.close()
    other.close()


def test_fast_render_is_a_different_image():
    default = DMCEnv("cheetah", "run", image_size=32, episode_length=8, seed=0)
    fast = DMCEnv("cheetah", "run", image_size=32, episode_length=8, seed=0, fast_render=True)
    a, b = default.reset()[keys.PIXELS], fast.reset()[keys.PIXELS]
    assert a.shape == b.shape and not torch.equal(a, b)
    default.close()
    fast.close()


def test_serial_env_two_workers():
    env = SerialEnv(2, lambda: DMCEnv("cartpole", "swingup", image_size=16, action_repeat=4, episode_length=12))
    check_env_specs(env, seed=0)
    rollout = env.rollout(3)
    assert rollout[keys.PIXELS].shape == (2, 3, 3, 16, 16)
    assert rollout["next", keys.IS_LAST][:, -1].all()
    env.close()


def test_collector():
    collector = Collector(
        lambda: DMCEnv("cartpole", "swingup", image_size=16, action_repeat=8, episode_length=32),
        policy=None,
        frames_per_batch=6,
        total_frames=12,
    )
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 2 and batches[0][keys.PIXELS].shape == (6, 3, 16, 16)
    first = batches[0][keys.IS_FIRST].squeeze(-1).tolist()
    assert first == [True, False, False, False, True, False]  # 4 agent steps per episode, auto-reset


@pytest.mark.slow
def test_parallel_env_two_workers():
    make = functools.partial(DMCEnv, "cartpole", "swingup", image_size=16, action_repeat=4, episode_length=12)
    env = ParallelEnv(2, make)
    rollout = env.rollout(3)
    assert rollout[keys.PIXELS].shape == (2, 3, 3, 16, 16)
    assert rollout[keys.PIXELS].float().std() > 0  # workers rendered real images
    env.close()


def test_bad_domain_or_task_is_one_clear_error():
    with pytest.raises(ValueError, match="Unknown dm_control task 'cartpol'-'swingup'; valid .*cartpole-swingup"):
        DMCEnv("cartpol", "swingup")
    with pytest.raises(ValueError, match="walker-walk"):
        make_env(EnvConfig(domain="walker", task="fly"))
    with pytest.raises(ValueError, match="Camera id 5"):
        DMCEnv("cartpole", "swingup", camera=5)


def test_make_env_from_config():
    env = make_env(EnvConfig(domain="reacher", task="easy", image_size=16, episode_length=8), seed=2)
    assert isinstance(env, DMCEnv) and env.action_repeat == 4 and env.image_size == 16
    assert env.reset()[keys.PIXELS].shape == (3, 16, 16)
    env.close()


@pytest.mark.slow  # a fresh interpreter importing torchrl: several seconds
def test_render_error_names_the_fix_when_mujoco_was_imported_without_mujoco_gl():
    code = "import torchrl.data\nfrom envs.dmc import DMCEnv\nDMCEnv(image_size=16).reset()"
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "RuntimeError: MuJoCo cannot render headless" in result.stderr
    assert "set MUJOCO_GL=egl" in result.stderr and "imported before MUJOCO_GL=egl was set" in result.stderr
