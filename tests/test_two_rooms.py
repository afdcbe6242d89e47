"""PLDM Two Rooms: walls and door, action scaling, rendering, success, data generator, specs."""

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from envs.two_rooms import (
    DEFAULT_LAYOUT,
    TwoRoomsEnv,
    is_success,
    move,
    render_positions,
    render_positions_torch,
    room_of,
    sample_start_goal,
    wall_image,
)
from envs.two_rooms_data import crosses_wall, generate_trajectories, make_render_fn, trajectories_to_tensordict
from worldmodels.core import keys
from worldmodels.core.config import EnvConfig

L = DEFAULT_LAYOUT


def assert_legal_transitions(before: np.ndarray, after: np.ndarray) -> None:
    """No position inside a wall; any step across the dividing wall passes through the door."""
    for p in (before, after):
        assert (p > L.border_min).all() and (p < L.border_max).all()
        in_column = (p[:, 0] > L.wall_left) & (p[:, 0] < L.wall_right)
        assert not (in_column & ((p[:, 1] < L.door_min) | (p[:, 1] > L.door_max))).any()
    d = after - before
    for face in (L.wall_left, L.wall_right):
        crossing = (before[:, 0] - face) * (after[:, 0] - face) < 0
        t = (face - before[crossing, 0]) / d[crossing, 0]
        y = before[crossing, 1] + t * d[crossing, 1]
        assert ((y >= L.door_min) & (y <= L.door_max)).all(), "crossed the wall outside the door"


def test_wall_stops_agent_outside_door():
    # straight into the wall below the door: stops 0.5 px before the face at x = 31
    np.testing.assert_allclose(move([29.0, 30.0], [2.45, 0.0]), [30.5, 30.0])
    # from the right room, leftwards into the face at x = 33
    np.testing.assert_allclose(move([35.0, 40.0], [-2.45, 0.0]), [33.5, 40.0])
    # diagonal hit: the segment meets x = 31 at t = 0.5 (y = 21), then backs off in x
    np.testing.assert_allclose(move([30.0, 20.0], [2.0, 2.0]), [30.5, 21.0])
    # border walls at 4 and 59
    np.testing.assert_allclose(move([5.0, 30.0], [-2.45, 0.0]), [4.5, 30.0])
    np.testing.assert_allclose(move([30.0, 58.0], [0.0, 2.45]), [30.0, 58.5])
    # pushing right for many steps never leaves the left room
    p = np.array([20.0, 40.0])
    for _ in range(30):
        p = move(p, [2.45, 0.0])
    assert p[0] < L.wall_left


def test_door_lets_agent_through_and_its_edges_block():
    p = np.array([29.0, 10.0])
    for _ in range(3):
        p = move(p, [2.45, 0.0])
    np.testing.assert_allclose(p, [36.35, 10.0])
    assert room_of(p) == 1
    # inside the door, moving along y into the wall's lower block (face y = 14) stops at 13.5
    np.testing.assert_allclose(move([32.0, 10.0], [0.0, 4.9]), [32.0, 13.5])
    np.testing.assert_allclose(move([32.0, 7.0], [0.0, -2.45]), [32.0, 6.5])
    # a diagonal step that meets x = 31 inside the door opening passes
    np.testing.assert_allclose(move([29.0, 4.6], [2.45, 2.45]), [31.45, 7.05])


def test_random_walks_never_cross_walls():
    rng = np.random.default_rng(0)
    start, _ = sample_start_goal(rng, 4000)
    p = start
    for _ in range(40):
        nxt = move(p, rng.uniform(-2.45, 2.45, size=p.shape))
        assert_legal_transitions(p, nxt)
        p = nxt


def test_env_scales_and_clips_actions():
    env = TwoRoomsEnv(seed=0)
    td = env.reset(TensorDict({keys.STATE: torch.tensor([20.0, 30.0]), keys.GOAL_STATE: torch.tensor([50.0, 30.0])}, []))
    assert td[keys.STATE].tolist() == [20.0, 30.0]
    td[keys.ACTION] = torch.tensor([1.0, -0.5])
    out = env.step(td)[keys.NEXT]
    torch.testing.assert_close(out[keys.STATE], torch.tensor([22.45, 28.775]))
    out[keys.ACTION] = torch.tensor([3.0, 0.0])  # clipped to 1 -> 2.45 px
    out = env.step(out)[keys.NEXT]
    torch.testing.assert_close(out[keys.STATE], torch.tensor([24.9, 28.775]))


