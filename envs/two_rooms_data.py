"""Offline Two Rooms datasets as PLDM generates them: positions and actions only, pixels on the fly.

PLDM (Sobal, Zhang et al. 2025, arXiv 2502.14819; ``pldm_envs/wall/data/single.py``,
``data/wall.py``, ``configs/good_quality_data.yaml``) trains from reward-free offline data of
varying quality. The variants, all reproduced here (vectorised over trajectories in numpy):

* **good** -- each trajectory draws a bias heading ``U[0, 2pi)``; the heading then follows a
  random walk with von Mises increments of concentration ``1 / action_angle_noise`` (0.2); step
  lengths are truncated-normal (mean 1.0, std 0.4, clipped to [0.2, 1.8]) in px.
  A fraction ``cross_wall_rate`` (0.6) of trajectories is built to pass the door: a door point
  and a crossing step are drawn, a leftward walk (heading ``pi +- pi/4``) is reversed into the
  door and a rightward walk continues from it, and half of them are played backwards
  (``generate_cross_wall_state_and_actions``).
* **random** -- ``action_angle_noise`` 1e6, i.e. a uniform heading every step; same lengths.
* **noise mixtures** -- ``random_fraction`` f replaces a fraction f of the good trajectories with
  random ones (``combine_two_datasets.py --fraction f``).
* **wall-crossing subsets** -- ``door_passing_fraction`` w resamples the dataset so that exactly a
  fraction w of its N trajectories pass the door (``passes_door``: x goes below ``wall_left`` and
  above ``wall_right``, PLDM's ``x < 31`` and ``x > 33``), drawn from a larger pool generated with
  the same settings (``select_wc.py``); PLDM's "no door-passing trajectories" set ``wc0`` is w = 0,
  which *filters out* crossings (``cross_wall_rate=0`` only stops building them: random walks still
  cross). ``crosses_wall(positions)`` tells which trajectories change room.

Step lengths are pixels; actions are returned in the env's units, ``px / 2.45`` (``max_step``),
so ``TwoRoomsEnv`` replays them exactly. Collisions use ``envs.two_rooms.move`` (stop at the wall,
as the env does; PLDM's generator instead keeps the agent in place on a blocked step).

Row format (``worldmodels/core/keys.py``): ``n_steps`` rows per trajectory; ``actions[:, t]`` is the
action taken at row ``t``, zeros on the last row. PLDM's ``n_steps`` 91 = 91 observations.
``worldmodels.data.two_rooms_dataset.write_two_rooms_dataset`` stores them as an episode dataset.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from tensordict import TensorDict

from envs.two_rooms import DEFAULT_LAYOUT, TwoRoomsLayout, move, render_positions, room_of
from worldmodels.core import keys


class TwoRoomsTrajectories(NamedTuple):
    """Offline trajectories in row format."""

    positions: np.ndarray
    """float32 ``[N, T, 2]`` agent positions ``(x, y)`` in px, row ``t`` = o_t"""
    actions: np.ndarray
    """float32 ``[N, T, 2]`` in ``[-1, 1]``: the action taken at row ``t`` (zeros on the last row)"""


def truncated_normal(rng: np.random.Generator, mean: float, std: float, low: float, high: float, size) -> np.ndarray:
    """Normal(mean, std) restricted to ``[low, high]`` by redrawing the outliers (vectorised)."""
    if not low <= mean <= high:
        raise ValueError(f"truncated normal needs low <= mean <= high, got {low}, {mean}, {high}.")
    out = rng.normal(mean, std, size)
    bad = (out < low) | (out > high)
    while bad.any():
        out[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (out < low) | (out > high)
    return out


def heading_walk(rng: np.random.Generator, bias: np.ndarray, n_actions: int, action_angle_noise: float) -> np.ndarray:
    """Headings ``bias, bias + cumsum(vonmises(0, 1/noise))`` (PLDM ``generate_actions``). Shapes: ``[N] -> [N, n_actions]``."""
    noise = rng.vonmises(0.0, 1.0 / action_angle_noise, size=(bias.shape[0], n_actions - 1))
    return np.concatenate([bias[:, None], bias[:, None] + np.cumsum(noise, axis=1)], axis=1)


def _displacements(rng, headings: np.ndarray, step_mean, step_std, step_min, step_max) -> np.ndarray:
    """px displacements ``length * (cos, sin)``. Shapes: ``[N, A] -> [N, A, 2]``."""
    length = truncated_normal(rng, step_mean, step_std, step_min, step_max, headings.shape)
    return np.stack([np.cos(headings), np.sin(headings)], -1) * length[..., None]


def sample_free_positions(rng: np.random.Generator, n: int, layout: TwoRoomsLayout = DEFAULT_LAYOUT, margin: float = 1.0):
    """Uniform positions inside the border and outside the dividing wall (rejection). Shapes: ``[n, 2]``."""
    lo, hi = layout.border_min + margin, layout.border_max - margin

    def in_wall(p):
        in_column = (p[:, 0] > layout.wall_left - margin) & (p[:, 0] < layout.wall_right + margin)
        in_door = (p[:, 1] > layout.door_min) & (p[:, 1] < layout.door_max)
        return in_column & ~in_door

    out = rng.uniform(lo, hi, size=(n, 2))
    bad = in_wall(out)
    while bad.any():
        out[bad] = rng.uniform(lo, hi, size=(int(bad.sum()), 2))
        bad = in_wall(out)
    return out


def _cross_wall_displacements(rng, n: int, n_actions: int, action_angle_noise, lengths, layout: TwoRoomsLayout):
    """Door-crossing trajectories (PLDM ``generate_cross_wall_state_and_actions``), vectorised.

    Returns:
        ``(start, displacement)``, Shapes: ``[n, 2]``, ``[n, n_actions, 2]``.
    """
    door = np.stack(
        [
            rng.uniform(layout.wall_left, layout.wall_right, n),
            # door height: normal around the door centre, kept inside the door (std 1 px: our choice)
            truncated_normal(rng, layout.door_y, 1.0, layout.door_min, layout.door_max, n),
        ],
        -1,
    )  # [n,2]
    k = rng.integers(1, n_actions + 1, size=n)  # actions taken before the door point
    left_bias = np.pi + rng.uniform(-np.pi / 4, np.pi / 4, n)
    left = _displacements(rng, heading_walk(rng, left_bias, n_actions, action_angle_noise), *lengths)
    right = _displacements(rng, heading_walk(rng, left_bias + np.pi, n_actions, action_angle_noise), *lengths)
    j = np.arange(n_actions)[None, :]  # [1,A]
    before = j < k[:, None]  # [n,A]
    rows = np.arange(n)[:, None]
    # before the door: the left walk reversed and negated (arrive at the door); after: the right walk
    left_idx = np.clip(k[:, None] - 1 - j, 0, n_actions - 1)
    right_idx = np.clip(j - k[:, None] + 1, 0, n_actions - 1)
    disp = np.where(before[..., None], -left[rows, left_idx], right[rows, right_idx])  # [n,A,2]
    backwards = rng.random(n) < 0.5  # play half of them right-to-left
    disp[backwards] = -disp[backwards, ::-1]
    k = np.where(backwards, n_actions - k, k)
    before_sum = np.where((j < k[:, None])[..., None], disp, 0.0).sum(1)  # [n,2]
    start = door - before_sum
    start = np.clip(start, layout.border_min + 0.01, layout.border_max - 0.01)  # as PLDM
    return push_out_of_wall(start, layout), disp


def push_out_of_wall(positions: np.ndarray, layout: TwoRoomsLayout = DEFAULT_LAYOUT, margin: float = 0.5) -> np.ndarray:
    """Move positions inside the dividing wall (outside the door) to its nearer side, ``margin`` px out.

    Shapes: ``[N, 2] -> [N, 2]``.
    """
    p = np.array(positions, dtype=np.float64)
    in_column = (p[:, 0] > layout.wall_left) & (p[:, 0] < layout.wall_right)
    in_door = (p[:, 1] > layout.door_min) & (p[:, 1] < layout.door_max)
    inside = in_column & ~in_door
    to_left = p[:, 0] < layout.wall_x
    p[inside & to_left, 0] = layout.wall_left - margin
    p[inside & ~to_left, 0] = layout.wall_right + margin
    return p


def generate_trajectories(
    n_trajectories: int,
    n_steps: int = 91,
    mode: str = "good",
    action_angle_noise: float = 0.2,
    cross_wall_rate: float | None = None,
    random_fraction: float = 0.0,
    step_mean: float = 1.0,
    step_std: float = 0.4,
    step_min: float = 0.2,
    step_max: float = 1.8,
    layout: TwoRoomsLayout = DEFAULT_LAYOUT,
    seed: int = 0,
    door_passing_fraction: float | None = None,
) -> TwoRoomsTrajectories:
    """Generate PLDM-style offline Two Rooms trajectories (see the module docstring).

    Args:
        n_trajectories: number of trajectories N.
        n_steps: observations per trajectory T (PLDM: 91; 17/33/65 for the length sweep).
        mode: "good" (heading random walk, PLDM good-quality data) or "random" (uniform heading
            every step, PLDM ``action_angle_noise`` 1e6).
        action_angle_noise: von Mises concentration is its inverse (PLDM good data: 0.2).
        cross_wall_rate: fraction of good trajectories built to pass the door; None = 0.6 for
            "good" (``good_quality_data.yaml``), 0 for "random".
        random_fraction: fraction of trajectories replaced by random ones (noise mixtures).
        step_mean, step_std, step_min, step_max: truncated-normal step length in px (PLDM: 1.0, 0.4, 0.2, 1.8).
        layout: the arena.
        seed: seed of the generator.
        door_passing_fraction: None keeps the trajectories as generated; w in [0, 1] returns N
            trajectories of which ``int(N * w)`` pass the door (PLDM ``select_wc.py``; wc0: w = 0).

    Returns:
        ``TwoRoomsTrajectories(positions, actions)``, float32, Shapes: ``[N, T, 2]`` each.
    """
    if mode not in ("good", "random"):
        raise ValueError(f"mode must be 'good' or 'random', got {mode!r}.")
    if n_trajectories < 1 or n_steps < 2:
        raise ValueError(f"need n_trajectories >= 1 and n_steps >= 2, got {n_trajectories} and {n_steps}.")
    if cross_wall_rate is None:
        cross_wall_rate = 0.6 if mode == "good" else 0.0
    for name, value in (("cross_wall_rate", cross_wall_rate), ("random_fraction", random_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}.")
    if step_max > layout.max_step:
        raise ValueError(f"step_max {step_max} px exceeds the action range of {layout.max_step} px per step.")
    if door_passing_fraction is not None:
        return _select_door_passing(n_trajectories, door_passing_fraction, seed, dict(
            n_steps=n_steps, mode=mode, action_angle_noise=action_angle_noise, cross_wall_rate=cross_wall_rate,
            random_fraction=random_fraction, step_mean=step_mean, step_std=step_std, step_min=step_min,
            step_max=step_max, layout=layout))  # fmt: skip
    rng = np.random.default_rng(seed)
    n, n_actions = int(n_trajectories), int(n_steps) - 1
    lengths = (step_mean, step_std, step_min, step_max)

    start = sample_free_positions(rng, n, layout)  # [N,2]
    if mode == "good":
        headings = heading_walk(rng, rng.uniform(0.0, 2 * np.pi, n), n_actions, action_angle_noise)
    else:
        headings = rng.uniform(0.0, 2 * np.pi, (n, n_actions))
    disp = _displacements(rng, headings, *lengths)  # [N,A,2]

    n_cross = math.ceil(n * cross_wall_rate) if mode == "good" else 0
    if n_cross:
        chosen = rng.choice(n, n_cross, replace=False)
        start[chosen], disp[chosen] = _cross_wall_displacements(rng, n_cross, n_actions, action_angle_noise, lengths, layout)
    n_random = int(round(n * random_fraction))
    if n_random:
        chosen = rng.choice(n, n_random, replace=False)
        start[chosen] = sample_free_positions(rng, n_random, layout)
        disp[chosen] = _displacements(rng, rng.uniform(0.0, 2 * np.pi, (n_random, n_actions)), *lengths)

    positions = np.empty((n, n_actions + 1, 2))
    positions[:, 0] = start
    for t in range(n_actions):  # loop over time only; vectorised over trajectories
        positions[:, t + 1] = move(positions[:, t], disp[:, t], layout)
    actions = np.zeros((n, n_actions + 1, 2))
    actions[:, :n_actions] = disp / layout.max_step
    return TwoRoomsTrajectories(positions.astype(np.float32), actions.astype(np.float32))


def passes_door(positions: np.ndarray, layout: TwoRoomsLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Whether each trajectory goes through the door, from left of the wall to right of it or back
    (PLDM ``select_wc.py``: ``min x < 31`` and ``max x > 33``). Shapes: ``[N, T, 2] -> [N]``."""
    x = positions[..., 0]
    return (x.min(axis=1) < layout.wall_left) & (x.max(axis=1) > layout.wall_right)


