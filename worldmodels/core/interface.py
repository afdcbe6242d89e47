"""The one interface every world model implements and every planner / actor-critic consumes.

Contract (all shapes batch-major; keys from ``worldmodels/keys.py``):

* ``initial_state(batch_size) -> TensorDict[B]`` -- the state before any observation.
* ``observe(pixels, prev_action, is_first, state=None) -> TensorDict[B, T]`` -- posterior
  filtering. ``pixels`` uint8 ``[B,T,C,H,W]``; ``prev_action`` float ``[B,T,A]`` (the action
  that *led to* ``pixels[:, t]``, zeros where ``is_first``); ``is_first`` bool ``[B,T,1]``.
  Where ``is_first[:, t]`` the history is reset to ``initial_state`` before step ``t``.
  ``state`` (``[B]``) continues filtering from an earlier call (pass ``states[:, -1]``).
* ``imagine(state, actions_or_policy, horizon=None) -> TensorDict[N, H]`` -- prior rollout
  from ``state`` ``[N]``. Either an action sequence ``[N,H,A]`` or a policy
  ``features [N,F] -> action [N,A]`` with ``horizon``. Row ``h`` holds ``ACTION`` a_h and the
  state s_{h+1} it leads to (the start state is *not* included).
* ``features(state) -> [..., feature_dim]`` -- what planners, actors and objectives read.
* ``embed_goal(pixels) -> [B, feature_dim]`` -- a goal image uint8 ``[B,C,H,W]`` in feature space.
* ``reward(state) -> [..., 1]`` -- only if ``has_reward``; otherwise raises
  :class:`CapabilityError`.
* ``decode(state) -> float [..., C, H, W] in [0, 1]`` -- only if ``has_decoder``; otherwise
  raises :class:`CapabilityError`.
* ``loss(batch[B, T]) -> LossOutput(loss, metrics, posterior)`` -- scalar loss; metrics a
  TensorDict of detached scalars named ``"loss/<term>"`` (and other ``"group/name"``);
  ``posterior`` the detached posterior states ``[B, T]`` (actor-critics start from them).

Models are stateless: the belief lives in the caller (agents), never in the model.
``has_reward`` / ``has_decoder`` are declared as class attributes, up front, so that objectives
and visualisation can refuse a model at construction instead of failing mid-planning.
"""

from __future__ import annotations

import abc
from typing import Callable, NamedTuple, Sequence

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys

Policy = Callable[[Tensor], Tensor]
"""features [N, F] -> action [N, A] in [-1, 1]. Goal-conditioned actors are bound to their goal
first (``functools.partial(actor, goal=...)``), so ``imagine`` stays goal-agnostic."""


class CapabilityError(RuntimeError):
    """A model was asked for something it declared it does not have (reward, decoder)."""


class LossOutput(NamedTuple):
    """What ``WorldModel.loss`` returns."""

    loss: Tensor
    """scalar, to be minimised"""
    metrics: TensorDict
    """detached scalars, keys like ``"loss/kl"``"""
    posterior: TensorDict
    """detached posterior states ``[B, T]`` of the batch (start states for imagination)"""
    embed: Tensor | None = None
    """detached encoder embeddings ``[B, T, E]`` of the batch's images, for models with ``embed``
    (heads trained on them, e.g. LEXA's embedding predictor); None otherwise"""


