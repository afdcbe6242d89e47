"""RoboYoga goal poses and success measures (LEXA benchmark, Mendonca et al. 2021).

Source: "Discovering and Achieving Goals via World Models" (Mendonca, Rybkin, Daniilidis,
Hafner, Pathak; NeurIPS 2021), benchmark environments ``orybkin/lexa-benchmark``
(``envs/dmc.py``: ``get_dmc_benchmark_goals``, ``get_quadruped_pose``, ``_compute_reward``).
Everything here is pure numpy and vectorised over leading batch dimensions.

* Walker (12 goals, ``qpos`` [9] = rootz, rootx, rooty, r_hip, r_knee, r_ankle, l_hip, l_knee,
  l_ankle): ``d = max |qpos - goal|`` over indices [0, 2, 3, 4, 6, 7], the rotation error wrapped
  to the shortest angle, minimised over the goal and its leg-swapped copy; success ``d < 0.7``.
* Quadruped (12 goals, ``qpos`` [23] = x, y, z, quaternion(4), 4 legs x (yaw, pitch, knee,
  ankle)): poses normalised to ``[height, euler XYZ (3), joints (16)]``; ``d`` = max abs error
  (Euler errors wrapped) over all 20 entries for goals 3, 4, 9, 10 and over
  [height, euler, the 4 leg yaws] for the others; minimised over 4 rotations of the state
  (+1.57 on the first Euler angle, legs cycled 0,1,2,3 -> 1,2,3,0); success ``d < 0.7``.

The quadruped quaternion quirk, reproduced on purpose: the benchmark writes scipy's
``Rotation.from_euler('XYZ', angles).as_quat()`` -- scalar-LAST ``(x, y, z, w)`` -- straight into
``qpos[3:7]``, which MuJoCo reads as scalar-FIRST ``(w, x, y, z)``; its success measure reads
``qpos[3:7]`` back as scipy's ``(x, y, z, w)`` the same way. Doing the same gives the published
goal images and success numbers. scipy is not a dependency: ``euler_xyz_to_quat_xyzw`` and
``quat_xyzw_to_euler_xyz`` implement scipy's intrinsic-'XYZ' conventions in numpy.

Caveat (benchmark authors): the single 0.7 threshold gives some false positives (e.g. walker
goal 9, lexa-benchmark issue #1); do not use success as a training reward.
"""

from __future__ import annotations

import numpy as np

SUCCESS_THRESHOLD = 0.7
"""LEXA benchmark: success iff the pose distance is below 0.7 (walker and quadruped)."""

# ----------------------------------------------------------------------------- walker

WALKER_GOAL_NAMES = (
    "lie_back", "lie_front", "legs_up", "kneel", "side_angle", "stand_up",
    "lean_back", "boat", "bridge", "one_feet", "head_stand", "arabesque",
)  # fmt: skip
WALKER_GOALS = np.array(
    [
        [-1.2, 0, -1.57, 0, 0, 0, 0, 0, 0],  # lie_back
        [-1.2, 0, 1.57, 0, 0, 0, 0, 0, 0],  # lie_front
        [-1.24, 0, -1.57, 1.57, 0, 0, 1.57, 0, 0],  # legs_up
        [-0.5, 0, 0, 0, -1.57, -0.8, 1.57, -1.57, 0],  # kneel
        [-0.3, 0, 0.9, 0, 0, -0.7, 1.87, -1.07, 0],  # side_angle
        [-0.15, 0, 0.34, 0.74, -1.34, 0, 1.1, -0.66, -0.1],  # stand_up
        [-0.27, 0, -0.45, 0.22, -1.5, 0.86, 0.6, -0.8, -0.4],  # lean_back
        [-1.04, 0, -0.8, 1.6, 0, 0, 1.6, 0, 0],  # boat
        [-1.1, 0, -2.2, -0.3, -1.5, 0, -0.3, -0.8, -0.4],  # bridge
        [-0.2, 0, 0, 0.7, -1.34, 0.5, 1.5, -0.6, 0.1],  # one_feet
        [-1, 0, -3, 0.6, -1, -0.3, 0.9, -0.5, 0.3],  # head_stand
        [-0.34, 0, 1.57, 1.57, 0, 0, 0, 0, 0],  # arabesque
    ]
)
"""[12, 9] walker goal ``qpos`` (LEXA ``get_dmc_benchmark_goals('walker')``)."""

