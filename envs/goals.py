"""Goal-image task sets on DeepMind Control: a goal is a physics pose, shown as an image,
and success is measured from the TRUE state (never from pixels).

Task sets (``goal_set_names()``); every goal state ``GOAL_STATE`` is the goal's ``qpos``:

* ``point_mass`` (point_mass/easy): the mass at a position; 9 fixed goals on the 3x3 grid
  ``{-0.2, 0, 0.2}^2`` m (the arena spans +-0.29 m). Success: mass-to-goal distance < 0.03 m
  (about DMC's target radius 0.015 + mass radius 0.01).
* ``reacher`` (reacher/easy): the arm's joint angles whose fingertip lies on a goal point; 8
  fixed fingertip goals, radius 0.10 m at 0/90/180/270 deg and 0.18 m at 45/135/225/315 deg
  (DMC samples targets at radius 0.05-0.20), converted by closed-form inverse kinematics (elbow
  angle >= 0). Success: fingertip-to-goal-fingertip distance < 0.05 m (reacher-easy target
  radius ``_BIG_TARGET``).
* ``roboyoga_walker`` (walker/walk) and ``roboyoga_quadruped`` (quadruped/run, as LEXA): the
  LEXA benchmark's 12 + 12 poses and success measures, ``envs/roboyoga.py``.

Random training-time goals: ``sample_goal_states`` (point_mass: uniform in +-0.25 m; reacher:
DMC's target distribution, radius U[0.05, 0.20], angle U[0, 2pi); RoboYoga: draws from the list).

The DMC target sphere (point_mass, reacher) is always moved to the goal -- so DMC's own task
reward measures reaching the goal -- and by default made invisible (alpha 0), so the goal is
communicated only by the goal image and observations never leak it (``show_target=True`` keeps it
visible, at the goal, in both the goal image and the observations).

Goal image (LEXA ``render_goal``): physics state ``[goal_qpos, zero velocities/activations]``,
one zero-action control step, render at the env's size and camera (walker 0, quadruped 2), then
the pre-goal state is restored.
"""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Unbounded
from torchrl.envs import EnvBase

from envs import roboyoga
from worldmodels.core import keys

# task set -> (dm_control domain, task). LEXA trains RoboYoga on dmc_walker_walk / dmc_quadruped_run.
_TASKS = {
    "point_mass": ("point_mass", "easy"),
    "reacher": ("reacher", "easy"),
    "roboyoga_walker": ("walker", "walk"),
    "roboyoga_quadruped": ("quadruped", "run"),
}
# LEXA: action repeat 2 for RoboYoga; None = the DMC env's default (PlaNet: reacher 4, others 2).
_ACTION_REPEAT = {"roboyoga_walker": 2, "roboyoga_quadruped": 2}
# physics steps per dm_control control step (control_timestep / physics timestep), checked in tests
CONTROL_SUBSTEPS = {"point_mass": 1, "reacher": 1, "walker": 10, "quadruped": 4}
_THRESHOLDS = {"point_mass": 0.03, "reacher": 0.05, "roboyoga_walker": 0.7, "roboyoga_quadruped": 0.7}

REACHER_LINKS = (0.12, 0.12)
"""reacher upper-arm and forearm lengths to the fingertip (m; reacher.xml body offsets)."""
REACHER_WRIST_LIMIT = 2.79
"""reacher wrist joint range +-2.79 rad (reacher.xml)."""


def reacher_fingertip(qpos) -> np.ndarray:
    """Forward kinematics: fingertip ``(x, y)`` from (shoulder, wrist) angles. Shapes: ``[..., >=2] -> [..., 2]``."""
    q = np.asarray(qpos, dtype=np.float64)
    l1, l2 = REACHER_LINKS
    s, w = q[..., 0], q[..., 0] + q[..., 1]
    return np.stack([l1 * np.cos(s) + l2 * np.cos(w), l1 * np.sin(s) + l2 * np.sin(w)], -1)


