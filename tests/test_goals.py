"""Goal-image task sets: rotations, RoboYoga success measures, point_mass/reacher goals, GoalEnv."""

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from envs import goals
from envs.roboyoga import (
    QUADRUPED_GOALS,
    WALKER_GOALS,
    euler_xyz_to_quat_xyzw,
    quadruped_distance,
    quat_xyzw_to_euler_xyz,
    walker_distance,
)
from worldmodels.core import keys

H = math.sqrt(0.5)


# ----------------------------------------------------------------------------- rotations


@pytest.mark.parametrize(
    "euler, quat",
    [
        ([math.pi / 2, 0, 0], [H, 0, 0, H]),
        ([0, 0, math.pi / 2], [0, 0, H, H]),
        ([math.pi / 2, math.pi / 2, 0], [0.5, 0.5, 0.5, 0.5]),  # intrinsic: q_x * q_y
        ([0, 3.14, 0], [0, math.sin(1.57), 0, math.cos(1.57)]),  # LEXA lie_legs_together
    ],
)
def test_euler_to_quaternion_hand_values(euler, quat):
    np.testing.assert_allclose(euler_xyz_to_quat_xyzw(euler), quat, atol=1e-12)


def test_quaternion_to_euler_hand_values_and_round_trip():
    np.testing.assert_allclose(quat_xyzw_to_euler_xyz([H, 0, 0, H]), [math.pi / 2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(quat_xyzw_to_euler_xyz([0, 0, 2 * H, 2 * H]), [0, 0, math.pi / 2], atol=1e-12)  # unnormalised
    # gimbal lock (b = pi/2): the third angle is set to 0, the first takes a + c
    np.testing.assert_allclose(quat_xyzw_to_euler_xyz([0.5, 0.5, 0.5, 0.5]), [math.pi / 2, math.pi / 2, 0], atol=1e-6)
    # b = 3.14 is outside [-pi/2, pi/2]: the same rotation comes back as (pi, pi - 3.14, pi) up to wrapping
    back = quat_xyzw_to_euler_xyz(euler_xyz_to_quat_xyzw([0, 3.14, 0]))
    np.testing.assert_allclose(np.abs(back), [math.pi, math.pi - 3.14, math.pi], atol=1e-9)
    rng = np.random.default_rng(0)
    angles = rng.uniform([-3.1, -1.5, -3.1], [3.1, 1.5, 3.1], size=(500, 3))
    np.testing.assert_allclose(quat_xyzw_to_euler_xyz(euler_xyz_to_quat_xyzw(angles)), angles, atol=1e-10)


def test_rotations_match_scipy_when_installed():
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    rng = np.random.default_rng(1)
    angles = rng.uniform(-4, 4, size=(200, 3))
    np.testing.assert_allclose(euler_xyz_to_quat_xyzw(angles), rotation.from_euler("XYZ", angles).as_quat(), atol=1e-12)
    quats = rng.normal(size=(200, 4))
    np.testing.assert_allclose(quat_xyzw_to_euler_xyz(quats), rotation.from_quat(quats).as_euler("XYZ"), atol=1e-9)


# ----------------------------------------------------------------------------- RoboYoga


def test_goal_tables():
    assert WALKER_GOALS.shape == (12, 9) and QUADRUPED_GOALS.shape == (12, 23)
    np.testing.assert_allclose(WALKER_GOALS[9], [-0.2, 0, 0, 0.7, -1.34, 0.5, 1.5, -0.6, 0.1])  # one_feet
    stand = QUADRUPED_GOALS[5]  # euler (1.57, 0, 0), height 0.2, legs up
    np.testing.assert_allclose(stand[:7], [0, 0, 0.2, math.sin(0.785), 0, 0, math.cos(0.785)])
    np.testing.assert_allclose(stand[7:11], [0, -0.35, -0.2, 0.6])
    np.testing.assert_allclose(QUADRUPED_GOALS[0][[7, 11, 15, 19]], [-0.7, 0.7, -0.7, 0.7])
    np.testing.assert_allclose(QUADRUPED_GOALS[7][12:15], [-0.2, -0.8, 1.0])  # stand_leg_up: leg 1 out_up


def test_walker_success_symmetries_and_far_states():
    for goal in WALKER_GOALS:
        assert walker_distance(goal, goal) == 0
    kneel = WALKER_GOALS[3]
    swapped = kneel[[0, 1, 2, 6, 7, 8, 3, 4, 5]]
    assert walker_distance(swapped, kneel) == 0 and goals.goal_success("roboyoga_walker", swapped, kneel)
    head_stand = WALKER_GOALS[10]  # rotation -3 rad: the same pose at -3 + 2pi
    turned = head_stand.copy()
    turned[2] += 2 * math.pi
    assert walker_distance(turned, head_stand) < 1e-9
    shifted = head_stand.copy()
    shifted[[1, 5, 8]] += 5.0  # x position and ankles are not compared
    assert walker_distance(shifted, head_stand) == 0
    # lie_back vs lie_front: rotation -1.57 vs 1.57 -> error 3.14 on either leg assignment
    assert walker_distance(WALKER_GOALS[0], WALKER_GOALS[1]) == pytest.approx(3.14)
    state = np.concatenate([WALKER_GOALS[5], np.ones(9)])  # a full physics state (qpos, qvel)
    assert goals.goal_success("roboyoga_walker", state, WALKER_GOALS[5])
    assert not goals.goal_success("roboyoga_walker", state, WALKER_GOALS[0])
    near = WALKER_GOALS[5] + np.array([0.69, 0, 0, 0, 0, 0, 0, 0, 0])
    assert goals.goal_success("roboyoga_walker", near, WALKER_GOALS[5])
    assert not goals.goal_success("roboyoga_walker", near + [0.02, 0, 0, 0, 0, 0, 0, 0, 0], WALKER_GOALS[5])


def _rotated_state(goal: np.ndarray, roll_legs: bool) -> np.ndarray:
    """A quadruped qpos that equals ``goal`` after the benchmark's rotation (+1.57, legs 0,1,2,3 -> 1,2,3,0)."""
    euler = quat_xyzw_to_euler_xyz(goal[3:7])
    euler[0] -= 1.57
    state = goal.copy()
    state[3:7] = euler_xyz_to_quat_xyzw(euler)
    if roll_legs:
        state[7:23] = np.roll(goal[7:23], 4)  # inverse of the benchmark's roll by 12
    return state


def test_quadruped_success_rotation_symmetry_and_compared_entries():
    for i, goal in enumerate(QUADRUPED_GOALS):
        assert quadruped_distance(goal, goal) < 1e-9, i
    lie_side = QUADRUPED_GOALS[3]  # all 20 entries count; leg yaws (-0.7, 0.7, -0.7, 0.7)
    assert quadruped_distance(_rotated_state(lie_side, roll_legs=True), lie_side) < 1e-9
    # rotated body but legs not cycled: the best rotation leaves a 1.4 yaw (or 1.57 azimuth) error
    assert quadruped_distance(_rotated_state(lie_side, roll_legs=False), lie_side) == pytest.approx(1.4, abs=1e-6)
    # goal 5 (stand) compares height, Euler angles and leg yaws only; goal 3 all joints
    bent = QUADRUPED_GOALS[5].copy()
    bent[9] += 1.0  # knee of leg 0
    assert goals.goal_success("roboyoga_quadruped", bent, QUADRUPED_GOALS[5])
    bent = lie_side.copy()
    bent[9] += 1.0
    assert quadruped_distance(bent, lie_side) == pytest.approx(1.0)
    assert not goals.goal_success("roboyoga_quadruped", bent, lie_side)
    assert not goals.goal_success("roboyoga_quadruped", QUADRUPED_GOALS[0], QUADRUPED_GOALS[5])
    full_state = np.concatenate([QUADRUPED_GOALS[9], np.zeros(34)])  # qpos 23 + qvel 22 + act 12
    assert goals.goal_success("roboyoga_quadruped", torch.tensor(full_state), torch.tensor(QUADRUPED_GOALS[9]))
    batch = np.stack([QUADRUPED_GOALS[2], QUADRUPED_GOALS[4]])
    assert quadruped_distance(batch, QUADRUPED_GOALS[2]).shape == (2,)


def test_quadruped_distance_matches_lexa_code_when_scipy_is_installed():
    """A transcription of lexa-benchmark ``_compute_reward`` (quadruped) with scipy."""
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation

    def lexa(goal_idx, pose, goal):
        def shortest(a):
            a = a % (2 * np.pi)
            a[a > np.pi] = 2 * np.pi - a[a > np.pi]
            return a

        def get_su(state, target):
            dist = np.abs(state - target)
            dist[..., [1, 2, 3]] = shortest(dist[..., [1, 2, 3]])
            if goal_idx in [0, 1, 2, 5, 6, 7, 8, 11]:
                dist = dist[..., [0, 1, 2, 3, 4, 8, 12, 16]]
            return dist.max(-1)

        def rotate(s, times):
            s = s.copy()
            for _ in range(times):
                s[..., 1] = s[..., 1] + 1.57
                s[..., -16:] = np.roll(s[..., -16:], 12)
            return s

        def normalize(s):
            return np.concatenate((s[..., 2:3], rotation.from_quat(s[..., 3:7]).as_euler("XYZ"), s[..., 7:]), -1)

        return min(get_su(rotate(normalize(pose), k), normalize(goal)) for k in range(4))

    rng = np.random.default_rng(0)
    for i in range(120):
        g = i % 12
        pose = QUADRUPED_GOALS[g] + rng.normal(0, 0.4, 23)
        pose[3:7] = rng.normal(size=4)
        assert quadruped_distance(pose, QUADRUPED_GOALS[g]) == pytest.approx(lexa(g, pose, QUADRUPED_GOALS[g]), abs=1e-9)


# ----------------------------------------------------------------------------- point_mass, reacher


def test_point_mass_success():
    goal = goals.goal_states("point_mass")[2]
    np.testing.assert_allclose(goal, [0.2, 0.2])
    assert goals.goal_success("point_mass", np.array([0.2, 0.2, 0.5, 0.5]), goal)
    assert goals.goal_success("point_mass", goal + [0.02, 0.0], goal)
    assert not goals.goal_success("point_mass", goal + [0.0, 0.05], goal)
    assert goals.goal_distance("point_mass", goal + [0.03, 0.04], goal) == pytest.approx(0.05)


def test_reacher_kinematics_match_mujoco_and_success_uses_the_fingertip():
    from dm_control import suite

    physics = suite.load("reacher", "easy").physics
    for q in goals.goal_states("reacher"):
        physics.data.qpos[:] = q
        physics.forward()
        np.testing.assert_allclose(goals.reacher_fingertip(q), physics.named.data.geom_xpos["finger", :2], atol=1e-9)
    tips = goals.reacher_fingertip(goals.goal_states("reacher"))
    np.testing.assert_allclose(np.linalg.norm(tips, axis=-1), [0.10, 0.18] * 4, atol=1e-12)
    goal = goals.goal_states("reacher")[1]
    # the mirrored arm (elbow the other way) puts the fingertip on the same point
    shoulder = math.atan2(tips[1, 1], tips[1, 0]) * 2 - goal[0]
    mirrored = np.array([shoulder, -goal[1]])
    np.testing.assert_allclose(goals.reacher_fingertip(mirrored), tips[1], atol=1e-12)
    assert goals.goal_success("reacher", mirrored, goal)
    assert not goals.goal_success("reacher", goal + [0.5, 0.0], goal)  # fingertip ~0.09 m away
    with pytest.raises(ValueError, match="radius"):
        goals.reacher_joint_angles([0.3, 0.0])


def test_control_substeps_match_dm_control():
    from dm_control import suite

    for domain, task in [("point_mass", "easy"), ("reacher", "easy"), ("walker", "walk"), ("quadruped", "run")]:
        env = suite.load(domain, task)
        assert goals.CONTROL_SUBSTEPS[domain] == round(env.control_timestep() / env.physics.timestep())


def test_api_names_counts_sampling_and_errors():
    assert goals.goal_set_names() == ("point_mass", "reacher", "roboyoga_walker", "roboyoga_quadruped")
    assert [goals.num_goals(s) for s in goals.goal_set_names()] == [9, 8, 12, 12]
    assert goals.goal_names("roboyoga_walker")[9] == "one_feet"
    assert goals.goal_names("roboyoga_quadruped")[11] == "balance_diag"
    with pytest.raises(ValueError, match="valid task sets: point_mass, reacher, roboyoga_walker, roboyoga_quadruped"):
        goals.num_goals("cheetah")
    a = goals.sample_goal_states("reacher", 64, rng=3)
    assert a.shape == (64, 2)
    np.testing.assert_array_equal(a, goals.sample_goal_states("reacher", 64, rng=3))
    radius = np.linalg.norm(goals.reacher_fingertip(a), axis=-1)
    assert (radius >= 0.05 - 1e-9).all() and (radius <= 0.2 + 1e-9).all()
    assert np.abs(goals.sample_goal_states("point_mass", 100, rng=0)).max() <= 0.25
    with pytest.raises(ValueError, match="goal_index"):
        goals.make_goal_env("point_mass", goal_index=9)


# ----------------------------------------------------------------------------- GoalEnv


def test_point_mass_goal_env_specs_image_and_success():
    env = goals.make_goal_env("point_mass", goal_index=4, seed=0)  # goal (0, 0)
    check_env_specs(env)
    td = env.reset()
    assert td[keys.GOAL_PIXELS].shape == (3, 64, 64) and td[keys.GOAL_PIXELS].dtype == torch.uint8
    torch.testing.assert_close(td[keys.GOAL_STATE], torch.zeros(2))
    assert env.current_goal_index == 4
    # standing on the goal looks like the goal image (target hidden in both) and counts as success
    state = td[keys.STATE].clone()
    state[:] = 0.0
    env.base.set_state(state)
    assert torch.equal(env.render(), td[keys.GOAL_PIXELS])
    td[keys.ACTION] = torch.zeros(2)
    out = env.step(td)[keys.NEXT]
    assert out[keys.SUCCESS].item()
    assert out[keys.REWARD].item() == pytest.approx(-goals.goal_distance("point_mass", out[keys.STATE], out[keys.GOAL_STATE]))
    # a reset TensorDict can carry any goal; its image shows the mass elsewhere
    other = env.reset(TensorDict({keys.GOAL_STATE: torch.tensor([0.2, -0.2])}, []))
    assert env.current_goal_index == 8 and not torch.equal(other[keys.GOAL_PIXELS], td[keys.GOAL_PIXELS])
    with pytest.raises(ValueError, match="goal qpos of shape"):
        env.reset(TensorDict({keys.GOAL_STATE: torch.zeros(3)}, []))
    env.close()


@pytest.mark.parametrize("task_set, indices", [("roboyoga_walker", (3, 10)), ("roboyoga_quadruped", (5,))])
def test_roboyoga_goal_images_and_state_restored(task_set, indices):
    env = goals.make_goal_env(task_set, goal_index=indices[0], seed=1)
    images = []
    for index in indices:
        env.goal_index = index
        td = env.reset()
        before = env.physics.get_state().copy()
        image = goals.render_goal(env.base, task_set, goals.goal_states(task_set)[index])
        np.testing.assert_array_equal(env.physics.get_state(), before)  # rendering a goal leaves the state alone
        assert torch.equal(image, td[keys.GOAL_PIXELS])  # deterministic, and what the env shows
        assert image.shape == (3, 64, 64) and image.dtype == torch.uint8 and image.float().std() > 10
        assert torch.equal(td[keys.PIXELS], env.render())
        images.append(image)
    if len(images) > 1:
        assert (images[0].float() - images[1].float()).abs().mean() > 5  # different poses, different images
    td[keys.ACTION] = torch.zeros(env.action_spec.shape)
    out = env.step(td)[keys.NEXT]
    assert out[keys.SUCCESS].shape == (1,) and out[keys.GOAL_STATE].shape == (goals.goal_states(task_set).shape[1],)
    env.close()


@pytest.mark.slow
def test_all_goal_images_render_and_differ():
    for task_set in goals.goal_set_names():
        env = goals.make_goal_env(task_set, seed=0)
        images = [goals.render_goal(env.base, task_set, g) for g in goals.goal_states(task_set)]
        stack = torch.stack(images).float()
        assert stack.shape == (goals.num_goals(task_set), 3, 64, 64)
        diffs = (stack[:, None] - stack[None]).abs().mean((2, 3, 4))
        assert (diffs + torch.eye(len(images)) * 1e3 > 0.01).all(), task_set
        check_env_specs(env)
        env.close()


def test_from_config_and_saved_goal_images(tmp_path):
    import imageio.v2 as imageio

    from worldmodels.core.config import EnvConfig

    env = goals.GoalEnv.from_config(EnvConfig(goal_set="point_mass", episode_length=40), seed=0, goal_index=1)
    assert (env.base.domain, env.base.task, env.base.episode_length) == ("point_mass", "easy", 40)
    td = env.reset()
    env.close()
    paths = goals.save_goal_images("point_mass", tmp_path)
    assert len(paths) == 9 and [p.name for p in paths[:2]] == ["00_xy_-0.2_+0.2.png", "01_xy_+0.0_+0.2.png"]
    assert np.array_equal(imageio.imread(paths[1]), td[keys.GOAL_PIXELS].permute(1, 2, 0).numpy())


def test_reacher_goal_reached_by_joint_controller():
    """A PD controller on the goal's joint angles reaches the fingertip goal: success fires, reward rises."""
    env = goals.make_goal_env("reacher", goal_index=5, seed=3)
    td = env.reset()
    goal = td[keys.GOAL_STATE].numpy()
    start = goals.goal_distance("reacher", td[keys.STATE], goal)
    assert start > 0.2 and not td[keys.SUCCESS].item()
    rewards = []
    for _ in range(40):
        state = td[keys.STATE].numpy()
        error = (goal - state[:2] + np.pi) % (2 * np.pi) - np.pi
        td[keys.ACTION] = torch.tensor(np.clip(5 * error - 0.5 * state[2:4], -1, 1), dtype=torch.float32)
        td = env.step(td)[keys.NEXT]
        rewards.append(td[keys.REWARD].item())
        if td[keys.SUCCESS].item():
            break
    assert td[keys.SUCCESS].item() and rewards[-1] > -0.05 > -start
    env.close()