_WALKER_COMPARED = [0, 2, 3, 4, 6, 7]  # height, rotation, hips, knees
_WALKER_LEG_SWAP = [0, 1, 2, 6, 7, 8, 3, 4, 5]


def shortest_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap an angle error to ``[0, pi]``: ``a mod 2pi``, then ``2pi - a`` where ``a > pi`` (LEXA)."""
    a = np.mod(angle, 2 * np.pi)
    return np.where(a > np.pi, 2 * np.pi - a, a)


def walker_distance(qpos, goal) -> np.ndarray:
    """LEXA walker pose distance (``_compute_reward``, task ``walker``).

    ``d = min(D(goal), D(goal with legs swapped))``, ``D(g) = max_i |qpos_i - g_i|`` over
    indices [0, 2, 3, 4, 6, 7] with the rotation (index 2) error wrapped by ``shortest_angle``.

    Shapes: ``qpos [..., >=9]`` (extra entries, e.g. velocities, ignored), ``goal [..., 9]`` -> ``[...]``.
    """
    qpos, goal = np.asarray(qpos, dtype=np.float64)[..., :9], np.asarray(goal, dtype=np.float64)

    def one(g):
        err = np.abs(qpos - g)[..., _WALKER_COMPARED]
        err[..., 1] = shortest_angle(err[..., 1])
        return err.max(-1)

    return np.minimum(one(goal), one(goal[..., _WALKER_LEG_SWAP]))


# ----------------------------------------------------------------------------- rotations


def euler_xyz_to_quat_xyzw(angles) -> np.ndarray:
    """scipy's ``Rotation.from_euler('XYZ', angles).as_quat()``: intrinsic X-Y-Z, scalar last.

    ``q = q_x(a) * q_y(b) * q_z(c)`` (Hamilton product), ``q_axis(t) = (sin(t/2) axis, cos(t/2))``.

    Shapes: ``[..., 3] -> [..., 4]``.
    """
    angles = np.asarray(angles, dtype=np.float64)
    half = angles / 2
    s, c = np.sin(half), np.cos(half)
    qx = np.stack([s[..., 0], 0 * s[..., 0], 0 * s[..., 0], c[..., 0]], -1)
    qy = np.stack([0 * s[..., 1], s[..., 1], 0 * s[..., 1], c[..., 1]], -1)
    qz = np.stack([0 * s[..., 2], 0 * s[..., 2], s[..., 2], c[..., 2]], -1)
    return quat_multiply_xyzw(quat_multiply_xyzw(qx, qy), qz)


def quat_multiply_xyzw(p, q) -> np.ndarray:
    """Hamilton product of scalar-last quaternions. Shapes: ``[..., 4], [..., 4] -> [..., 4]``."""
    pv, pw = p[..., :3], p[..., 3:]
    qv, qw = q[..., :3], q[..., 3:]
    vec = pw * qv + qw * pv + np.cross(pv, qv)
    w = pw * qw - (pv * qv).sum(-1, keepdims=True)
    return np.concatenate([vec, w], -1)


def quat_xyzw_to_euler_xyz(quat) -> np.ndarray:
    """scipy's ``Rotation.from_quat(quat).as_euler('XYZ')``: normalises, then intrinsic X-Y-Z angles.

    With ``R = Rx(a) Ry(b) Rz(c)``: ``b = asin(R02)``, ``a = atan2(-R12, R22)``,
    ``c = atan2(-R01, R00)``; ``a, c`` in ``(-pi, pi]``, ``b`` in ``[-pi/2, pi/2]`` (the unique
    Tait-Bryan decomposition scipy returns). At gimbal lock (``|cos b| ~ 0``) scipy sets the third
    angle to 0, and so does this (``a = atan2(R21, R11)``).

    Shapes: ``[..., 4] -> [..., 3]``.
    """
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r00 = 1 - 2 * (y * y + z * z)
    r01 = 2 * (x * y - z * w)
    r02 = 2 * (x * z + y * w)
    r11 = 1 - 2 * (x * x + z * z)
    r12 = 2 * (y * z - x * w)
    r21 = 2 * (y * z + x * w)
    r22 = 1 - 2 * (x * x + y * y)
    b = np.arcsin(np.clip(r02, -1.0, 1.0))
    locked = np.abs(r02) > 1 - 1e-12
    a = np.where(locked, np.arctan2(r21, r11), np.arctan2(-r12, r22))
    c = np.where(locked, 0.0, np.arctan2(-r01, r00))
    return np.stack([a, b, c], -1)


# ----------------------------------------------------------------------------- quadruped

QUADRUPED_LEG_CONFIGS = {
    "out": (0.5, -1.0, 0.5),
    "inward": (-0.35, 0.9, -0.5),
    "down": (1.0, -0.75, -0.3),
    "out_up": (-0.2, -0.8, 1.0),
    "up": (-0.35, -0.2, 0.6),
}
"""(pitch, knee, ankle) per named leg configuration (LEXA ``get_quadruped_pose``)."""


def quadruped_pose(euler_xyz, height: float, legs: dict, leg_yaws=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """A quadruped goal ``qpos`` [23] as LEXA's ``get_quadruped_pose`` builds it.

    ``qpos[0:3] = (0, 0, height)``; ``qpos[3:7]`` = scipy's scalar-last quaternion of the intrinsic
    'XYZ' Euler angles, written as-is (the quirk in the module docstring); leg ``k``'s yaw at
    ``qpos[7 + 4k]`` and (pitch, knee, ankle) at ``qpos[8 + 4k : 11 + 4k]``; unlisted legs zero.

    Args:
        euler_xyz: global rotation (3 angles, rad).
        height: root height (m).
        legs: configuration name -> leg indices, e.g. ``{"up": [0, 1, 2, 3]}``.
        leg_yaws: yaw of legs 0..3.
    """
    pose = np.zeros(23)
    pose[2] = height
    pose[3:7] = euler_xyz_to_quat_xyzw(euler_xyz)
    pose[[7, 11, 15, 19]] = leg_yaws
    for name, indices in legs.items():
        for leg in indices:
            pose[8 + 4 * leg : 11 + 4 * leg] = QUADRUPED_LEG_CONFIGS[name]
    return pose


_TOGETHER = (-0.7, 0.7, -0.7, 0.7)
QUADRUPED_GOAL_NAMES = (
    "lie_legs_together", "lie_rotated", "lie_two_legs_up", "lie_side", "lie_side_back", "stand",
    "stand_rotated", "stand_leg_up", "attack", "balance_front", "balance_back", "balance_diag",
)  # fmt: skip
QUADRUPED_GOALS = np.stack(
    [
        quadruped_pose([0, 3.14, 0], 0.2, {"out_up": [0, 1, 2, 3]}, _TOGETHER),
        quadruped_pose([0.8, 3.14, 0], 0.2, {"out_up": [0, 1, 2, 3]}),
        quadruped_pose([0.8, 3.14, 0], 0.2, {"out_up": [1, 3], "down": [0, 2]}),
        quadruped_pose([0, 0, -1.57], 0.3, {"out": [0, 1, 2, 3]}, _TOGETHER),
        quadruped_pose([0, 0, 1.57], 0.3, {"out": [0, 1, 2, 3]}, _TOGETHER),
        quadruped_pose([1.57, 0, 0], 0.2, {"up": [0, 1, 2, 3]}),
        quadruped_pose([0.8, 0, 0], 0.2, {"up": [0, 1, 2, 3]}),
        quadruped_pose([1.57, 0, 0], 0.7, {"down": [0, 2, 3], "out_up": [1]}),
        quadruped_pose([1.57, 0, -0.4], 0.7, {"out": [0, 1, 2, 3]}),
        quadruped_pose([1.57, 0, 1.57], 0.7, {"up": [0, 1, 2, 3]}),
        quadruped_pose([1.57, 0, -1.57], 0.7, {"up": [0, 1, 2, 3]}),
        quadruped_pose([1.57, 0, 0], 0.7, {"down": [0, 2], "out_up": [1, 3]}),
    ]
)
"""[12, 23] quadruped goal ``qpos`` (LEXA ``get_dmc_benchmark_goals('quadruped')``)."""

QUADRUPED_YAW_ONLY_GOALS = (0, 1, 2, 5, 6, 7, 8, 11)
"""Goals compared on [height, euler, leg yaws] only; the others (3, 4, 9, 10) on all 20 entries."""
_QUADRUPED_YAW_ENTRIES = [0, 1, 2, 3, 4, 8, 12, 16]


def quadruped_normalise(qpos) -> np.ndarray:
    """``[height, euler XYZ of qpos[3:7] read as scipy (x, y, z, w), joints]``. Shapes: ``[..., >=23] -> [..., 20]``."""
    qpos = np.asarray(qpos, dtype=np.float64)
    return np.concatenate([qpos[..., 2:3], quat_xyzw_to_euler_xyz(qpos[..., 3:7]), qpos[..., 7:23]], -1)


def quadruped_rotate(pose20: np.ndarray, times: int = 1) -> np.ndarray:
    """The benchmark's symmetry: +1.57 on the first Euler angle, joints rolled by 12 (legs 0,1,2,3 -> 1,2,3,0)."""
    s = np.array(pose20, dtype=np.float64, copy=True)
    for _ in range(times):
        s[..., 1] = s[..., 1] + 1.57
        s[..., -16:] = np.roll(s[..., -16:], 12, axis=-1)
    return s