def reacher_joint_angles(fingertip) -> np.ndarray:
    """Inverse kinematics (elbow angle >= 0): (shoulder, wrist) putting the fingertip at ``(x, y)``.

    ``cos q2 = (r^2 - l1^2 - l2^2) / (2 l1 l2)``; ``q1 = atan2(y, x) - atan2(l2 sin q2, l1 + l2 cos q2)``.
    Shapes: ``[..., 2] -> [..., 2]``; radius must lie in the reachable annulus.
    """
    p = np.asarray(fingertip, dtype=np.float64)
    l1, l2 = REACHER_LINKS
    r2 = (p**2).sum(-1)
    cos_q2 = (r2 - l1**2 - l2**2) / (2 * l1 * l2)
    if np.any(cos_q2 > 1) or np.any(np.arccos(np.clip(cos_q2, -1, 1)) > REACHER_WRIST_LIMIT):
        raise ValueError(f"reacher goal radius must be in [0.042, 0.24] m, got {np.sqrt(r2)}.")
    q2 = np.arccos(np.clip(cos_q2, -1.0, 1.0))
    q1 = np.arctan2(p[..., 1], p[..., 0]) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
    return np.stack([q1, q2], -1)


_POINT_MASS_GOALS = np.array([[x, y] for y in (0.2, 0.0, -0.2) for x in (-0.2, 0.0, 0.2)])
_POINT_MASS_NAMES = tuple(f"xy_{x:+.1f}_{y:+.1f}" for x, y in _POINT_MASS_GOALS)
_REACHER_TIPS = np.array(
    [[r * np.cos(np.deg2rad(a)), r * np.sin(np.deg2rad(a))] for r, a in
     [(0.10, 0), (0.18, 45), (0.10, 90), (0.18, 135), (0.10, 180), (0.18, 225), (0.10, 270), (0.18, 315)]]
)  # fmt: skip
_REACHER_GOALS = reacher_joint_angles(_REACHER_TIPS)
_REACHER_NAMES = tuple(f"tip_r{np.hypot(*t):.2f}_a{np.rad2deg(np.arctan2(t[1], t[0])) % 360:.0f}" for t in _REACHER_TIPS)
_GOALS = {
    "point_mass": (_POINT_MASS_NAMES, _POINT_MASS_GOALS),
    "reacher": (_REACHER_NAMES, _REACHER_GOALS),
    "roboyoga_walker": (roboyoga.WALKER_GOAL_NAMES, roboyoga.WALKER_GOALS),
    "roboyoga_quadruped": (roboyoga.QUADRUPED_GOAL_NAMES, roboyoga.QUADRUPED_GOALS),
}


def _check_set(task_set: str) -> None:
    if task_set not in _TASKS:
        raise ValueError(f"Unknown goal task set {task_set!r}; valid task sets: {', '.join(_TASKS)}.")


def goal_set_names() -> tuple[str, ...]:
    """The goal task sets: point_mass, reacher, roboyoga_walker, roboyoga_quadruped."""
    return tuple(_TASKS)


def goal_domain_task(task_set: str) -> tuple[str, str]:
    """The dm_control ``(domain, task)`` a task set runs on."""
    _check_set(task_set)
    return _TASKS[task_set]


def num_goals(task_set: str) -> int:
    """Number of fixed (evaluation) goals of a task set."""
    _check_set(task_set)
    return len(_GOALS[task_set][1])


def goal_names(task_set: str) -> tuple[str, ...]:
    """Names of the fixed goals, in index order."""
    _check_set(task_set)
    return _GOALS[task_set][0]


def goal_states(task_set: str) -> np.ndarray:
    """The fixed goals' ``qpos`` (a copy). Shapes: ``[G, nq]``."""
    _check_set(task_set)
    return _GOALS[task_set][1].copy()


def success_threshold(task_set: str) -> float:
    """Distance below which a goal counts as reached (m for point_mass/reacher, LEXA units for RoboYoga)."""
    _check_set(task_set)
    return _THRESHOLDS[task_set]


def sample_goal_states(task_set: str, n: int, rng: np.random.Generator | int = 0) -> np.ndarray:
    """Random training-time goals (see the module docstring). Shapes: ``[n, nq]``."""
    _check_set(task_set)
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    if task_set == "point_mass":
        return rng.uniform(-0.25, 0.25, size=(n, 2))
    if task_set == "reacher":
        radius, angle = rng.uniform(0.05, 0.20, n), rng.uniform(0, 2 * np.pi, n)
        return reacher_joint_angles(np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1))
    return goal_states(task_set)[rng.integers(0, num_goals(task_set), n)]


