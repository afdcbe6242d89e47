"""DeepMind Control Suite from pixels as a torchrl ``EnvBase``.

One agent step = ``action_repeat`` physics-control steps with the same action (rewards summed,
stopping early if the dm_control episode ends), then ONE render directly at ``image_size`` with a
``PixelRenderer`` whose GL context and scene are created once and reused. The image is the same
as ``physics.render(image_size, image_size, camera_id=camera)`` (checked in ``tests/test_dmc.py``);
``physics.render`` builds a new camera on every call, which costs 2-5 ms on software GL.
``fast_render=True`` drops shadows and reflections (4-7x faster on llvmpipe) at the price of a
different image; it is opt-in only. torchrl's ``DMControlEnv(frame_skip=k)`` renders on every
inner step instead: ``benchmarks/bench_env.py`` measures the difference.

Paper defaults per domain (``default_action_repeat`` / ``default_camera``):

* action repeat from PlaNet (Hafner et al. 2019), ``planet/scripts/tasks.py``: cartpole 8,
  reacher 4, cheetah 4, cup (``ball_in_cup``) 4, finger 2, walker 2; other domains 2
  (DreamerV2/LEXA use 2 everywhere).
* camera from LEXA / Dreamer ``envs.py`` (``orybkin/lexa-benchmark``, ``base_envs.py``):
  quadruped 2, all other domains 0.

Headless rendering needs ``MUJOCO_GL`` set before MuJoCo is imported; importing ``worldmodels``
(which every module here does first, through ``worldmodels.core``) defaults it to ``egl`` (Mesa's
llvmpipe on CPU-only machines, the GPU's EGL driver elsewhere).

Example:
    >>> env = DMCEnv("cartpole", "swingup", image_size=64, episode_length=1000, seed=0)
    >>> td = env.reset()                     # td["pixels"]: uint8 [3, 64, 64]
    >>> td = env.rand_step(td)               # td["next", "reward"]: float32 [1]
"""

from __future__ import annotations

import atexit
import math
import os
import weakref

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from worldmodels.core import keys
from worldmodels.core.config import canonical_domain, default_action_repeat

_RENDER_HELP = (
    "set MUJOCO_GL=egl (GPU or Mesa llvmpipe; needs libEGL, e.g. `apt-get install libegl1 "
    "libgl1-mesa-dri`) or MUJOCO_GL=osmesa (needs libosmesa6) in the shell before Python starts"
)

try:
    import mujoco
    from dm_control import suite
except (ImportError, OSError, AttributeError) as err:  # a GL library named by MUJOCO_GL is missing
    raise RuntimeError(
        f"MuJoCo/dm_control could not load with MUJOCO_GL={os.environ['MUJOCO_GL']} ({err!r}); {_RENDER_HELP}."
    ) from err


def _render_help() -> str:
    """How to fix headless rendering, naming the GL backend mujoco actually loaded."""
    wanted = os.environ.get("MUJOCO_GL", "").lower()
    context_class = getattr(mujoco, "GLContext", None)
    loaded = context_class.__module__.rsplit(".", 1)[-1] if context_class is not None else "disabled"
    help_text = f"MUJOCO_GL={wanted or '<unset>'}, loaded GL backend: {loaded}; {_RENDER_HELP}"
    if wanted in ("egl", "osmesa") and loaded != wanted:
        help_text += (
            f"; mujoco was imported before MUJOCO_GL={wanted} was set (importing torchrl.data or "
            "torchrl.envs does that), so it uses another backend: set the variable in the shell, "
            "or import envs first"
        )
    return help_text


# The per-domain action repeat (PlaNet's table) and the domain aliases live in
# worldmodels.core.config, so that a config's episode rows are known when it is loaded.
# Dreamer/LEXA: the quadruped is filmed by camera 2 (the default camera 0 loses it), others by 0.
_DOMAIN_CAMERA = {"quadruped": 2}


def default_camera(domain: str) -> int:
    """Camera id used by Dreamer/LEXA for ``domain``: quadruped 2, every other domain 0."""
    return _DOMAIN_CAMERA.get(canonical_domain(domain), 0)


def check_task(domain: str, task: str) -> None:
    """Raise one clear ``ValueError`` if ``(domain, task)`` is not a dm_control suite task."""
    if (canonical_domain(domain), task) not in suite.ALL_TASKS:
        valid = ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS)
        raise ValueError(
            f"Unknown dm_control task {domain!r}-{task!r}; valid domain-task pairs are: {valid} "
            f"(PlaNet/Dreamer benchmark: cartpole-swingup, reacher-easy, cheetah-run, finger-spin, "
            f"ball_in_cup-catch, walker-walk)."
        )