def test_render_blob_and_walls():
    image = render_positions(np.array([[10.0, 20.0]]))[0]  # x = 10 (column), y = 20 (row)
    assert image.shape == (2, 64, 64) and image.dtype == np.uint8
    dot, walls = image[0].astype(int), image[1].astype(int)
    assert dot.max() == 255 and dot[20, 10] == 255
    assert dot[20, 11] == dot[21, 10] == math.floor(255 * math.exp(-1 / (2 * 1.3**2)))  # 189
    assert dot[20, 30] == 0
    assert (walls[[4, 59], :] == 255).all() and (walls[:, [4, 59]] == 255).all()
    assert (walls[15:59, 31:34] == 255).all() and (walls[5:6, 31:34] == 255).all()
    assert (walls[6:15, 31:34] == 0).all(), "the door (rows 6..14) is open"
    assert walls[5:59, 5:31].sum() == 0 and walls.sum() // 255 == wall_image(L).sum() // 255
    rgb = render_positions(torch.tensor([[10.0, 20.0], [40.0, 50.0]]), channels=3)
    assert rgb.shape == (2, 3, 64, 64) and rgb.dtype == torch.uint8 and rgb[:, 2].sum() == 0
    assert torch.equal(rgb[0, :2], torch.from_numpy(image))
    batch = render_positions(np.zeros((4, 5, 2)) + 30.0)
    assert batch.shape == (4, 5, 2, 64, 64)


def test_torch_renderer_matches_numpy():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    positions = torch.tensor([[10.0, 20.0], [31.7, 9.2], [5.3, 58.1], [47.25, 33.5]], device=device)
    for channels in (2, 3):
        fast = render_positions_torch(positions, channels=channels)
        assert fast.device == positions.device and fast.dtype == torch.uint8
        reference = torch.from_numpy(render_positions(positions.cpu().numpy(), channels=channels))
        assert (fast.cpu().int() - reference.int()).abs().max() <= 1  # float rounding at truncation
        assert render_positions(positions, channels=channels).device == positions.device


def test_success_threshold():
    goal = np.array([40.0, 40.0])
    assert is_success(goal + [1.4, 0.0], goal)  # mean sq error 0.98
    assert not is_success(goal + [1.42, 0.0], goal)  # 1.0082
    assert is_success(torch.tensor([40.5, 39.5]), torch.tensor(goal))
    env = TwoRoomsEnv(seed=0)
    td = env.reset(TensorDict({keys.STATE: torch.tensor([38.0, 40.0]), keys.GOAL_STATE: torch.tensor([40.0, 40.0])}, []))
    assert not td[keys.SUCCESS].item()
    td[keys.ACTION] = torch.tensor([0.5, 0.0])  # +1.225 px -> error 0.775 px
    out = env.step(td)[keys.NEXT]
    assert out[keys.SUCCESS].item() and out[keys.TERMINATED].item() and out[keys.IS_TERMINAL].item()


def test_scripted_agent_reaches_goal_through_the_door():
    """Head for the door, then for the goal: success within PLDM's 200 steps for every sampled episode."""
    env = TwoRoomsEnv(seed=7)
    door = np.array([L.wall_x, L.door_y], dtype=np.float64)
    for _ in range(5):
        td = env.reset()
        for step in range(200):
            position, goal = td[keys.STATE].double().numpy(), td[keys.GOAL_STATE].double().numpy()
            same_room = room_of(position) == room_of(goal) and abs(position[0] - L.wall_x) > 2
            target = goal if same_room else door + [np.sign(goal[0] - position[0]) * 3.0, 0.0]
            td[keys.ACTION] = torch.from_numpy(np.clip((target - position) / L.max_step, -1, 1)).float()
            td = env.step(td)[keys.NEXT]
            if td[keys.DONE].item():
                break
        assert td[keys.SUCCESS].item() and td[keys.TERMINATED].item() and step < 199