def goal_distance(task_set: str, state, goal_state, goal_index: int | None = None) -> np.ndarray:
    """Distance from a true state to a goal (the dense goal reward is its negative).

    Args:
        task_set: one of ``goal_set_names()``.
        state: physics state (``physics.get_state()``, the ``state`` key) or just its ``qpos``.
        goal_state: the goal's ``qpos`` (the ``goal_state`` key).
        goal_index: fixed-goal index; only the quadruped uses it (which entries count); None =
            look the goal up in the list.

    Returns:
        float64 distances. Shapes: ``state [..., S]``, ``goal_state [..., nq]`` -> ``[...]``.
    """
    _check_set(task_set)
    state = _numpy(state)
    goal = _numpy(goal_state)
    if task_set == "point_mass":
        return np.linalg.norm(state[..., :2] - goal[..., :2], axis=-1)
    if task_set == "reacher":
        return np.linalg.norm(reacher_fingertip(state[..., :2]) - reacher_fingertip(goal[..., :2]), axis=-1)
    if task_set == "roboyoga_walker":
        return roboyoga.walker_distance(state, goal)
    return roboyoga.quadruped_distance(state, goal, goal_index)


def goal_success(task_set: str, state, goal_state, goal_index: int | None = None) -> np.ndarray:
    """``goal_distance(...) < success_threshold(task_set)`` (bool; a numpy bool for one state)."""
    return goal_distance(task_set, state, goal_state, goal_index) < success_threshold(task_set)


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- env


def place_target(env, task_set: str, goal_state, visible: bool) -> None:
    """Move DMC's target geom (point_mass, reacher) to the goal and show or hide it; no-op otherwise."""
    if task_set not in ("point_mass", "reacher"):
        return
    physics = env.physics
    goal = np.asarray(goal_state, dtype=np.float64)
    xy = goal[:2] if task_set == "point_mass" else reacher_fingertip(goal)
    physics.named.model.geom_pos["target", :2] = xy
    physics.named.model.geom_rgba["target", 3] = 1.0 if visible else 0.0  # alpha 0: MuJoCo draws nothing
    physics.forward()


def render_goal(env, task_set: str, goal_state) -> torch.Tensor:
    """Render a goal image as LEXA does, leaving the env's physics state as it was.

    Sets the state to ``[goal_qpos, zeros]``, takes one zero-action control step, renders with the
    env's renderer (size, camera), then restores state and time.

    Args:
        env: a ``DMCEnv`` (uses ``physics``, ``set_state`` and ``render``).
        task_set: one of ``goal_set_names()``.
        goal_state: the goal's ``qpos``.

    Returns:
        uint8 ``[3, H, W]`` on the env's device.
    """
    physics = env.physics
    saved, saved_time = physics.get_state().copy(), float(physics.data.time)
    goal_qpos = _numpy(goal_state)
    state = np.zeros_like(saved)
    state[: goal_qpos.shape[0]] = goal_qpos
    env.set_state(state)
    physics.set_control(np.zeros(physics.model.nu))
    physics.step(CONTROL_SUBSTEPS[goal_domain_task(task_set)[0]])
    image = env.render()
    env.set_state(saved)
    physics.data.time = saved_time
    return image


