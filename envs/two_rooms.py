"""PLDM's Two Rooms: a 2-D point agent in a walled arena with one door, as a torchrl ``EnvBase``.

Definition (Sobal, Zhang et al. 2025, "Learning from Reward-Free Offline Data: A Case for
Planning with Latent Dynamics Models", arXiv 2502.14819; ``pldm_envs/wall``):

* Arena: ``image_size`` pixels square. A border wall on pixel rows/columns
  ``border_wall_loc - 1`` and ``image_size - border_wall_loc`` (5 -> 4 and 59 at 64 px); a
  vertical dividing wall at ``x = 32`` of width 3 (columns 31..33) with a door centred at
  ``y = 10`` of half-height 4 (rows 6..14 open).
* Observation: channel 0 the agent, a Gaussian blob ``exp(-|c - p|^2 / (2 * 1.3^2)) * 255``
  (truncated to uint8, so 255 at the centre when ``p`` is on a pixel); channel 1 the walls (255).
  Positions are ``(x, y)`` = (column, row) in pixels.
* Dynamics: ``p_{t+1} = p_t + 2.45 * a`` with ``a`` in ``[-1, 1]^2`` at the env boundary (the
  paper's action space clips each coordinate to ``|a_i| <= 2.45`` px, ``max_step_norm``). A step
  that would cross a wall stops where the segment first meets it, backed off
  ``wall_margin`` = 0.5 px along the wall's normal (PLDM backs off by 0.5 px plus noise).
* Episodes: start and goal in different rooms (level "medium"), 200 steps, reward 0, success
  ``mean((p - goal)^2) < 1`` px^2 (PLDM's ``done`` and ``error_threshold``).

Deviations from the paper, on purpose: ``image_size`` defaults to 64 (PLDM's env class default;
its configs use 65) so the standard 64x64 conv encoders apply; ``channels=3`` gives an RGB-like
``[agent, walls, zeros]`` image so PlaNet/DreamerV2 encoders can read the same data; collisions
are deterministic (no noise); episodes end on success only if ``terminate_on_success``.

Example:
    >>> env = TwoRoomsEnv(seed=0)
    >>> td = env.reset()                 # td["pixels"]: uint8 [2, 64, 64]; td["goal_pixels"] too
    >>> td = env.rand_step(td)           # td["next", "success"]: bool [1]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from worldmodels.core import keys

_FAR = 1.0e4  # stands in for infinity in the wall boxes (keeps the slab arithmetic finite)


@dataclass(frozen=True)
class TwoRoomsLayout:
    """Geometry of the Two Rooms arena (PLDM ``DotWall`` defaults, ``fix_wall_location`` 32,
    ``fix_door_location`` 10). All lengths in pixels."""

    image_size: int = 64
    """square image side (PLDM env class: 64; PLDM configs: 65)"""
    border_wall_loc: int = 5
    """border wall on pixel rows/columns ``border_wall_loc - 1`` and ``image_size - border_wall_loc``"""
    wall_x: int = 32
    """column of the centre of the dividing wall"""
    wall_width: int = 3
    """dividing-wall width; it covers ``wall_x +- wall_width // 2``"""
    door_y: int = 10
    """row of the centre of the door"""
    door_space: int = 4
    """door half-height; the door covers ``door_y +- door_space``"""
    dot_std: float = 1.3
    """standard deviation of the agent's Gaussian blob"""
    max_step: float = 2.45
    """displacement per unit action (PLDM ``max_step_norm``)"""
    wall_margin: float = 0.5
    """after a collision the agent sits this far from the wall it hit"""

    def __post_init__(self):
        if self.image_size < 2 * self.border_wall_loc + self.wall_width + 4:
            raise ValueError(f"image_size {self.image_size} is too small for the Two Rooms layout; use >= 32.")

    @property
    def border_min(self) -> float:
        return float(self.border_wall_loc - 1)

    @property
    def border_max(self) -> float:
        return float(self.image_size - self.border_wall_loc)

    @property
    def wall_left(self) -> float:
        return float(self.wall_x - self.wall_width // 2)

    @property
    def wall_right(self) -> float:
        return float(self.wall_x + self.wall_width // 2)

    @property
    def door_min(self) -> float:
        return float(self.door_y - self.door_space)

    @property
    def door_max(self) -> float:
        return float(self.door_y + self.door_space)

    @property
    def border_padding(self) -> float:
        """PLDM keeps sampled starts/goals this far inside: ``border_wall_loc - 1 + 2 * dot_std``."""
        return self.border_min + 2 * self.dot_std

    def boxes(self) -> np.ndarray:
        """Walls as axis-aligned boxes ``[x_lo, x_hi, y_lo, y_hi]``, Shapes: ``[6, 4]``."""
        lo, hi = self.border_min, self.border_max
        return np.array(
            [
                [-_FAR, lo, -_FAR, _FAR],  # left border
                [hi, _FAR, -_FAR, _FAR],  # right border
                [-_FAR, _FAR, -_FAR, lo],  # top border
                [-_FAR, _FAR, hi, _FAR],  # bottom border
                [self.wall_left, self.wall_right, -_FAR, self.door_min],  # dividing wall above the door
                [self.wall_left, self.wall_right, self.door_max, _FAR],  # dividing wall below the door
            ]
        )


DEFAULT_LAYOUT = TwoRoomsLayout()


def layout_for(image_size: int) -> TwoRoomsLayout:
    """The PLDM layout at another image size (walls and door stay where they are)."""
    return TwoRoomsLayout(image_size=int(image_size))


# ----------------------------------------------------------------------------- dynamics


@functools.lru_cache(maxsize=8)
def _cached_boxes(layout: TwoRoomsLayout) -> np.ndarray:
    boxes = layout.boxes()
    boxes.setflags(write=False)
    return boxes


def move(position: np.ndarray, displacement: np.ndarray, layout: TwoRoomsLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """One Two Rooms transition ``p + d``, stopped at the first wall the segment meets.

    Segment-vs-box test (slab method) against every wall box; the earliest entry time
    ``t in [0, 1]`` wins and the agent is placed at ``p + t d`` moved back ``wall_margin``
    along the normal of the face it hit. Boxes that already contain ``p`` are ignored, so an
    agent placed inside a wall can leave it.

    Args:
        position: current positions ``(x, y)`` in px.
        displacement: wanted displacements in px (already scaled from actions).
        layout: the arena.

    Returns:
        next positions, float64.

    Shapes:
        position, displacement: ``[N, 2]`` (or ``[2]``); returns the same shape.
    """
    p = np.asarray(position, dtype=np.float64)
    d = np.asarray(displacement, dtype=np.float64)
    single = p.ndim == 1
    p, d = np.atleast_2d(p), np.atleast_2d(d)
    if p.shape != d.shape or p.shape[-1] != 2:
        raise ValueError(f"position and displacement must both have shape [N, 2], got {p.shape} and {d.shape}.")
    boxes = _cached_boxes(layout)  # [K,4]
    lo = boxes[None, :, 0::2]  # [1,K,2] (x_lo, y_lo)
    hi = boxes[None, :, 1::2]  # [1,K,2] (x_hi, y_hi)
    p3, d3 = p[:, None, :], d[:, None, :]  # [N,1,2]
    moving = d3 != 0
    safe_d = np.where(moving, d3, 1.0)
    t_a, t_b = (lo - p3) / safe_d, (hi - p3) / safe_d  # [N,K,2]
    inside_slab = (p3 > lo) & (p3 < hi)
    near = np.where(moving, np.minimum(t_a, t_b), np.where(inside_slab, -np.inf, np.inf))
    far = np.where(moving, np.maximum(t_a, t_b), np.where(inside_slab, np.inf, -np.inf))
    entry, exit_ = near.max(-1), far.min(-1)  # [N,K]
    hit = (entry < exit_) & (entry >= 0.0) & (entry <= 1.0)
    entry = np.where(hit, entry, np.inf)
    first = entry.argmin(-1)  # [N]
    rows = np.arange(p.shape[0])
    t_hit = entry[rows, first]  # [N]
    collided = np.isfinite(t_hit)
    axis = near[rows, first].argmax(-1)  # [N] 0: hit a vertical face (x), 1: a horizontal face (y)
    stop = p + np.where(collided, t_hit, 1.0)[:, None] * d
    back_off = np.zeros_like(p)
    back_off[rows, axis] = -np.sign(d[rows, axis]) * layout.wall_margin
    out = np.where(collided[:, None], stop + back_off, p + d)
    return out[0] if single else out


def is_free(position, layout: TwoRoomsLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Whether positions lie strictly inside the border and outside the dividing wall. Shapes: ``[..., 2] -> [...]``."""
    p = np.asarray(position, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    inside = (x > layout.border_min) & (x < layout.border_max) & (y > layout.border_min) & (y < layout.border_max)
    in_wall = (x >= layout.wall_left) & (x <= layout.wall_right) & ((y <= layout.door_min) | (y >= layout.door_max))
    return inside & ~in_wall


def room_of(position: np.ndarray, layout: TwoRoomsLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """0 for the left room, 1 for the right one (by the wall's centre column). Shapes: ``[..., 2] -> [...]``."""
    return (np.asarray(position)[..., 0] >= layout.wall_x).astype(np.int64)


def is_success(position, goal, threshold: float = 1.0):
    """PLDM success: ``mean((p - goal)^2) < threshold`` (per-coordinate MSE, px^2; PLDM: 1.0).

    Works on numpy arrays and torch tensors. Shapes: ``[..., 2], [..., 2] -> [...]`` bool.
    """
    return ((position - goal) ** 2).mean(-1) < threshold


def sample_start_goal(rng: np.random.Generator, n: int, layout: TwoRoomsLayout = DEFAULT_LAYOUT):
    """PLDM's level-"medium" episode starts: start and goal in different rooms.

    Start x ~ U[border_padding, wall_left - 2 dot_std], goal x ~ U[wall_right + 2 dot_std,
    image_size - 1 - border_padding], both y ~ U[border_padding, image_size - 1 - border_padding];
    start and goal swapped with probability 0.5 (``DotWall._generate_start_and_target``).

    Returns:
        ``(start, goal)``, float64, Shapes: ``[n, 2]`` each.
    """
    pad, margin = layout.border_padding, 2 * layout.dot_std
    far_edge = layout.image_size - 1 - pad
    left_x = rng.uniform(pad, layout.wall_left - margin, size=n)
    right_x = rng.uniform(layout.wall_right + margin, far_edge, size=n)
    start = np.stack([left_x, rng.uniform(pad, far_edge, size=n)], -1)
    goal = np.stack([right_x, rng.uniform(pad, far_edge, size=n)], -1)
    swap = rng.random(n) < 0.5
    start[swap], goal[swap] = goal[swap].copy(), start[swap].copy()
    return start, goal


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8)
def wall_image(layout: TwoRoomsLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """The walls channel: 255 on wall pixels, 0 elsewhere. Shapes: ``[H, W]`` uint8 (read-only)."""
    size = layout.image_size
    col = np.arange(size)[None, :]
    row = np.arange(size)[:, None]
    divider = (col >= layout.wall_left) & (col <= layout.wall_right)
    door = (row >= layout.door_min) & (row <= layout.door_max)
    walls = divider & ~door
    b = layout.border_wall_loc
    walls[:, [b - 1, size - b]] = True
    walls[[b - 1, size - b], :] = True
    image = walls.astype(np.uint8) * 255
    image.setflags(write=False)
    return image


def render_positions(positions, layout: TwoRoomsLayout = DEFAULT_LAYOUT, channels: int = 2):
    """Render agent positions to Two Rooms observations (vectorised; separable Gaussian).

    The blob is ``gx[x] * gy[y]`` with ``g(u) = exp(-(u - p)^2 / (2 sigma^2))``, i.e. PLDM's
    ``exp(-|c - p|^2 / (2 sigma^2)) * 255`` truncated to uint8.

    Args:
        positions: agent positions ``(x, y)`` in px; numpy array or torch tensor (any device).
        layout: the arena.
        channels: 2 = ``[agent, walls]`` (PLDM); 3 = ``[agent, walls, zeros]`` (RGB-like).

    Returns:
        uint8 images, numpy for numpy input and a tensor on the input's device for tensors.

    Shapes:
        positions ``[..., 2]`` -> ``[..., C, H, W]``.
    """
    if channels not in (2, 3):
        raise ValueError(f"channels must be 2 (agent, walls) or 3 (agent, walls, zeros), got {channels}.")
    size, inv = layout.image_size, -0.5 / layout.dot_std**2
    if isinstance(positions, torch.Tensor) and positions.device.type == "cpu":  # numpy is faster on CPU
        return torch.from_numpy(render_positions(positions.detach().numpy(), layout, channels))
    if isinstance(positions, torch.Tensor):  # accelerators: render where the positions live
        return render_positions_torch(positions, layout, channels)
    pos = np.asarray(positions, dtype=np.float32)
    grid = np.arange(size, dtype=np.float32)
    gx = np.exp(inv * (grid - pos[..., 0:1]) ** 2) * np.float32(255.0)  # [...,W]
    gy = np.exp(inv * (grid - pos[..., 1:2]) ** 2)  # [...,H]
    out = np.zeros(pos.shape[:-1] + (channels, size, size), dtype=np.uint8)
    # the product is in [0, 255]; the unsafe cast truncates to uint8 straight into the output
    np.multiply(gy[..., :, None], gx[..., None, :], out=out[..., 0, :, :], casting="unsafe")
    out[..., 1, :, :] = wall_image(layout)
    return out


def render_positions_torch(positions: torch.Tensor, layout: TwoRoomsLayout = DEFAULT_LAYOUT, channels: int = 2) -> torch.Tensor:
    """``render_positions`` in torch, on the positions' device (``render_positions`` uses it for
    non-CPU tensors). Shapes: ``[..., 2] -> [..., C, H, W]`` uint8.
    """
    if channels not in (2, 3):
        raise ValueError(f"channels must be 2 (agent, walls) or 3 (agent, walls, zeros), got {channels}.")
    size, inv = layout.image_size, -0.5 / layout.dot_std**2
    pos = positions.to(torch.float32)
    grid = torch.arange(size, dtype=torch.float32, device=pos.device)
    gx = torch.exp(inv * (grid - pos[..., 0:1]) ** 2) * 255.0  # [...,W] in [0, 255]
    gy = torch.exp(inv * (grid - pos[..., 1:2]) ** 2)  # [...,H] in [0, 1]
    dot = (gy[..., :, None] * gx[..., None, :]).to(torch.uint8)  # [...,H,W]; truncates like PLDM
    walls = torch.from_numpy(wall_image(layout).copy()).to(pos.device).expand_as(dot)
    planes = [dot, walls] + ([torch.zeros_like(dot)] if channels == 3 else [])
    return torch.stack(planes, dim=-3)


# ----------------------------------------------------------------------------- env


class TwoRoomsEnv(EnvBase):
    """PLDM Two Rooms as a torchrl ``EnvBase`` (unbatched; use ``SerialEnv``/``ParallelEnv`` for many).

    Every episode is a goal episode: reset samples start and goal (level "medium") unless the
    reset TensorDict carries ``state`` and/or ``goal_state`` positions, renders the goal once,
    and every observation carries ``pixels``, ``state`` (position ``[2]``), ``goal_pixels``,
    ``goal_state``, ``success`` and ``is_first/is_last/is_terminal``; reward is 0.

    Args:
        image_size: image side in px (paper configs: 65; default 64 for 64x64 conv nets).
        channels: 2 (agent, walls; PLDM) or 3 (agent, walls, zeros).
        episode_length: steps per episode (PLDM eval: 200).
        terminate_on_success: end the episode (``terminated``) at success, as PLDM's env does.
        seed: seed of the start/goal sampler.
        device: device of the returned tensors.

    Example:
        >>> env = TwoRoomsEnv(channels=3)
        >>> td = env.reset(TensorDict({"state": torch.tensor([10., 10.]), "goal_state": torch.tensor([50., 50.])}, []))
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 2,
        episode_length: int = 200,
        terminate_on_success: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        super().__init__(device=device, batch_size=torch.Size([]))
        if channels not in (2, 3):
            raise ValueError(f"channels must be 2 (agent, walls) or 3 (agent, walls, zeros), got {channels}.")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1 steps, got {episode_length}.")
        self.layout = layout_for(image_size)
        self.image_size, self.channels = int(image_size), int(channels)
        self.episode_length = int(episode_length)
        self.action_repeat = 1  # one displacement per agent step (same attribute as DMCEnv)
        self.terminate_on_success = bool(terminate_on_success)
        self._rng = np.random.default_rng(seed)
        self._position = np.zeros(2)
        self._goal = np.zeros(2)
        self._goal_pixels = torch.zeros(self.channels, self.image_size, self.image_size, dtype=torch.uint8)
        self._steps = 0
        self._make_specs()

    @classmethod
    def from_config(cls, cfg, seed: int = 0, device: str | torch.device = "cpu") -> "TwoRoomsEnv":
        """Build from an ``EnvConfig`` (``image_size``, ``episode_length`` in steps -- PLDM: 200 --
        and ``two_rooms_channels``)."""
        return cls(
            image_size=cfg.image_size,
            channels=cfg.two_rooms_channels,
            episode_length=cfg.episode_length,
            seed=seed,
            device=device,
        )

    def _make_specs(self) -> None:
        flag = Categorical(n=2, shape=(1,), dtype=torch.bool, device=self.device)
        image = Bounded(
            low=0, high=255, shape=(self.channels, self.image_size, self.image_size), dtype=torch.uint8, device=self.device
        )
        position = Unbounded(shape=(2,), dtype=torch.float32, device=self.device)
        self.observation_spec = Composite(
            {
                keys.PIXELS: image,
                keys.STATE: position,
                keys.GOAL_PIXELS: image.clone(),
                keys.GOAL_STATE: position.clone(),
                keys.SUCCESS: flag.clone(),
                keys.IS_FIRST: flag.clone(),
                keys.IS_LAST: flag.clone(),
                keys.IS_TERMINAL: flag.clone(),
            },
            device=self.device,
        )
        self.action_spec = Bounded(low=-1.0, high=1.0, shape=(2,), dtype=torch.float32, device=self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(
            {keys.DONE: flag.clone(), keys.TERMINATED: flag.clone(), keys.TRUNCATED: flag.clone()}, device=self.device
        )

    @property
    def position(self) -> np.ndarray:
        """The agent's current position ``(x, y)`` in px (a copy)."""
        return self._position.copy()

    @property
    def goal(self) -> np.ndarray:
        """The current goal position ``(x, y)`` in px (a copy)."""
        return self._goal.copy()

    def render(self) -> torch.Tensor:
        """The current observation, uint8 ``[C, H, W]`` on ``self.device``."""
        return self._render(self._position)

    def _render(self, position: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(render_positions(position, self.layout, self.channels)).to(self.device)

    def _observation(self, is_first: bool, is_last: bool, is_terminal: bool, success: bool) -> dict:
        flag = lambda value: torch.tensor([bool(value)], dtype=torch.bool, device=self.device)  # noqa: E731
        return {
            keys.PIXELS: self.render(),
            keys.STATE: torch.tensor(self._position, dtype=torch.float32, device=self.device),
            keys.GOAL_PIXELS: self._goal_pixels.clone(),
            keys.GOAL_STATE: torch.tensor(self._goal, dtype=torch.float32, device=self.device),
            keys.SUCCESS: flag(success),
            keys.IS_FIRST: flag(is_first),
            keys.IS_LAST: flag(is_last),
            keys.IS_TERMINAL: flag(is_terminal),
        }

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        start, goal = sample_start_goal(self._rng, 1, self.layout)
        start, goal = start[0], goal[0]
        if tensordict is not None:
            if keys.STATE in tensordict.keys():
                start = tensordict.get(keys.STATE).detach().cpu().double().numpy().reshape(2)
            if keys.GOAL_STATE in tensordict.keys():
                goal = tensordict.get(keys.GOAL_STATE).detach().cpu().double().numpy().reshape(2)
            for name, p in ((keys.STATE, start), (keys.GOAL_STATE, goal)):
                if not is_free(p, self.layout):
                    raise ValueError(f"reset {name} {p.tolist()} is inside a wall or outside the arena; "
                                     f"allowed: ({self.layout.border_min}, {self.layout.border_max})^2 off the wall.")
        self._position, self._goal, self._steps = start, goal, 0
        self._goal_pixels = self._render(goal)
        out = self._observation(True, False, False, is_success(start, goal))
        false = torch.zeros(1, dtype=torch.bool, device=self.device)
        out.update({keys.DONE: false, keys.TERMINATED: false.clone(), keys.TRUNCATED: false.clone()})
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(keys.ACTION).detach().cpu().double().numpy().reshape(2)
        displacement = np.clip(action, -1.0, 1.0) * self.layout.max_step  # px
        self._position = move(self._position, displacement, self.layout)
        self._steps += 1
        success = bool(is_success(self._position, self._goal))
        terminated = success and self.terminate_on_success
        truncated = not terminated and self._steps >= self.episode_length
        done = terminated or truncated
        out = self._observation(False, done, terminated, success)
        out.update(
            {
                keys.REWARD: torch.zeros(1, dtype=torch.float32, device=self.device),
                keys.DONE: torch.tensor([done], device=self.device),
                keys.TERMINATED: torch.tensor([terminated], device=self.device),
                keys.TRUNCATED: torch.tensor([truncated], device=self.device),
            }
        )
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        """Reseed the start/goal sampler; the next reset uses it."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
