"""The one interface every world model implements and every planner / actor-critic consumes.

Contract (all shapes batch-major; keys from ``worldmodels/keys.py``):

* ``initial_state(batch_size) -> TensorDict[B]`` -- the state before any observation.
* ``observe(obs, prev_action, is_first, state=None) -> TensorDict[B, T]`` -- posterior
  filtering of *observations*. ``obs`` is a TensorDict (or dict) ``[B, T]`` holding the keys the
  model reads, ``observation_keys`` (``keys.PIXELS`` uint8 ``[B,T,C,H,W]`` and/or ``keys.PROPRIO``
  float32 ``[B,T,P]``, the DMC observation vector); other keys are ignored, so a replay batch can be
  passed whole. A bare uint8 tensor is shorthand for ``{PIXELS: tensor}`` (:func:`as_observations`).
  ``prev_action`` float ``[B,T,A]`` (the action that *led to* ``obs[:, t]``, zeros where
  ``is_first``); ``is_first`` bool ``[B,T,1]``. Where ``is_first[:, t]`` the history is reset to
  ``initial_state`` before step ``t``. ``state`` (``[B]``) continues filtering from an earlier call
  (pass ``states[:, -1]``).
* ``imagine(state, actions_or_policy, horizon=None) -> TensorDict[N, H]`` -- prior rollout
  from ``state`` ``[N]``. Either an action sequence ``[N,H,A]`` or a policy
  ``features [N,F] -> action [N,A]`` with ``horizon``. Row ``h`` holds ``ACTION`` a_h and the
  state s_{h+1} it leads to (the start state is *not* included).
* ``features(state) -> [..., feature_dim]`` -- what planners, actors and objectives read;
  ``mean_features(state)`` the same with the stochastic part at its mean / mode (default: ``features``).
* ``embed_goal(pixels) -> [B, feature_dim]`` -- a goal image uint8 ``[B,C,H,W]`` in feature space.
  Goal images stay pixels: a model that reads other observations (``observation_keys`` other than
  ``(PIXELS,)``) raises :class:`CapabilityError` here.
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

Requirements every model meets (``check_world_model`` names the one that is broken):

* float32 throughout: actions are float32 ``[..., A]`` in [-1, 1], features, rewards and decoded
  images float32 (call ``model.float()`` on a float64 model); pixels stay uint8;
* at least one parameter (``WorldModel.device`` is the device of the first one);
* ``imagine(state, actions)`` returns the given actions unchanged under ``ACTION``;
* a declared capability (``has_decoder=True``, ...) is implemented, an undeclared one raises
  :class:`CapabilityError`.

``observation_shapes`` (``{key: per-step shape}``, default ``{PIXELS: image_shape}``) says what
``observe`` reads; ``image_shape`` stays the env's pixel shape (what ``decode`` and probes produce)
even for a model that reads only ``PROPRIO``.

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


def as_observations(obs: Tensor | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """The observations ``observe`` reads: a TensorDict / dict as it is, a bare tensor as ``{PIXELS: obs}``."""
    if isinstance(obs, Tensor):
        return {keys.PIXELS: obs}
    if isinstance(obs, (TensorDict, Mapping)) or hasattr(obs, "keys"):
        return obs
    raise TypeError(
        f"observations must be a TensorDict (or dict) of tensors or a pixel tensor, got {type(obs).__name__}."
    )


def observation_tensors(model: WorldModel, obs: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``{key: obs[key]}`` for every key in ``model.observation_keys``; one clear KeyError if one is missing."""
    obs = as_observations(obs)
    present = list(obs.keys())
    missing = [k for k in model.observation_keys if k not in present]
    if missing:
        raise KeyError(
            f"{type(model).__name__} observes {list(model.observation_keys)} but the observations hold "
            f"{sorted(present)}; "
            f"missing {missing} (a PROPRIO model needs an env built with env.observation: proprio or both)."
        )
    return {k: obs[k] for k in model.observation_keys}


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
    image_shape: tuple[int, int, int]  # (C, H, W) of the env's pixels (decode's output, probes)
    has_decoder: bool = True
    has_reward: bool = True
    has_continuation: bool = False
    has_embedding: bool = False

    @property
    def observation_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{key: per-step shape}`` of the observations ``observe`` reads (default: pixels only)."""
        return {keys.PIXELS: tuple(self.image_shape)}

    @property
    def observation_keys(self) -> tuple[str, ...]:
        """The keys ``observe`` reads from its observations (``keys.PIXELS`` and/or ``keys.PROPRIO``)."""
        return tuple(self.observation_shapes)

    @abc.abstractmethod
    def initial_state(self, batch_size: int) -> TensorDict:
        """-> state TensorDict with batch size ``[batch_size]`` on the model's device."""

    @abc.abstractmethod
    def observe(
        self, obs: TensorDict | Tensor, prev_action: Tensor, is_first: Tensor, state: TensorDict | None = None
    ) -> TensorDict:
        """Posterior states ``[B, T]`` for observations ``obs [B, T]`` (the ``observation_keys``; a bare
        tensor = pixels uint8 ``[B,T,C,H,W]``); see module docstring."""

    @abc.abstractmethod
    def imagine(self, state: TensorDict, actions: Tensor | Policy, horizon: int | None = None) -> TensorDict:
        """Prior rollout ``[N, H]`` (with ``ACTION``) from ``state [N]``; see module docstring."""

    @abc.abstractmethod
    def features(self, state: TensorDict) -> Tensor:
        """``[..., feature_dim]`` for a state TensorDict of any batch shape."""

    def mean_features(self, state: TensorDict) -> Tensor:
        """``features`` with any stochastic part at its mean / mode instead of its sample (a goal
        image's ``features_from_embed(sample=False)`` counterpart). Deterministic models: ``features``."""
        return self.features(state)

    @abc.abstractmethod
    def embed_goal(self, pixels: Tensor) -> Tensor:
        """uint8 goal image ``[B,C,H,W]`` -> ``[B, feature_dim]``."""

    def reward(self, state: TensorDict) -> Tensor:
        """Predicted reward ``[..., 1]``. Only models with ``has_reward``."""
        raise self._missing(
            "has_reward", "reward", "has no reward head; use a goal objective or a model trained with rewards."
        )

    def decode(self, state: TensorDict) -> Tensor:
        """Reconstructed image ``[..., C, H, W]`` in [0, 1]. Only models with ``has_decoder``."""
        raise self._missing(
            "has_decoder", "decode",
            "has no decoder; visualise it through a probe decoder (worldmodels.viz.openloop).",
        )

    def continuation(self, state: TensorDict) -> Tensor:
        """Probability of not terminating ``[..., 1]`` in [0, 1]. Only models with ``has_continuation``."""
        raise self._missing(
            "has_continuation", "continuation",
            "has no continuation head (has_continuation=False); discount with a constant gamma.",
        )

    @property
    def embed_dim(self) -> int:
        """E, size of the encoder embedding of one image. Only models with ``has_embedding``."""
        raise self._no_embedding("embed_dim")

    def embed(self, pixels: Tensor) -> Tensor:
        """Encoder embeddings of uint8 images ``[..., C, H, W]`` -> ``[..., E]``. Only models with ``has_embedding``."""
        raise self._no_embedding("embed")

    def features_from_embed(self, embed: Tensor, sample: bool = True, hold: int = 1) -> Tensor:
        """Features of the posterior of embeddings ``[N, E]`` from the initial state -> ``[N, feature_dim]``;
        a posterior sample, or its mean / mode with ``sample=False``; ``hold`` > 1 filters the same
        embedding for that many steps with zero actions (the image held still) and returns the last.
        Only models with ``has_embedding``."""
        raise self._no_embedding("features_from_embed")

    def _no_embedding(self, method: str) -> CapabilityError:
        return self._missing(
            "has_embedding", method,
            "has no image embedding (has_embedding=False); use a model with an encoder embedding.",
        )

    def _missing(self, flag: str, method: str, undeclared: str) -> CapabilityError:
        """The error of a capability method the subclass did not implement: ``undeclared`` (a sentence
        after the class name) when the flag is False, and, when the model declares it, that it did not
        implement it (a broken model, not a missing capability)."""
        name = type(self).__name__
        if getattr(self, flag):
            return CapabilityError(
                f"{name} declares {flag}=True but does not implement {method}(); implement it or set {flag}=False."
            )
        return CapabilityError(f"{name} {undeclared}")

    @abc.abstractmethod
    def loss(self, batch: TensorDict) -> LossOutput:
        """Training loss on a ``[B, T]`` batch of replay rows (keys: the ``observation_keys``, PREV_ACTION,
        REWARD, IS_FIRST, IS_TERMINAL)."""

    @property
    def device(self) -> torch.device:
        """The device of the first parameter (the contract requires at least one)."""
        first = next(self.parameters(), None)
        if first is None:
            raise RuntimeError(
                f"{type(self).__name__} has no parameters, so its device is unknown; a WorldModel needs at least one "
                "parameter (nn.Parameter)."
            )
        return first.device