class GoalEnv(EnvBase):
    """A ``DMCEnv`` turned into a goal-image task (an ``EnvBase`` that wraps the env it owns).

    On reset it picks a goal -- ``goal_index`` if given, else a random fixed goal (or, with
    ``random_goals``, a fresh sample from ``sample_goal_states``) drawn with the env's RNG; a
    ``goal_state`` in the reset TensorDict overrides both -- renders the goal image once, and
    every observation carries ``goal_pixels`` uint8 ``[3,H,W]``, ``goal_state`` ``[nq]`` and
    ``success`` bool ``[1]`` measured from the true state. With ``goal_reward`` (default) the
    step reward ``("next", "reward")`` is the dense goal reward ``-goal_distance`` of the state
    reached (LEXA's reward); otherwise the DMC task reward is kept.

    Args:
        base: the ``DMCEnv`` of the task set's domain (owned; closed with this env).
        task_set: one of ``goal_set_names()``.
        goal_index: fixed goal for every episode (evaluation), or None.
        random_goals: sample continuous goals instead of fixed ones (point_mass, reacher).
        goal_reward: replace the task reward by ``-goal_distance``.
        show_target: keep DMC's target sphere visible (it is always moved to the goal).
        seed: seed of the goal sampler (the base env is seeded separately).

    Example:
        >>> env = make_goal_env("roboyoga_walker", goal_index=3)
        >>> td = env.reset()           # td["goal_pixels"]: uint8 [3, 64, 64]
        >>> td = env.rand_step(td)     # td["next", "success"]: bool [1]
    """

    def __init__(self, base, task_set: str, goal_index: int | None = None, random_goals: bool = False,
                 goal_reward: bool = True, show_target: bool = False, seed: int = 0):  # fmt: skip
        _check_set(task_set)
        if goal_index is not None and not 0 <= goal_index < num_goals(task_set):
            raise ValueError(f"goal_index must be in [0, {num_goals(task_set) - 1}] for {task_set}, got {goal_index}.")
        if (base.domain, base.task) != _TASKS[task_set]:
            raise ValueError(f"Goal task set {task_set} needs a {_TASKS[task_set]} env, got {(base.domain, base.task)}.")
        super().__init__(device=base.device, batch_size=torch.Size([]))
        self.base, self.task_set = base, task_set
        self.goal_index, self.random_goals = goal_index, bool(random_goals)
        self.goal_reward, self.show_target = bool(goal_reward), bool(show_target)
        self._rng = np.random.default_rng(seed)
        self._goal = goal_states(task_set)[0]
        self._current_index: int | None = 0
        self._goal_pixels = None
        observation = base.observation_spec.clone()
        observation[keys.GOAL_PIXELS] = base.observation_spec[keys.PIXELS].clone()
        observation[keys.GOAL_STATE] = Unbounded(shape=(self._goal.shape[0],), dtype=torch.float32, device=self.device)
        observation[keys.SUCCESS] = Categorical(n=2, shape=(1,), dtype=torch.bool, device=self.device)
        self.observation_spec = observation
        self.action_spec = base.action_spec.clone()
        self.reward_spec = base.reward_spec.clone()
        self.done_spec = base.done_spec.clone()

    @classmethod
    def from_config(cls, cfg, seed: int = 0, device: str | torch.device = "cpu", goal_index: int | None = None) -> "GoalEnv":
        """Build from an ``EnvConfig`` with ``goal_set`` set (its ``domain``/``task`` are implied by the set)."""
        return make_goal_env(cfg.goal_set, goal_index=goal_index, image_size=cfg.image_size,
                             action_repeat=cfg.action_repeat, episode_length=cfg.episode_length, seed=seed,
                             device=device, fast_render=cfg.fast_render)  # fmt: skip

    @property
    def physics(self):
        """The wrapped env's dm_control ``Physics``."""
        return self.base.physics

    @property
    def episode_length(self) -> int:
        """Episode length in env steps (of the wrapped DMCEnv)."""
        return self.base.episode_length

    @property
    def action_repeat(self) -> int:
        """Env steps per agent step (of the wrapped DMCEnv)."""
        return self.base.action_repeat

    @property
    def current_goal_index(self) -> int | None:
        """Index of this episode's goal in the fixed list (None for a sampled/given goal)."""
        return self._current_index

    @property
    def goal_state(self) -> np.ndarray:
        """This episode's goal ``qpos`` (a copy)."""
        return self._goal.copy()

    def render(self) -> torch.Tensor:
        """The current observation image, uint8 ``[3, H, W]``."""
        return self.base.render()

    def _choose_goal(self, tensordict: TensorDictBase | None) -> None:
        if tensordict is not None and keys.GOAL_STATE in tensordict.keys():
            self._goal = _numpy(tensordict.get(keys.GOAL_STATE)).reshape(-1)
            expected = goal_states(self.task_set).shape[1]
            if self._goal.shape != (expected,):
                raise ValueError(f"goal_state for {self.task_set} must be the goal qpos of shape [{expected}], "
                                 f"got {list(self._goal.shape)}.")
            found = np.flatnonzero(np.abs(goal_states(self.task_set) - self._goal).max(-1) < 1e-5)
            self._current_index = int(found[0]) if found.size else None
        elif self.goal_index is not None:
            self._current_index, self._goal = self.goal_index, goal_states(self.task_set)[self.goal_index]
        elif self.random_goals:
            self._current_index, self._goal = None, sample_goal_states(self.task_set, 1, self._rng)[0]
        else:
            self._current_index = int(self._rng.integers(num_goals(self.task_set)))
            self._goal = goal_states(self.task_set)[self._current_index]

    def _goal_keys(self, state: torch.Tensor) -> tuple[dict, float]:
        distance = float(goal_distance(self.task_set, state, self._goal, self._current_index))
        return {
            keys.GOAL_PIXELS: self._goal_pixels.clone(),
            keys.GOAL_STATE: torch.as_tensor(self._goal, dtype=torch.float32, device=self.device),
            keys.SUCCESS: torch.tensor([distance < success_threshold(self.task_set)], device=self.device),
        }, distance

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        out = self.base.reset()
        self._choose_goal(tensordict)
        place_target(self.base, self.task_set, self._goal, self.show_target)
        self._goal_pixels = render_goal(self.base, self.task_set, self._goal)
        out.set(keys.PIXELS, self.base.render())  # re-render: the target may have moved or vanished
        extra, _ = self._goal_keys(out.get(keys.STATE))
        out.update(extra)
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        step_in = TensorDict({keys.ACTION: tensordict.get(keys.ACTION)}, batch_size=self.batch_size, device=self.device)
        out = self.base.step(step_in).get(keys.NEXT)
        extra, distance = self._goal_keys(out.get(keys.STATE))
        out.update(extra)
        if self.goal_reward:
            out.set(keys.REWARD, torch.tensor([-distance], dtype=torch.float32, device=self.device))
        return out

    def _set_seed(self, seed: int | None) -> None:
        """Reseed the goal sampler and the wrapped env."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self.base.set_seed(seed)

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Close the wrapped env too."""
        self.base.close(raise_if_closed=raise_if_closed)
        try:
            super().close(raise_if_closed=raise_if_closed)
        except TypeError:  # older torchrl: close() takes no arguments
            super().close()