def test_start_and_goal_in_different_rooms():
    rng = np.random.default_rng(1)
    start, goal = sample_start_goal(rng, 2000)
    assert (room_of(start) != room_of(goal)).all()
    assert 0.45 < room_of(start).mean() < 0.55  # swapped with probability 0.5
    pad = L.border_padding
    for p in (start, goal):
        assert (p >= pad).all() and (p <= L.image_size - 1 - pad).all()
        assert ((p[:, 0] <= L.wall_left - 2.6) | (p[:, 0] >= L.wall_right + 2.6)).all()


@pytest.mark.parametrize("channels", [2, 3])
def test_env_specs_and_episode_flags(channels):
    env = TwoRoomsEnv(channels=channels, episode_length=12, terminate_on_success=False, seed=3)
    check_env_specs(env)
    rollout = env.rollout(50, break_when_any_done=True)
    assert rollout.shape == (12,)
    assert rollout[keys.PIXELS].shape == (12, channels, 64, 64) and rollout[keys.PIXELS].dtype == torch.uint8
    assert rollout[keys.GOAL_PIXELS].shape == (12, channels, 64, 64)
    assert rollout[keys.IS_FIRST][0].item() and not rollout[keys.IS_FIRST][1:].any()
    assert rollout[keys.NEXT, keys.TRUNCATED][-1].item() and rollout[keys.NEXT, keys.IS_LAST][-1].item()
    assert not rollout[keys.NEXT, keys.DONE][:-1].any()
    assert (rollout[keys.NEXT, keys.REWARD] == 0).all()
    # the goal image is the render of the goal position
    goal = rollout[keys.GOAL_STATE][0]
    assert torch.equal(rollout[keys.GOAL_PIXELS][0], render_positions(goal, channels=channels))


def test_from_config_via_make_env():
    from envs import make_env

    env = make_env(EnvConfig(suite="two_rooms", episode_length=200, two_rooms_channels=3), seed=0)
    assert isinstance(env, TwoRoomsEnv) and env.channels == 3 and env.episode_length == 200


def test_generator_shapes_and_step_lengths():
    traj = generate_trajectories(3000, n_steps=17, mode="good", seed=0)
    assert traj.positions.shape == (3000, 17, 2) and traj.actions.shape == (3000, 17, 2)
    assert traj.positions.dtype == np.float32 and traj.actions.dtype == np.float32
    assert (traj.actions[:, -1] == 0).all(), "no action is taken at the last row"
    assert np.abs(traj.actions).max() <= 1.0
    step = np.linalg.norm(traj.actions[:, :-1] * L.max_step, axis=-1)  # px
    assert step.min() >= 0.2 - 1e-5 and step.max() <= 1.8 + 1e-5
    # truncated normal(1.0, 0.4) on [0.2, 1.8]: mean 1.0, std 0.4 * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)) = 0.352
    assert abs(step.mean() - 1.0) < 0.02 and abs(step.std() - 0.352) < 0.02
    for t in range(16):
        assert_legal_transitions(traj.positions[:, t].astype(np.float64), traj.positions[:, t + 1].astype(np.float64))


def test_generator_headings_crossings_and_mixtures():
    def heading_persistence(actions):
        a = actions[:, :-1]
        unit = a / np.linalg.norm(a, axis=-1, keepdims=True)
        return (unit[:, 1:] * unit[:, :-1]).sum(-1).mean()  # E[cos(delta heading)]

    good = generate_trajectories(1000, n_steps=33, mode="good", cross_wall_rate=0.0, seed=1)
    rand = generate_trajectories(1000, n_steps=33, mode="random", seed=1)
    mixed = generate_trajectories(1000, n_steps=33, mode="good", cross_wall_rate=0.0, random_fraction=0.5, seed=1)
    # von Mises(kappa = 1/0.2): E[cos] = I1(5)/I0(5) = 0.893; uniform headings: 0
    assert abs(heading_persistence(good.actions) - 0.893) < 0.02
    assert abs(heading_persistence(rand.actions)) < 0.02
    assert abs(heading_persistence(mixed.actions) - 0.893 / 2) < 0.03
    crossing = generate_trajectories(1000, n_steps=91, mode="good", cross_wall_rate=0.6, seed=2)
    plain = generate_trajectories(1000, n_steps=91, mode="good", cross_wall_rate=0.0, seed=2)
    assert crosses_wall(crossing.positions).mean() > 0.35 > 0.2 > crosses_wall(plain.positions).mean()