class PixelRenderer:
    """Films one camera of a MuJoCo model at a fixed size, with GL state created once and reused.

    The same MuJoCo calls as ``physics.render`` / ``mujoco.Renderer`` (default ``MjvOption``,
    offscreen buffer, ``mjv_updateScene`` + ``mjr_render`` + ``mjr_readPixels``), so the default
    image is identical to ``physics.render(size, size, camera_id=camera)``, minus the camera and
    scene objects that call rebuilds each time. Unlike ``mujoco.Renderer.close`` (which frees its
    GL objects in whichever context is current, corrupting another live renderer's textures),
    ``close`` makes its own context current first, so envs can be created and closed in any order.

    Args:
        physics: dm_control ``Physics`` whose model and data are rendered.
        image_size: square image side in pixels.
        camera: fixed camera id (``-1`` = MuJoCo's free camera, as in ``physics.render``).
        fast_render: turn shadows and reflections off. 4-7x faster on software GL (llvmpipe: the
            2048^2 shadow map dominates), but the image DIFFERS from the standard DMC observation
            (no shadows, no mirrored floor; mean |diff| ~1 of 255 on cheetah, more where shadows
            are large), so it is opt-in only. The skybox is kept: turning it off saves ~10 % more
            but blackens the whole background.
    """

    def __init__(self, physics, image_size: int, camera: int, fast_render: bool = False):
        self._gl, self._context = None, None
        model = physics.model.ptr
        if not -1 <= camera < model.ncam:
            raise ValueError(f"Camera id {camera} does not exist; this model has cameras -1..{model.ncam - 1}.")
        self._model, self._data = model, physics.data.ptr
        # The offscreen buffer (model XML <visual><global offwidth/offheight>) must hold the image.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, image_size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, image_size)
        try:
            gl_context_class = getattr(mujoco, "GLContext", None)
            if gl_context_class is None:
                raise RuntimeError("MuJoCo was imported with rendering disabled")
            self._gl = gl_context_class(image_size, image_size)
            self._gl.make_current()
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        except (ImportError, RuntimeError, OSError, AttributeError, mujoco.FatalError) as err:
            self.close()
            raise RuntimeError(f"MuJoCo cannot render headless ({err}): {_render_help()}.") from err
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        if fast_render:
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._option = mujoco.MjvOption()
        self._rect = mujoco.MjrRect(0, 0, image_size, image_size)
        self._camera = mujoco.MjvCamera()
        if camera == -1:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
            mujoco.mjv_defaultFreeCamera(model, self._camera)
        else:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._camera.fixedcamid = camera
        self._pixels = np.empty((image_size, image_size, 3), dtype=np.uint8)  # [H,W,3], reused
        # EGL registers eglTerminate at exit; closing first (atexit is LIFO) keeps exit quiet.
        atexit.register(_close_ref, weakref.ref(self))

    def render(self) -> np.ndarray:
        """Render the current physics data.

        Returns:
            a view of an internal buffer (copy it before the next call), uint8, Shapes: ``[H, W, 3]``.
        """
        if self._context is None:
            raise RuntimeError("render() called after close().")
        self._gl.make_current()
        mujoco.mjv_updateScene(
            self._model, self._data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._pixels, None, self._rect, self._context)
        return self._pixels[::-1]  # OpenGL rows run bottom-up

    def close(self) -> None:
        """Free the GL objects (in this renderer's own context) and the context; idempotent."""
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __del__(self):
        self.close()


def _close_ref(ref: weakref.ref) -> None:
    obj = ref()
    if obj is not None:
        obj.close()