def make_goal_env(task_set: str, goal_index: int | None = None, image_size: int = 64, action_repeat: int | None = None,
                  episode_length: int = 1000, seed: int = 0, device: str | torch.device = "cpu",
                  random_goals: bool = False, goal_reward: bool = True, show_target: bool = False,
                  fast_render: bool = False) -> GoalEnv:  # fmt: skip
    """Build the goal-image env of a task set (see ``GoalEnv``).

    Args:
        task_set: one of ``goal_set_names()``.
        goal_index: fixed goal (evaluation), None = a random goal per episode.
        image_size: rendered image side (px).
        action_repeat: None = LEXA's 2 for RoboYoga, the DMC default (PlaNet) otherwise.
        episode_length: env steps per episode (LEXA: 1000, i.e. 500 agent steps at repeat 2).
        seed: seeds the DMC env and the goal sampler.
        device: device of the returned tensors.
        random_goals, goal_reward, show_target: see ``GoalEnv``.
        fast_render: ``DMCEnv``'s opt-in renderer without shadows/reflections.
    """
    _check_set(task_set)
    from envs.dmc import DMCEnv  # loads MuJoCo

    domain, task = _TASKS[task_set]
    if action_repeat is None:
        action_repeat = _ACTION_REPEAT.get(task_set)
    base = DMCEnv(domain, task, image_size=image_size, action_repeat=action_repeat,
                  episode_length=episode_length, seed=seed, fast_render=fast_render, device=device)  # fmt: skip
    return GoalEnv(base, task_set, goal_index=goal_index, random_goals=random_goals, goal_reward=goal_reward,
                   show_target=show_target, seed=seed)  # fmt: skip


def save_goal_images(task_set: str, directory, image_size: int = 64) -> list:
    """Write the fixed goals' images as ``{index:02d}_{name}.png`` (inputs for ``worldmodels plan --goal``).

    Returns:
        the written paths, in goal order.
    """
    from pathlib import Path

    import imageio.v2 as imageio

    env = make_goal_env(task_set, image_size=image_size)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for index, (name, goal) in enumerate(zip(goal_names(task_set), goal_states(task_set))):
            place_target(env.base, task_set, goal, visible=False)
            image = render_goal(env.base, task_set, goal)  # [3,H,W]
            paths.append(directory / f"{index:02d}_{name}.png")
            imageio.imwrite(paths[-1], image.permute(1, 2, 0).cpu().numpy())
    finally:
        env.close()
    return paths