def test_generated_actions_replay_in_the_env_and_rows_align():
    traj = generate_trajectories(3, n_steps=20, seed=4)
    env = TwoRoomsEnv(seed=0, terminate_on_success=False)
    for i in range(3):
        td = env.reset(TensorDict({keys.STATE: torch.from_numpy(traj.positions[i, 0])}, []))
        for t in range(19):
            td[keys.ACTION] = torch.from_numpy(traj.actions[i, t])
            td = env.step(td)[keys.NEXT]
            torch.testing.assert_close(td[keys.STATE], torch.from_numpy(traj.positions[i, t + 1]), atol=1e-4, rtol=0)
    rows = trajectories_to_tensordict(traj)
    assert rows.batch_size == (3, 20)
    assert rows[keys.IS_FIRST][:, 0].all() and not rows[keys.IS_FIRST][:, 1:].any()
    assert rows[keys.IS_LAST][:, -1].all() and not rows[keys.IS_TERMINAL].any()
    assert (rows[keys.PREV_ACTION][:, 0] == 0).all()
    assert torch.equal(rows[keys.PREV_ACTION][:, 1:], rows[keys.ACTION][:, :-1])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="channels"):
        TwoRoomsEnv(channels=1)
    with pytest.raises(ValueError, match="inside a wall"):
        TwoRoomsEnv().reset(TensorDict({keys.STATE: torch.tensor([32.0, 30.0])}, []))
    with pytest.raises(ValueError, match="mode"):
        generate_trajectories(2, mode="expert")
    with pytest.raises(ValueError, match="random_fraction"):
        generate_trajectories(2, random_fraction=1.5)


def test_make_render_fn_renders_states_as_the_env_does():
    state = torch.tensor([[12.0, 30.0], [50.0, 45.0]])  # [N, 2]
    frames = make_render_fn(64, 3)(state)
    assert frames.shape == (2, 3, 64, 64) and frames.dtype == torch.uint8
    assert torch.equal(frames, render_positions(state, channels=3))


# ----------------------------------------------------------------------------- evaluation protocol pieces


def test_wilson_interval_known_values():
    from worldmodels.evaluation.stats import wilson_interval

    low, high = wilson_interval(86, 100)  # PLDM's 0.86 on 100 episodes
    assert low == pytest.approx(0.7786, abs=1e-3) and high == pytest.approx(0.9147, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-3)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 0) == (0.0, 1.0)


def test_detour_ratio_and_difficulty_bins():
    from worldmodels.evaluation.two_rooms import detour_ratio, difficulty_of, sample_pairs

    starts = np.array([[20.0, 10.0], [20.0, 50.0], [10.0, 20.0], [45.0, 10.0]])
    goals = np.array([[45.0, 10.0], [45.0, 50.0], [20.0, 40.0], [20.0, 10.0]])
    ratio = detour_ratio(starts, goals)
    assert ratio[0] == pytest.approx(1.0) and ratio[3] == pytest.approx(1.0)  # straight through the door
    assert ratio[2] == 1.0  # same room
    # below the door: up to the door and back down, |(20,50)->(31,14)| + 2 + |(33,14)->(45,50)| over 25
    expected = (np.hypot(11, 36) + 2 + np.hypot(12, 36)) / 25
    assert ratio[1] == pytest.approx(expected, rel=1e-3)
    assert list(difficulty_of(starts, goals)) == ["direct", "detour", "direct", "direct"]
    names = difficulty_of(*sample_pairs(200))
    assert {"direct", "bend", "detour"} == set(names)


def test_same_room_pairs_stay_in_one_room_inside_the_walls():
    from worldmodels.evaluation.two_rooms import sample_same_room_pairs

    starts, goals = sample_same_room_pairs(300, seed=0)
    assert (room_of(starts) == room_of(goals)).all()
    assert 0.3 < room_of(starts).mean() < 0.7
    for p in (starts, goals):
        assert (p > L.border_padding - 1e-9).all() and (p < L.image_size - 1 - L.border_padding + 1e-9).all()
        assert not ((p[:, 0] > L.wall_left - 2 * L.dot_std) & (p[:, 0] < L.wall_right + 2 * L.dot_std)).any()