def _expect_shape(what: str, tensor: Tensor, expected: Sequence[int]) -> None:
    """AssertionError naming ``what``, the expected and the actual shape, unless they match."""
    if not isinstance(tensor, Tensor):
        raise AssertionError(f"{what} must be a tensor of shape {list(expected)}, got {type(tensor).__name__}.")
    if tuple(tensor.shape) != tuple(expected):
        raise AssertionError(f"{what} must have shape {list(expected)}, got {list(tensor.shape)}.")


def _expect_batch(what: str, td: TensorDict, expected: Sequence[int]) -> None:
    """AssertionError naming ``what``, the expected and the actual batch size of a TensorDict."""
    if not isinstance(td, TensorDict):
        raise AssertionError(f"{what} must return a TensorDict with batch size {list(expected)}, got {type(td).__name__}.")
    if tuple(td.batch_size) != tuple(expected):
        raise AssertionError(f"{what} must return batch size {list(expected)}, got {list(td.batch_size)}.")


def _expect_key(what: str, td: TensorDict, key: str) -> Tensor:
    """``td[key]``, or an AssertionError naming ``what`` and the keys it holds."""
    if key not in td.keys():
        raise AssertionError(f"{what} must hold the key {key!r} (keys.{key.upper()}), got keys {sorted(td.keys())}.")
    return td[key]