def quadruped_goal_index(goal) -> int | None:
    """Index of ``goal`` [23] in ``QUADRUPED_GOALS`` (exact up to float32 rounding), or None."""
    goal = np.asarray(goal, dtype=np.float64).reshape(-1)[:23]
    match = np.flatnonzero(np.abs(QUADRUPED_GOALS - goal).max(-1) < 1e-5)
    return int(match[0]) if match.size else None


def quadruped_distance(qpos, goal, goal_index: int | None = None) -> np.ndarray:
    """LEXA quadruped pose distance (``_compute_reward``, task ``quadruped``).

    ``d = min_{k=0..3} max_i E_i(rotate(state, k), goal)`` with ``E = |state - goal|`` on the
    normalised 20-vectors and the 3 Euler errors wrapped by ``shortest_angle``; ``i`` runs over
    [height, euler, 4 leg yaws] for goals 0, 1, 2, 5, 6, 7, 8, 11 and over all 20 otherwise.

    Args:
        qpos: state ``qpos`` (a longer physics state is cut to its first 23 entries).
        goal: goal ``qpos`` [23].
        goal_index: index in ``QUADRUPED_GOALS`` (picks the compared entries); None = look the goal
            up in the list, and compare all 20 entries for a goal not in it.

    Shapes: ``qpos [..., >=23]``, ``goal [23]`` -> ``[...]``.
    """
    if goal_index is None:
        goal_index = quadruped_goal_index(goal)
    state = quadruped_normalise(np.asarray(qpos, dtype=np.float64)[..., :23])
    target = quadruped_normalise(np.asarray(goal, dtype=np.float64)[..., :23])
    distances = []
    for k in range(4):
        err = np.abs(quadruped_rotate(state, k) - target)
        err[..., 1:4] = shortest_angle(err[..., 1:4])
        if goal_index in QUADRUPED_YAW_ONLY_GOALS:
            err = err[..., _QUADRUPED_YAW_ENTRIES]
        distances.append(err.max(-1))
    return np.min(np.stack(distances, 0), 0)
