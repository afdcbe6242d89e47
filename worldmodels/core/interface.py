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
* ``continuation(state) -> [..., 1]`` in [0, 1], the probability of *not* terminating -- only if
  ``has_continuation``; otherwise raises :class:`CapabilityError` (actor-critics then discount
  with the constant gamma).
* ``embed_dim``, ``embed(pixels uint8 [..., C, H, W]) -> [..., E]`` (the encoder embedding of
  images) and ``features_from_embed(embed [N, E]) -> [N, feature_dim]`` (the posterior features of
  an embedding from the initial state) -- only if ``has_embedding``; otherwise they raise
  :class:`CapabilityError`. Such models also fill ``LossOutput.embed``.
* ``loss(batch[B, T]) -> LossOutput(loss, metrics, posterior, embed)`` -- scalar loss; metrics a
  TensorDict of detached scalars named ``"loss/<term>"`` (and other ``"group/name"``);
  ``posterior`` the detached posterior states ``[B, T]`` (actor-critics start from them);
  ``embed`` the detached encoder embeddings ``[B, T, E]`` when ``has_embedding``, else None.

Models are stateless: the belief lives in the caller (agents), never in the model.
The capabilities ``has_reward`` / ``has_decoder`` / ``has_continuation`` / ``has_embedding`` are
declared up front (class or instance attributes), so that consumers read the flag and can refuse a
model at construction instead of probing for methods or failing mid-planning.