def test_random_floor_takes_the_action_cap():
    from worldmodels.evaluation.two_rooms import random_policy_success

    starts, goals = np.full((64, 2), 15.0), np.full((64, 2), 15.0) + np.array([8.0, 0.0])
    # 6 steps of at most 0.4 * 2.45 px cannot cover 8 - 1.42 px; uncapped they sometimes do
    assert random_policy_success(starts, goals, steps=6, max_norm=0.4) == 0.0
    assert random_policy_success(starts, goals, steps=6, max_norm=10.0) == random_policy_success(starts, goals, steps=6)


def test_goal_evaluation_shrinks_the_horizon_and_reports_the_protocol(monkeypatch):
    from planners import CEMPlanner
    from planners import builder
    from tests.test_methods import TINY
    from worldmodels.core.config import CEMConfig, load_config
    from worldmodels.evaluation.two_rooms import evaluate_goal_reaching
    from worldmodels.methods import method_of

    horizons = []

    class Recording(CEMPlanner):
        def plan(self, state, horizon=None):
            out = super().plan(state, horizon)
            horizons.append(out.shape[1])
            return out

    monkeypatch.setitem(builder.PLANNERS, "cem", Recording)
    cfg = load_config(None, ["method=pldm", "env.suite=two_rooms", "planner=cem", *TINY["pldm"]])
    model = method_of(cfg).make_model(cfg, action_dim=2, image_shape=(2, 64, 64))
    planner = CEMConfig(horizon=5, iterations=1, candidates=8, top_k=2, max_norm=0.5)
    starts, goals = np.array([[10.0, 30.0], [50.0, 50.0]]), np.array([[40.0, 30.0], [52.0, 50.0]])
    result = evaluate_goal_reaching(cfg, model, planner_config=planner, starts=starts, goals=goals, steps=3,
                                    shrink_horizon=True)  # fmt: skip
    assert horizons == [3, 2, 1]
    assert result["episodes"] == 2 and 0.0 <= result["success_ci95_low"] <= result["success_ci95_high"] <= 1.0
    assert result["episodes_direct"] == 1  # the same-room pair
    assert result["episodes_direct"] + result["episodes_bend"] + result["episodes_detour"] == 2
    assert all(isinstance(v, (int, float)) for v in result.values())  # loggable as scalars
    horizons.clear()
    shrinking = load_config(None, ["method=pldm", "env.suite=two_rooms", "planner=cem", "offline.eval_shrink_horizon=true",
                                   *TINY["pldm"]])  # fmt: skip
    evaluate_goal_reaching(shrinking, model, planner_config=planner, starts=starts, goals=goals, steps=2)
    assert horizons == [2, 1]


def test_door_passing_fraction_filters_crossings_like_pldm_wc0(tmp_path):
    from envs.two_rooms_data import passes_door
    from worldmodels.core.config import load_config
    from worldmodels.training.offline import ensure_dataset

    plain = generate_trajectories(400, n_steps=17, seed=3)
    assert passes_door(plain.positions).mean() > 0.3
    wc0 = generate_trajectories(400, n_steps=17, seed=3, door_passing_fraction=0.0)
    assert wc0.positions.shape == (400, 17, 2) and not passes_door(wc0.positions).any()
    assert abs(np.linalg.norm(wc0.actions[:, :-1], axis=-1).mean() - 1.0 / L.max_step) < 0.05  # PLDM step lengths
    wc30 = generate_trajectories(400, n_steps=17, seed=3, door_passing_fraction=0.3)
    assert passes_door(wc30.positions).sum() == 120
    with pytest.raises(ValueError, match="door-passing"):
        generate_trajectories(50, n_steps=5, mode="random", seed=0, door_passing_fraction=1.0)
    cfg = load_config(None, ["method=pldm", "env.suite=two_rooms", "offline.n_trajectories=40", "offline.n_steps=9",
                             "offline.door_passing_fraction=0.0", "replay.sequence_length=8", f"offline.dataset_dir={tmp_path}"])  # fmt: skip
    data = ensure_dataset(cfg, tmp_path)
    assert data is not None and (tmp_path / "two_rooms_generator.json").read_text().count('"door_passing_fraction": 0.0')