def _expect_capability_error(model: WorldModel, capability: str, call: Callable[[], object]) -> None:
    """AssertionError unless ``call`` raises :class:`CapabilityError` (for an undeclared capability)."""
    try:
        call()
    except CapabilityError:
        return
    raise AssertionError(f"{type(model).__name__} declares {capability}=False but did not raise CapabilityError.")


def _call_declared(model: WorldModel, flag: str, method: str, call: Callable[[], Tensor]) -> Tensor:
    """``call()`` for a declared capability; AssertionError if it raises CapabilityError (declared,
    not implemented)."""
    try:
        return call()
    except CapabilityError as err:
        raise AssertionError(
            f"{type(model).__name__} declares {flag}=True but {method} raised CapabilityError ({err})."
        ) from err


def _check_parameters(model: WorldModel) -> torch.device:
    """At least one parameter, all floating ones float32; -> the model's device."""
    name = type(model).__name__
    params = list(model.parameters())
    if not params:
        raise AssertionError(f"{name} has no parameters; the contract requires at least one (WorldModel.device).")
    wrong = sorted({str(p.dtype) for p in params if p.is_floating_point() and p.dtype != torch.float32})
    if wrong:
        raise AssertionError(
            f"{name} has {', '.join(wrong)} parameters; the contract requires float32 (actions are float32 "
            "[..., A]); call model.float()."
        )
    return params[0].device


def _check_continuation(model: WorldModel, imagined: TensorDict) -> None:
    """``continuation(imagined [B, H]) -> [B, H, 1]`` in [0, 1] iff ``has_continuation``."""
    if not model.has_continuation:
        _expect_capability_error(model, "has_continuation", lambda: model.continuation(imagined))
        return
    cont = _call_declared(model, "has_continuation", "continuation", lambda: model.continuation(imagined))
    _expect_shape("continuation(imagine(...))", cont, [*imagined.batch_size, 1])
    assert ((cont >= 0) & (cont <= 1)).all(), (
        f"continuation(imagine(...)) must be a probability in [0, 1], got values in "
        f"[{float(cont.min()):.3g}, {float(cont.max()):.3g}]"
    )


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
        assert out.embed is None, f"loss().embed must be None for models without has_embedding, got {type(out.embed).__name__}"
        return
    e = _call_declared(model, "has_embedding", "embed_dim", lambda: model.embed_dim)
    assert isinstance(e, int) and e >= 1, f"embed_dim must be a positive int, got {e!r}"
    _expect_shape("embed(pixels [B, C, H, W])", model.embed(pixels[:, 0]), [b, e])
    embed = model.embed(pixels)
    _expect_shape("embed(pixels [B, T, C, H, W])", embed, [b, t, e])
    _expect_shape("features_from_embed(embed [N, E])", model.features_from_embed(embed[:, 0]), [b, model.feature_dim])
    assert out.embed is not None, f"loss().embed must hold the batch's embeddings {[b, t, e]} (has_embedding=True), got None"
    _expect_shape("loss().embed", out.embed, [b, t, e])
    assert not out.embed.requires_grad, "loss().embed must be detached"