A :class:`Behaviour` (the imagination actor-critic, LEXA's explorer + achiever) is what the training
loop updates after every world-model update and acts with; see its docstring.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys

Policy = Callable[[Tensor], Tensor]
"""features [N, F] -> action [N, A] in [-1, 1]. Goal-conditioned actors are bound to their goal
first (``functools.partial(actor, goal=...)``), so ``imagine`` stays goal-agnostic."""


class CapabilityError(RuntimeError):
    """A model was asked for something it declared it does not have (reward, decoder,
    continuation, embedding)."""


class LossOutput(NamedTuple):
    """What ``WorldModel.loss`` returns."""

    loss: Tensor
    """scalar, to be minimised"""
    metrics: TensorDict
    """detached scalars, keys like ``"loss/kl"``"""
    posterior: TensorDict
    """detached posterior states ``[B, T]`` of the batch (start states for imagination)"""
    embed: Tensor | None = None
    """detached encoder embeddings ``[B, T, E]`` of the batch's images, filled by models that declare
    ``has_embedding`` (heads trained on them, e.g. LEXA's embedding predictor); None otherwise"""


class Behaviour(Protocol):
    """A behaviour learner trained in a world model's imagination, and the policy it acts with.

    One :meth:`update` per world-model update, on that update's :class:`LossOutput`: from the batch's
    posteriors ``out.posterior [B, T]`` and, for behaviours that need them, its embeddings
    ``out.embed [B, T, E]``. Implementations are ``nn.Module`` s (checkpointed with
    ``state_dict`` / ``load_state_dict``, moved with ``to``) that reference the world model without
    registering it. Implemented by :class:`planners.actor_critic.ImaginationActorCritic` (DreamerV2)
    and :class:`planners.lexa_behaviour.LexaBehaviour` (LEXA: explorer + achiever).
    """

    def update(self, out: LossOutput) -> TensorDict:
        """One training step from a world-model update's output -> detached scalar metrics."""

    def policy(self, sample: bool) -> Policy:
        """The policy that collects and is evaluated (DreamerV2: the actor; LEXA: the explorer).
        ``sample``: sample actions (collection) or take the mode (evaluation)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Behaviour: ...


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
    has_continuation: bool = False
    has_embedding: bool = False

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

    def continuation(self, state: TensorDict) -> Tensor:
        """Probability of not terminating ``[..., 1]`` in [0, 1]. Only models with ``has_continuation``."""
        raise CapabilityError(
            f"{type(self).__name__} has no continuation head (has_continuation=False); discount with a constant gamma."
        )

    @property
    def embed_dim(self) -> int:
        """E, size of the encoder embedding of one image. Only models with ``has_embedding``."""
        raise self._no_embedding()

    def embed(self, pixels: Tensor) -> Tensor:
        """Encoder embeddings of uint8 images ``[..., C, H, W]`` -> ``[..., E]``. Only models with ``has_embedding``."""
        raise self._no_embedding()

    def features_from_embed(self, embed: Tensor) -> Tensor:
        """Features of the posterior of embeddings ``[N, E]`` from the initial state -> ``[N, feature_dim]``.
        Only models with ``has_embedding``."""
        raise self._no_embedding()

    def _no_embedding(self) -> CapabilityError:
        return CapabilityError(
            f"{type(self).__name__} has no image embedding (has_embedding=False); use a model with an encoder embedding."
        )

    @abc.abstractmethod
    def loss(self, batch: TensorDict) -> LossOutput:
        """Training loss on a ``[B, T]`` batch of replay rows (keys: PIXELS, PREV_ACTION, REWARD,
        IS_FIRST, IS_TERMINAL)."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def _expect_shape(what: str, tensor: Tensor, expected: Sequence[int]) -> None:
    """AssertionError naming ``what``, the expected and the actual shape, unless they match."""
    if tuple(tensor.shape) != tuple(expected):
        raise AssertionError(f"{what} must have shape {list(expected)}, got {list(tensor.shape)}.")


def _expect_capability_error(model: WorldModel, capability: str, call: Callable[[], object]) -> None:
    """AssertionError unless ``call`` raises :class:`CapabilityError` (for an undeclared capability)."""
    try:
        call()
    except CapabilityError:
        return
    raise AssertionError(f"{type(model).__name__} declares {capability}=False but did not raise CapabilityError.")


def _check_continuation(model: WorldModel, imagined: TensorDict) -> None:
    """``continuation(imagined [B, H]) -> [B, H, 1]`` in [0, 1] iff ``has_continuation``."""
    if not model.has_continuation:
        _expect_capability_error(model, "has_continuation", lambda: model.continuation(imagined))
        return
    cont = model.continuation(imagined)
    _expect_shape("continuation(imagine(...))", cont, [*imagined.batch_size, 1])
    assert ((cont >= 0) & (cont <= 1)).all(), "continuation must be a probability in [0, 1]"


def _check_embedding(model: WorldModel, pixels: Tensor, out: LossOutput) -> None:
    """``embed``, ``features_from_embed`` and ``LossOutput.embed`` shapes iff ``has_embedding``."""
    b, t = pixels.shape[:2]
    if not model.has_embedding:
        for name, call in [
            ("embed_dim", lambda: model.embed_dim),
            ("embed", lambda: model.embed(pixels)),
            ("features_from_embed", lambda: model.features_from_embed(torch.zeros(b, 1, device=pixels.device))),
        ]:
            _expect_capability_error(model, f"has_embedding (calling {name})", call)
        assert out.embed is None, "loss().embed must be None for models without has_embedding"
        return
    e = model.embed_dim
    assert isinstance(e, int) and e >= 1, f"embed_dim must be a positive int, got {e!r}"
    _expect_shape("embed(pixels [B, C, H, W])", model.embed(pixels[:, 0]), [b, e])
    embed = model.embed(pixels)
    _expect_shape("embed(pixels [B, T, C, H, W])", embed, [b, t, e])
    _expect_shape("features_from_embed(embed [N, E])", model.features_from_embed(embed[:, 0]), [b, model.feature_dim])
    assert out.embed is not None, "loss().embed must hold the batch's embeddings [B, T, E] (has_embedding=True)"
    _expect_shape("loss().embed", out.embed, [b, t, e])
    assert not out.embed.requires_grad, "loss().embed must be detached"


def check_world_model(model: WorldModel, batch: int = 2, length: int = 3, horizon: int = 4) -> None:
    """Assert the interface's shapes on a random tiny batch (used by every model's tests), including
    those of the declared capabilities, and that undeclared capabilities raise :class:`CapabilityError`.

    Raises AssertionError naming the method and the expected and actual shapes on any violation.
    """
    c, h, w = model.image_shape
    a = model.action_dim
    device = model.device
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, length, c, h, w), dtype=torch.uint8, generator=gen).to(device)
    prev_action = (torch.rand(batch, length, a, generator=gen) * 2 - 1).to(device)
    is_first = torch.zeros(batch, length, 1, dtype=torch.bool, device=device)
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
    actions = torch.rand(batch, horizon, a, generator=gen).to(device) * 2 - 1
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
        _expect_shape("reward(imagine(...))", model.reward(imag), [batch, horizon, 1])
    else:
        _expect_capability_error(model, "has_reward", lambda: model.reward(imag))
    if model.has_decoder:
        _expect_shape("decode(imagine(...))", model.decode(imag), [batch, horizon, c, h, w])
    else:
        _expect_capability_error(model, "has_decoder", lambda: model.decode(imag))
    _check_continuation(model, imag)

    batch_td = TensorDict(
        {
            keys.PIXELS: pixels,
            keys.PREV_ACTION: prev_action,
            keys.ACTION: torch.rand(batch, length, a, generator=gen).to(device) * 2 - 1,
            keys.REWARD: torch.rand(batch, length, 1, generator=gen).to(device),
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
    _check_embedding(model, pixels, out)