class DMCEnv(EnvBase):
    """DeepMind Control task observed through pixels, with action repeat and a time limit.

    Observation keys (``worldmodels/core/keys.py``): ``pixels`` uint8 ``[3, H, W]``; ``state`` float32
    ``[S]`` = ``physics.get_state()`` (qpos, qvel, act: restoring it reproduces the scene);
    ``proprio`` float32 ``[P]`` (only if ``proprio=True``: the DMC observation dict, each entry flattened
    and concatenated in the order of ``observation_spec()``, kept in ``proprio_keys``; scalars such as
    walker's ``height`` count as one entry, which DreamerV2 skips);
    ``is_first`` / ``is_last`` / ``is_terminal`` bool ``[1]``. Reward float32 ``[1]`` = the sum
    of the ``action_repeat`` inner rewards. ``terminated`` only when dm_control ends the episode
    with discount 0; ``truncated`` at ``episode_length`` env steps.

    Args:
        domain: dm_control domain (``cup`` is accepted for ``ball_in_cup``).
        task: task of the domain, e.g. ``swingup``.
        image_size: square image side in pixels (PlaNet/Dreamer: 64).
        camera: camera id; None = ``default_camera(domain)``.
        action_repeat: env steps per agent step; None = ``default_action_repeat(domain)``.
        episode_length: episode length in env steps (DMC: 1000); an episode has
            ``ceil(episode_length / action_repeat)`` agent steps, the last one repeating only the
            remaining env steps.
        seed: seed of the task's random state (initial states); see ``set_seed``.
        fast_render: opt-in renderer without shadows/reflections: faster, but a DIFFERENT image
            from the standard observation (see ``PixelRenderer``).
        proprio: also return the flattened DMC observation under ``proprio``.
        device: device of the returned tensors.
        pixels: render ``pixels`` every step (default). False (with ``proprio``) skips rendering, most of
            an env step's cost on software GL; :meth:`render` still draws on demand.
    """

    def __init__(
        self,
        domain: str = "cartpole",
        task: str = "swingup",
        image_size: int = 64,
        camera: int | None = None,
        action_repeat: int | None = None,
        episode_length: int = 1000,
        seed: int = 0,
        fast_render: bool = False,
        proprio: bool = False,
        device: str | torch.device = "cpu",
        pixels: bool = True,
    ):
        super().__init__(device=device, batch_size=torch.Size([]))
        check_task(domain, task)
        if image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size}.")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1 env steps, got {episode_length}.")
        self.domain, self.task = canonical_domain(domain), task
        self.image_size = int(image_size)
        self.camera = default_camera(domain) if camera is None else int(camera)
        self.action_repeat = default_action_repeat(domain) if action_repeat is None else int(action_repeat)
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {self.action_repeat}.")
        self.episode_length = int(episode_length)
        self.fast_render = bool(fast_render)
        self.proprio = bool(proprio)
        self.pixels = bool(pixels)
        if not (self.pixels or self.proprio):
            raise ValueError("DMCEnv needs an observation: pixels=True, proprio=True or both.")
        # The time limit is ours (counted in env steps), so dm_control's is switched off.
        self._env = suite.load(
            self.domain, task, task_kwargs={"random": seed, "time_limit": float("inf")}
        )
        if not -1 <= self.camera < self._env.physics.model.ncam:
            raise ValueError(
                f"Camera id {self.camera} does not exist for {self.domain}; "
                f"allowed: -1..{self._env.physics.model.ncam - 1}."
            )
        self._renderer: PixelRenderer | None = None  # created lazily (inside worker processes)
        self._env_steps = 0
        self._episode_over = True  # step() before the first reset() is an error
        self._seed = seed
        spec = self._env.action_spec()
        self._action_low = spec.minimum.astype(np.float64)
        self._action_high = spec.maximum.astype(np.float64)
        self._make_specs(spec.shape[0])

    # ------------------------------------------------------------------ specs

    def _make_specs(self, action_dim: int) -> None:
        flag = Categorical(n=2, shape=(1,), dtype=torch.bool, device=self.device)
        state_dim = self._env.physics.get_state().shape[0]
        obs = {
            keys.PIXELS: Bounded(low=0, high=255, shape=self.image_shape, dtype=torch.uint8, device=self.device),
            keys.STATE: Unbounded(shape=(state_dim,), dtype=torch.float32, device=self.device),
            keys.IS_FIRST: flag.clone(),
            keys.IS_LAST: flag.clone(),
            keys.IS_TERMINAL: flag.clone(),
        }
        if not self.pixels:
            del obs[keys.PIXELS]
        if self.proprio:
            spec = self._env.observation_spec()
            self.proprio_keys = tuple(spec)  # the task's own order, fixed for the env's lifetime
            proprio_dim = sum(int(np.prod(spec[k].shape)) for k in self.proprio_keys)
            obs[keys.PROPRIO] = Unbounded(shape=(proprio_dim,), dtype=torch.float32, device=self.device)
        self.observation_spec = Composite(obs, device=self.device)
        self.action_spec = Bounded(low=-1.0, high=1.0, shape=(action_dim,), dtype=torch.float32, device=self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(
            {keys.DONE: flag.clone(), keys.TERMINATED: flag.clone(), keys.TRUNCATED: flag.clone()}, device=self.device
        )

    # ------------------------------------------------------------------ public helpers

    @property
    def physics(self):
        """The dm_control ``Physics`` of this env (for goal tasks and probes)."""
        return self._env.physics

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)`` of :meth:`render` (and of ``pixels`` when the env emits them)."""
        return (3, self.image_size, self.image_size)

    @property
    def control_timestep(self) -> float:
        """Simulated seconds per env step (an agent step lasts ``action_repeat`` times this)."""
        return float(self._env.control_timestep())

    @property
    def agent_steps_per_episode(self) -> int:
        """``ceil(episode_length / action_repeat)``."""
        return math.ceil(self.episode_length / self.action_repeat)

    def render(self) -> torch.Tensor:
        """Render the current physics state with the env's renderer, size and camera.

        Returns:
            uint8 tensor on ``self.device``, Shapes: ``[3, H, W]``.
        """
        if self._renderer is None:
            self._renderer = PixelRenderer(self.physics, self.image_size, self.camera, self.fast_render)
        image = self._renderer.render()  # [H,W,3]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)

    def set_state(self, state) -> None:
        """Set the physics state (``physics.get_state()`` layout) and recompute derived quantities.

        Args:
            state: array or tensor, Shapes: ``[S]`` (the ``state`` observation).
        """
        if isinstance(state, torch.Tensor):
            state = state.detach().cpu().numpy()
        state = np.asarray(state, dtype=np.float64)
        expected = self.physics.get_state().shape
        if state.shape != expected:
            raise ValueError(
                f"state must have shape {tuple(expected)} (physics.get_state()), got {tuple(state.shape)}."
            )
        self.physics.set_state(state)
        self.physics.forward()

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Free the renderer's GL context and the env."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._env.close()
        super().close(raise_if_closed=raise_if_closed)

    # ------------------------------------------------------------------ EnvBase

    def _flag(self, value: bool) -> torch.Tensor:
        return torch.tensor([value], dtype=torch.bool, device=self.device)  # [1]

    def _observation(self, timestep, is_first: bool, is_last: bool, is_terminal: bool) -> dict:
        out = {
            keys.STATE: torch.as_tensor(self.physics.get_state(), dtype=torch.float32, device=self.device),  # [S]
            keys.IS_FIRST: self._flag(is_first),
            keys.IS_LAST: self._flag(is_last),
            keys.IS_TERMINAL: self._flag(is_terminal),
        }
        if self.pixels:
            out[keys.PIXELS] = self.render()  # [3,H,W]
        if self.proprio:
            observation = timestep.observation  # [P] = each entry of proprio_keys flattened, in that order
            flat = np.concatenate([np.asarray(observation[k], dtype=np.float32).reshape(-1) for k in self.proprio_keys])
            out[keys.PROPRIO] = torch.from_numpy(flat).to(self.device)
        return out

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        timestep = self._env.reset()
        self._env_steps = 0
        self._episode_over = False
        out = self._observation(timestep, is_first=True, is_last=False, is_terminal=False)
        out.update({key: self._flag(False) for key in (keys.DONE, keys.TERMINATED, keys.TRUNCATED)})
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """One agent step: ``action_repeat`` env steps (fewer at the time limit or a terminal).

        Reward r = sum_k r_k over the repeated env steps (PlaNet/Dreamer action repeat).
        """
        if self._episode_over:
            raise RuntimeError("The episode is over (done=True); call reset() before step().")
        action = tensordict.get(keys.ACTION).detach().cpu().numpy().astype(np.float64)
        action = np.clip(action, -1.0, 1.0)
        action = self._action_low + (action + 1.0) * 0.5 * (self._action_high - self._action_low)
        reward, terminated = 0.0, False
        repeats = min(self.action_repeat, self.episode_length - self._env_steps)
        timestep = None
        for _ in range(repeats):
            timestep = self._env.step(action)
            self._env_steps += 1
            reward += timestep.reward or 0.0
            if timestep.last():  # dm_control ended the episode (time limit is off: a true terminal)
                terminated = timestep.discount == 0.0
                break
        truncated = not terminated and (self._env_steps >= self.episode_length or timestep.last())
        done = terminated or truncated
        self._episode_over = done
        out = self._observation(timestep, is_first=False, is_last=done, is_terminal=terminated)
        out.update(
            {
                keys.REWARD: torch.tensor([reward], dtype=torch.float32, device=self.device),
                keys.DONE: self._flag(done),
                keys.TERMINATED: self._flag(terminated),
                keys.TRUNCATED: self._flag(truncated),
            }
        )
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        """Reseed the task's random state (initial states); the next reset uses it."""
        if seed is None:
            return
        self._seed = seed
        self._env.task.random.seed(seed)  # reseed dm_control's RandomState in place