def check_world_model(model: WorldModel, batch: int = 2, length: int = 3, horizon: int = 4) -> None:
    """Assert the interface's shapes on a random tiny batch (used by every model's tests), including
    those of the declared capabilities, and that undeclared capabilities raise :class:`CapabilityError`.

    Checks the requirements of the module docstring first: at least one parameter, float32
    parameters (the checker feeds float32 actions), and ``imagine`` returning the actions unchanged.

    Raises AssertionError naming the method and the expected and actual shapes on any violation.
    """
    device = _check_parameters(model)
    c, h, w = model.image_shape
    a, f = model.action_dim, model.feature_dim
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, length, c, h, w), dtype=torch.uint8, generator=gen).to(device)
    obs = {keys.PIXELS: pixels}
    for key, shape in model.observation_shapes.items():
        if key != keys.PIXELS:
            obs[key] = torch.randn(batch, length, *shape, generator=gen).to(device)  # float32 vectors
    obs = TensorDict(obs, batch_size=[batch, length])
    pixels_only = tuple(model.observation_keys) == (keys.PIXELS,)
    prev_action = (torch.rand(batch, length, a, generator=gen) * 2 - 1).to(device)
    is_first = torch.zeros(batch, length, 1, dtype=torch.bool, device=device)
    is_first[:, 0] = True
    prev_action[:, 0] = 0

    init = model.initial_state(batch)
    _expect_batch(f"initial_state({batch})", init, [batch])
    _expect_shape("features(initial_state)", model.features(init), [batch, f])

    post = model.observe(obs, prev_action, is_first)
    _expect_batch(f"observe(obs {list(model.observation_keys)} [B, T, ...], ...)", post, [batch, length])
    _expect_shape("features(observe(...))", model.features(post), [batch, length, f])
    cont = model.observe(obs, prev_action, torch.zeros_like(is_first), state=post[:, -1])
    _expect_batch("observe(..., state=states[:, -1])", cont, [batch, length])

    start = post[:, -1]
    actions = torch.rand(batch, horizon, a, generator=gen).to(device) * 2 - 1
    imag = model.imagine(start, actions)
    _expect_batch("imagine(state [B], actions [B, H, A])", imag, [batch, horizon])
    returned = _expect_key("imagine(state, actions)", imag, keys.ACTION)
    _expect_shape("imagine(state, actions)[ACTION]", returned, [batch, horizon, a])
    assert returned.dtype == actions.dtype and torch.equal(returned, actions), (
        f"imagine(state, actions) must return the float32 actions [B, H, A] it was given unchanged under ACTION, "
        f"got {returned.dtype} values that differ"
    )
    _expect_shape("features(imagine(...))", model.features(imag), [batch, horizon, f])
    _expect_shape("mean_features(imagine(...))", model.mean_features(imag), [batch, horizon, f])

    def policy(feats: Tensor) -> Tensor:
        _expect_shape("the policy's input features inside imagine(state, policy, horizon)", feats, [batch, f])
        return torch.zeros(feats.shape[0], a, device=feats.device)

    imag_p = model.imagine(start, policy, horizon)
    _expect_batch(f"imagine(state [B], policy, horizon={horizon})", imag_p, [batch, horizon])
    _expect_shape("imagine(state, policy, horizon)[ACTION]", _expect_key("imagine(state, policy, horizon)", imag_p, keys.ACTION),
                  [batch, horizon, a])  # fmt: skip

    if pixels_only:
        _expect_shape("embed_goal(pixels [B, C, H, W])", model.embed_goal(pixels[:, 0]), [batch, f])
    else:  # goal images stay pixels: a model reading other observations refuses them
        _expect_capability_error(model, "embed_goal from pixels (observation_keys != (PIXELS,))",
                                 lambda: model.embed_goal(pixels[:, 0]))  # fmt: skip

    if model.has_reward:
        reward = _call_declared(model, "has_reward", "reward", lambda: model.reward(imag))
        _expect_shape("reward(imagine(...))", reward, [batch, horizon, 1])
    else:
        _expect_capability_error(model, "has_reward", lambda: model.reward(imag))
    if model.has_decoder:
        decoded = _call_declared(model, "has_decoder", "decode", lambda: model.decode(imag))
        _expect_shape("decode(imagine(...))", decoded, [batch, horizon, c, h, w])
    else:
        _expect_capability_error(model, "has_decoder", lambda: model.decode(imag))
    _check_continuation(model, imag)

    batch_td = TensorDict(
        {
            **dict(obs.items()),
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
    assert isinstance(out, LossOutput), f"loss() must return LossOutput, got {type(out).__name__}"
    _expect_shape("loss().loss", out.loss, [])
    assert torch.isfinite(out.loss), f"loss().loss must be finite, got {out.loss.item()}"
    _expect_batch("loss().posterior", out.posterior, [batch, length])
    for k, v in out.metrics.items(include_nested=True, leaves_only=True):
        assert v.dim() == 0 and not v.requires_grad, (
            f"metric {k} must be a detached scalar, got shape {list(v.shape)} (requires_grad={v.requires_grad})"
        )
    _check_embedding(model, pixels, out)