def _select_door_passing(n: int, fraction: float, seed: int, settings: dict, max_pool_factor: int = 64):
    """``n`` trajectories, ``int(n * fraction)`` of them door-passing, drawn without replacement from
    a pool generated with ``settings`` (grown until it holds enough of both kinds), shuffled."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"door_passing_fraction must be in [0, 1], got {fraction}.")
    n_pass = int(n * fraction)
    factor = 2
    while True:
        pool = generate_trajectories(n * factor, seed=seed, **settings)
        passing = passes_door(pool.positions, settings["layout"])
        if passing.sum() >= n_pass and (~passing).sum() >= n - n_pass:
            break
        if factor >= max_pool_factor:
            raise ValueError(f"a pool of {n * factor} trajectories has {int(passing.sum())} door-passing ones; "
                             f"{n_pass} of {n} were asked for: raise cross_wall_rate or lower door_passing_fraction.")  # fmt: skip
        factor *= 2
    rng = np.random.default_rng([seed, 1])
    chosen = np.concatenate([rng.choice(np.flatnonzero(passing), n_pass, replace=False),
                             rng.choice(np.flatnonzero(~passing), n - n_pass, replace=False)])  # fmt: skip
    chosen = rng.permutation(chosen)
    return TwoRoomsTrajectories(pool.positions[chosen], pool.actions[chosen])


def crosses_wall(positions: np.ndarray, layout: TwoRoomsLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Whether each trajectory changes room at some step (PLDM ``select_wc.py``). Shapes: ``[N, T, 2] -> [N]``."""
    rooms = room_of(positions, layout)
    return (rooms != rooms[:, :1]).any(axis=1)