def check_shapes(name: str, tensor: Tensor, expected: Sequence[int | None], dtype=None) -> None:
    """Raise one clear ValueError if ``tensor`` does not have shape ``expected`` (None = any size).

    Example: ``check_shapes("pixels", px, [None, None, 3, 64, 64], torch.uint8)``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    shape = tuple(tensor.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(shape)} ({tensor.dtype}).")
    if dtype is not None and tensor.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {tensor.dtype} with shape {list(shape)}.")


class WorldModel(nn.Module, abc.ABC):
    """Latent world model contract; see the module docstring for shapes and semantics."""

    action_dim: int
    feature_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W) of the pixels it observes
    has_decoder: bool = True
    has_reward: bool = True

    @abc.abstractmethod
    def initial_state(self, batch_size: int) -> TensorDict:
        """-> state TensorDict with batch size ``[batch_size]`` on the model's device."""

    @abc.abstractmethod
    def observe(
        self, pixels: Tensor, prev_action: Tensor, is_first: Tensor, state: TensorDict | None = None
    ) -> TensorDict:
        """Posterior states ``[B, T]`` for uint8 ``pixels [B,T,C,H,W]``; see module docstring."""

    @abc.abstractmethod
    def imagine(self, state: TensorDict, actions: Tensor | Policy, horizon: int | None = None) -> TensorDict:
        """Prior rollout ``[N, H]`` (with ``ACTION``) from ``state [N]``; see module docstring."""

    @abc.abstractmethod
    def features(self, state: TensorDict) -> Tensor:
        """``[..., feature_dim]`` for a state TensorDict of any batch shape."""

    @abc.abstractmethod
    def embed_goal(self, pixels: Tensor) -> Tensor:
        """uint8 goal image ``[B,C,H,W]`` -> ``[B, feature_dim]``."""

    def reward(self, state: TensorDict) -> Tensor:
        """Predicted reward ``[..., 1]``. Only models with ``has_reward``."""
        raise CapabilityError(
            f"{type(self).__name__} has no reward head; use a goal objective or a model trained with rewards."
        )

    def decode(self, state: TensorDict) -> Tensor:
        """Reconstructed image ``[..., C, H, W]`` in [0, 1]. Only models with ``has_decoder``."""
        raise CapabilityError(
            f"{type(self).__name__} has no decoder; visualise it through a probe decoder (worldmodels.viz.openloop)."
        )

    @abc.abstractmethod
    def loss(self, batch: TensorDict) -> LossOutput:
        """Training loss on a ``[B, T]`` batch of replay rows (keys: PIXELS, PREV_ACTION, REWARD,
        IS_FIRST, IS_TERMINAL)."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def check_world_model(model: WorldModel, batch: int = 2, length: int = 3, horizon: int = 4) -> None:
    """Assert the interface's shapes on a random tiny batch (used by every model's tests).

    Raises AssertionError naming the method and the shapes on any violation.
    """
    c, h, w = model.image_shape
    a = model.action_dim
    dev = model.device
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, length, c, h, w), dtype=torch.uint8, generator=gen).to(dev)
    prev_action = (torch.rand(batch, length, a, generator=gen) * 2 - 1).to(dev)
    is_first = torch.zeros(batch, length, 1, dtype=torch.bool, device=dev)
    is_first[:, 0] = True
    prev_action[:, 0] = 0

    init = model.initial_state(batch)
    assert init.batch_size == torch.Size([batch]), f"initial_state batch {init.batch_size} != [{batch}]"
    assert model.features(init).shape == (batch, model.feature_dim), "features(initial_state) shape"

    post = model.observe(pixels, prev_action, is_first)
    assert post.batch_size == torch.Size([batch, length]), f"observe -> {post.batch_size}"
    feats = model.features(post)
    assert feats.shape == (batch, length, model.feature_dim), f"features(observe) -> {tuple(feats.shape)}"
    cont = model.observe(pixels, prev_action, torch.zeros_like(is_first), state=post[:, -1])
    assert cont.batch_size == torch.Size([batch, length]), "observe(state=...) continuation"

    start = post[:, -1]
    actions = torch.rand(batch, horizon, a, generator=gen).to(dev) * 2 - 1
    imag = model.imagine(start, actions)
    assert imag.batch_size == torch.Size([batch, horizon]), f"imagine(actions) -> {imag.batch_size}"
    assert torch.equal(imag[keys.ACTION], actions), "imagine must return the actions it was given"
    assert model.features(imag).shape == (batch, horizon, model.feature_dim)

    def policy(f: Tensor) -> Tensor:
        assert f.shape == (batch, model.feature_dim), f"policy got features {tuple(f.shape)}"
        return torch.zeros(f.shape[0], a, device=f.device)

    imag_p = model.imagine(start, policy, horizon)
    assert imag_p.batch_size == torch.Size([batch, horizon]), f"imagine(policy) -> {imag_p.batch_size}"
    assert imag_p[keys.ACTION].shape == (batch, horizon, a)

    goal = model.embed_goal(pixels[:, 0])
    assert goal.shape == (batch, model.feature_dim), f"embed_goal -> {tuple(goal.shape)}"

    if model.has_reward:
        assert model.reward(imag).shape == (batch, horizon, 1), "reward shape"
    else:
        try:
            model.reward(imag)
            raise AssertionError("has_reward=False but reward() did not raise CapabilityError")
        except CapabilityError:
            pass
    if model.has_decoder:
        img = model.decode(imag)
        assert img.shape == (batch, horizon, c, h, w), f"decode -> {tuple(img.shape)}"
    else:
        try:
            model.decode(imag)
            raise AssertionError("has_decoder=False but decode() did not raise CapabilityError")
        except CapabilityError:
            pass

    batch_td = TensorDict(
        {
            keys.PIXELS: pixels,
            keys.PREV_ACTION: prev_action,
            keys.ACTION: torch.rand(batch, length, a, generator=gen).to(dev) * 2 - 1,
            keys.REWARD: torch.rand(batch, length, 1, generator=gen).to(dev),
            keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: torch.zeros_like(is_first),
            keys.IS_LAST: torch.zeros_like(is_first),
        },
        batch_size=[batch, length],
    )
    out = model.loss(batch_td)
    assert isinstance(out, LossOutput), "loss() must return LossOutput"
    assert out.loss.dim() == 0 and torch.isfinite(out.loss), f"loss must be a finite scalar, got {out.loss}"
    assert out.posterior.batch_size == torch.Size([batch, length]), "loss().posterior batch"
    for k, v in out.metrics.items(include_nested=True, leaves_only=True):
        assert v.dim() == 0 and not v.requires_grad, f"metric {k} must be a detached scalar"