def trajectories_to_tensordict(trajectories: TwoRoomsTrajectories, device: str | torch.device = "cpu") -> TensorDict:
    """Rows ``[N, T]`` with ``state``, ``action``, ``prev_action``, ``reward`` (0) and the episode flags.

    Pixels are not included; render them on the fly with ``envs.two_rooms.render_positions``.
    Each trajectory is one episode ending in a time limit (``is_last`` on the last row, never terminal).
    """
    positions = torch.from_numpy(trajectories.positions)
    actions = torch.from_numpy(trajectories.actions)
    n, t = positions.shape[:2]
    prev_action = torch.zeros_like(actions)
    prev_action[:, 1:] = actions[:, :-1]
    is_first = torch.zeros(n, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    is_last = torch.zeros(n, t, 1, dtype=torch.bool)
    is_last[:, -1] = True
    rows = {
        keys.STATE: positions,
        keys.ACTION: actions,
        keys.PREV_ACTION: prev_action,
        keys.REWARD: torch.zeros(n, t, 1),
        keys.IS_FIRST: is_first,
        keys.IS_LAST: is_last,
        keys.IS_TERMINAL: torch.zeros(n, t, 1, dtype=torch.bool),
    }
    return TensorDict(rows, batch_size=[n, t], device=device)


def make_render_fn(image_size: int = 64, channels: int = 2):
    """``render_fn(state [N, 2]) -> uint8 [N, C, H, W]``: the frames of a state-only dataset's rows."""
    layout = TwoRoomsLayout(image_size=int(image_size))

    def render_fn(state):
        return render_positions(state, layout, channels)

    return render_fn

