"""Objectives: score imagined trajectories; planners maximise them, actor-critics use them as rewards.

Every objective is an :class:`Objective` with one calling convention, where ``imagined`` is the
``[N, H]`` TensorDict returned by ``model.imagine`` (row h = the state *after* action h) or the
actor-critic's ``[N, H+1]`` rollout (start prepended):

* ``per_step(model, imagined) -> Tensor[N, H]`` -- the per-step score; an imagination actor-critic's
  reward (LEXA's explorer and achiever are actor-critics with :class:`DisagreementObjective` and
  :class:`TemporalDistanceObjective` / :class:`EmbeddingCosineObjective` as rewards).
* ``objective(model, imagined) -> Tensor[N]`` -- the sum of ``per_step`` over the objective's selected
  steps (higher is better); what planners maximise.
* ``goal_conditioned`` (declared) -- goal objectives hold their goal, set with ``set_goal(goal [B, G])``.

Goal rows: an objective holding B goals scores ``N = B * K`` rows, rows ``b*K .. b*K+K-1``
belonging to goal ``b`` (``repeat_interleave``; :func:`goal_rows`). That covers planner populations
(B states, K candidates each, row-major flatten of ``[B, K]``) and actor-critic starts flattened
from ``[B, T]`` with one goal per start (K = 1).

Objectives that hold networks (the disagreement ensemble, the temporal distance) are ``nn.Module`` s,
so the actor-critic's ``frozen`` block freezes them while the actor loss is built, and their
networks appear in the state_dict of the actor-critic that uses them.
"""

from __future__ import annotations

import abc
from typing import Literal, Sequence

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, WorldModel

Metric = Literal["cosine", "l2"]
Steps = Literal["final", "last_k", "all"]


class Objective(abc.ABC):
    """Scores imagined states, higher is better: ``per_step`` ``[N, H] -> [N, H]``, call ``-> [N]``.

    Subclasses implement :meth:`per_step`; ``__call__`` sums it over every step unless the subclass
    selects steps (goal objectives) or discounts them (:class:`RewardObjective`).
    """

    goal_conditioned: bool = False
    """True for objectives scored toward a goal they hold (``set_goal``)."""

    @abc.abstractmethod
    def per_step(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Per-step score. Shapes: imagined [N, H] -> [N, H]."""

    def __call__(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Shapes: imagined [N, H] -> [N]."""
        return self.per_step(model, imagined).sum(-1)

    def set_goal(self, goal: Tensor) -> None:
        """Goal objectives only; this objective takes no goal."""
        raise ValueError(f"{type(self).__name__} is not goal-conditioned (goal_conditioned=False); it takes no goal.")


def goal_rows(goal: Tensor, rows: int) -> Tensor:
    """The goal of every imagined row: goals ``[B, G]`` -> ``[N, G]``, row n gets goal ``n // (N / B)``.

    Raises:
        ValueError: N is not a multiple of B.
    """
    b = goal.shape[0]
    if rows % b != 0:
        raise ValueError(f"{rows} imagined rows cannot be split among {b} goals; rows must be a multiple of B.")
    return goal.repeat_interleave(rows // b, dim=0) if rows != b else goal


def select_steps(imagined: TensorDict, steps: Steps, k: int) -> TensorDict:
    """The scored steps of ``imagined [N, H]``: the final one, the last ``k`` or all of them."""
    if steps == "final":
        return imagined[:, -1:]
    if steps == "last_k":
        return imagined[:, -k:]
    return imagined


class GoalObjective(Objective):
    """An objective toward goals it holds: ``set_goal(goal [B, G])`` (or ``[G]`` for one goal), then
    every imagined row is scored toward its goal (:func:`goal_rows`); the score sums ``per_step`` over
    the ``final`` step (h = H-1), the ``last_k`` steps or ``all``.

    Args:
        goal_dim: G, the size of one goal.
        steps: ``"final"``, ``"last_k"`` or ``"all"``.
        k: number of final steps for ``steps="last_k"`` (PLDM: 3).
    """

    goal_conditioned = True

    def __init__(self, goal_dim: int, steps: Steps = "final", k: int = 3):
        super().__init__()
        if steps not in ("final", "last_k", "all"):
            raise ValueError(f"steps must be 'final', 'last_k' or 'all', got {steps!r}.")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        self.goal_dim, self.steps, self.k = goal_dim, steps, k
        self.goal: Tensor | None = None

    def checked_goal(self, goal: Tensor) -> Tensor:
        """``goal`` as ``[B, G]`` (``[G]`` becomes B = 1), detached; ValueError naming the shapes otherwise."""
        if goal.dim() == 1:
            goal = goal[None]
        if goal.dim() != 2 or goal.shape[-1] != self.goal_dim:
            raise ValueError(
                f"{type(self).__name__}'s goal must have shape [B, {self.goal_dim}], got {list(goal.shape)}."
            )
        return goal.detach()

    def set_goal(self, goal: Tensor) -> None:
        """Set the goals. Shapes: [B, G] (or [G], treated as B = 1)."""
        self.goal = self.checked_goal(goal)

    def keep(self, rows: Tensor) -> None:
        """Keep only the goals of batch entries ``rows`` (bool mask ``[B]`` or indices). Shapes: [B,G] -> [B',G]."""
        if self.goal is not None and self.goal.shape[0] > 1:
            self.goal = self.goal[rows.to(self.goal.device)]

    def goal_for(self, rows: int) -> Tensor:
        """The goal of each of ``rows`` imagined rows, ``[N, G]``."""
        if self.goal is None:
            raise ValueError(f"{type(self).__name__} has no goal; call set_goal(goal) first.")
        return goal_rows(self.goal, rows)

    def __call__(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Shapes: imagined [N,H] -> [N]."""
        return self.per_step(model, select_steps(imagined, self.steps, self.k)).sum(-1)


class RewardObjective(Objective):
    """Sum of predicted rewards over the horizon (PlaNet's CEM objective, Hafner et al. 2019).

    J = sum_{h=0}^{H-1} gamma^h * r(s_{h+1}), with r the reward head's mean (PlaNet: gamma = 1).

    Args:
        model: a world model with ``has_reward``; refused at construction otherwise.
        discount: gamma applied per imagined step (PlaNet: 1.0).
        chunk_rows: evaluate the reward head on at most this many ``N*H`` rows at a time.
            ``None`` = 1024 rows on CPU (the head's activations then stay in cache) and all
            rows at once on GPUs.

    Raises:
        CapabilityError: the model declares no reward head.

    Example:
        >>> objective = RewardObjective(planet)
        >>> planner = CEMPlanner(planet, objective, CEMConfig())
    """

    def __init__(self, model: WorldModel, discount: float = 1.0, chunk_rows: int | None = None):
        if not model.has_reward:
            raise CapabilityError(
                f"{type(model).__name__} has no reward head (has_reward=False); use another Objective "
                "(e.g. GoalDistanceObjective) or a model trained with rewards."
            )
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}.")
        if chunk_rows is not None and chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1 or None, got {chunk_rows}.")
        self.discount = discount
        self.chunk_rows = chunk_rows

    def per_step(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Predicted reward per imagined step. Shapes: imagined [N,H] -> [N,H]."""
        chunk = self.chunk_rows
        if chunk is None:
            chunk = 1024 if imagined[keys.ACTION].device.type == "cpu" else imagined.numel()
        if imagined.numel() <= chunk:
            return model.reward(imagined)[..., 0]
        flat = imagined.reshape(-1)  # [N*H]
        rewards = torch.cat([model.reward(part)[..., 0] for part in flat.split(chunk)])  # [N*H]
        return rewards.reshape(imagined.batch_size)

    def __call__(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Shapes: imagined [N,H] -> [N]."""
        rewards = self.per_step(model, imagined)  # [N,H]
        if self.discount == 1.0:
            return rewards.sum(-1)
        weights = self.discount ** torch.arange(rewards.shape[-1], device=rewards.device, dtype=rewards.dtype)
        return (rewards * weights).sum(-1)


Features = Literal["sample", "mean"]
Part = Literal["full", "stoch"]


def goal_image_features(model: WorldModel, pixels: Tensor, sample: bool = True, hold: int = 1) -> Tensor:
    """A goal image's features ``[N,C,H,W] -> [N,F]``: for models with an encoder embedding (the RSSMs)
    the posterior from the initial state, a sample (what ``embed_goal`` returns) or its mean / mode
    (``sample=False``, LEXA ``get_init_feat_embed``), after ``hold`` filtering steps of the image held
    still (``features_from_embed``); ``embed_goal`` (deterministic) for the others, where ``hold`` must be 1.

    Raises:
        ValueError: ``hold`` > 1 for a model without an encoder embedding (nothing to filter).
    """
    if model.has_embedding:
        return model.features_from_embed(model.embed(pixels), sample=sample, hold=hold)
    if hold != 1:
        raise ValueError(f"goal hold {hold} needs a model with an encoder embedding (RSSM); {type(model).__name__} has none.")
    return model.embed_goal(pixels)


def stoch_dims(model: WorldModel) -> int:
    """S, the size of the stochastic part: the last S dims of ``cat(deter, stoch)`` features.

    Raises:
        CapabilityError: the model's state has no ``keys.STOCH`` part.
    """
    state = model.initial_state(1)
    if keys.STOCH not in state.keys():
        raise CapabilityError(f"{type(model).__name__}'s state has no {keys.STOCH!r} part to compare.")
    return state[keys.STOCH][0].numel()


class GoalDistanceObjective(GoalObjective):
    """Closeness of imagined features to a goal's features (LEXA achiever; PLDM planning objective).

    Per step h: ``cosine`` = cos(f_h, g) (LEXA, Mendonca et al. 2021: latent cosine similarity);
    ``l2`` = -mean_d (f_h[d] - g[d])^2 (PLDM, Sobal et al. 2025: squared latent distance).
    The score sums the per-step values over the selected steps: ``final`` (h = H-1), ``last_k``
    (the last ``k``) or ``all``. PLDM's objective, -sum_{t in last 3} mean_d (z_t - Enc(o_goal))^2
    (methods.md 3.5), is ``GoalDistanceObjective(model, metric="l2", steps="last_k", k=3)``.

    For RSSM models two choices change what is compared. ``features="mean"`` compares the imagined
    states' mean / mode features (``model.mean_features``) with the goal image's posterior mean
    instead of samples of both: a goal sample's noise can exceed the spread between frames
    (``benchmarks/goal_latent_probe.py``). ``part="stoch"`` compares only the stochastic part: a goal
    image's ``deter`` is one GRU step from the zero state, the same for every goal, while an imagined
    state's ``deter`` carries its history, so the full distance also measures how far that history
    is from an empty one.

    Args:
        model: any world model; its ``embed_goal`` maps goal pixels to features.
        goal_features: optional initial goal ``[B, F]`` (or ``[F]`` for one goal).
        metric: ``"cosine"`` or ``"l2"``.
        steps: ``"final"``, ``"last_k"`` or ``"all"``.
        k: number of final steps for ``steps="last_k"`` (PLDM: 3).
        features: ``"sample"`` or ``"mean"`` (used by :meth:`set_goal_pixels` and on imagined states).
        part: ``"full"`` or ``"stoch"`` (the last S feature dims; models with a ``keys.STOCH`` state).
        goal_hold: filtering steps of the goal image held still with zero actions before its features
            are read (:meth:`set_goal_pixels`; 1 = from the initial state, LEXA). With K > 1 the goal's
            ``deter`` is the goal's own, at rest, instead of the same vector for every goal.

    Raises:
        CapabilityError: ``part="stoch"`` for a model without a stochastic state.
        ValueError: ``goal_hold`` < 1.

    Example:
        >>> objective = GoalDistanceObjective(model, metric="l2", steps="last_k", k=3)
        >>> objective.set_goal_pixels(goal_pixels)          # uint8 [B,C,H,W]
        >>> actions = MPPIPlanner(model, objective, MPPIConfig()).plan(state)   # state [B]
    """

    def __init__(
        self,
        model: WorldModel,
        goal_features: Tensor | None = None,
        metric: Metric = "cosine",
        steps: Steps = "final",
        k: int = 3,
        features: Features = "sample",
        part: Part = "full",
        goal_hold: int = 1,
    ):
        super().__init__(model.feature_dim, steps, k)
        if goal_hold < 1:
            raise ValueError(f"goal_hold must be >= 1 filtering steps, got {goal_hold}.")
        self.goal_hold = goal_hold
        if metric not in ("cosine", "l2"):
            raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}.")
        if features not in ("sample", "mean"):
            raise ValueError(f"features must be 'sample' or 'mean', got {features!r}.")
        if part not in ("full", "stoch"):
            raise ValueError(f"part must be 'full' or 'stoch', got {part!r}.")
        self.model = model
        self.metric, self.features, self.part = metric, features, part
        self.compared = stoch_dims(model) if part == "stoch" else model.feature_dim
        if goal_features is not None:
            self.set_goal(goal_features)

    @torch.no_grad()
    def set_goal_pixels(self, pixels: Tensor) -> None:
        """Set the goal from goal images (:func:`goal_image_features`). Shapes: uint8 [B,C,H,W]."""
        self.set_goal(goal_image_features(self.model, pixels.to(self.model.device), self.features == "sample",
                                          self.goal_hold))  # fmt: skip

    def per_step(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Per-step goal score (higher = closer). Shapes: imagined [N,H] -> [N,H]."""
        feats = model.mean_features(imagined) if self.features == "mean" else model.features(imagined)  # [N,H,F]
        feats = feats[..., -self.compared :]
        goal = self.goal_for(feats.shape[0]).to(feats)[:, None, -self.compared :]  # [N,1,F']
        if self.metric == "cosine":
            return torch.nn.functional.cosine_similarity(feats, goal, dim=-1, eps=1e-8)
        return -((feats - goal) ** 2).mean(-1)


class EmbeddingCosineObjective(GoalDistanceObjective):
    """LEXA ``lexa_cosine`` toward goals given as encoder embeddings: ``r_t = cos(feat_t, feat_g)``.

    ``set_goal(e_g [B, E])`` maps the embeddings to goal features ``feat_g = model.features_from_embed(e_g)``
    (LEXA ``get_init_feat_embed``: the posterior of the goal image from the initial state, its *mean* by
    default as in LEXA, ``sample=False``), so the achiever's goal input stays the embedding (LEXA
    ``gc_input: embed``) for both achiever rewards; then it scores as ``GoalDistanceObjective(metric="cosine")``
    (torch's eps 1e-8 clamps each norm where LEXA adds 1e-8 to their product).

    The goal's ``deter`` is one GRU step from the zero state with a zero action, the same vector for every
    goal (100 of 120 feature dims in the CPU configs, 200 of 250 in LEXA's), so it pulls every cosine
    toward the same value; ``part="stoch"`` compares only the stochastic part (the last S feature dims,
    features being ``cat(deter, stoch)``).

    Args:
        model: a world model with ``has_embedding``; refused at construction otherwise.
        steps, k: as :class:`GoalDistanceObjective`.
        sample_goal: goal features from a posterior sample (True) or its mean (False, LEXA).
        part: ``"full"`` (LEXA) or ``"stoch"``.
        goal_hold: filtering steps of the goal embedding held still (1 = LEXA; ``features_from_embed``).

    Raises:
        CapabilityError: the model declares no embedding (or, for ``part="stoch"``, no ``keys.STOCH`` state).

    Example:
        >>> achiever = ImaginationActorCritic(model, cfg, reward=EmbeddingCosineObjective(model), goal_dim=model.embed_dim)
    """

    def __init__(
        self,
        model: WorldModel,
        steps: Steps = "final",
        k: int = 3,
        sample_goal: bool = False,
        part: Part = "full",
        goal_hold: int = 1,
    ):
        if not model.has_embedding:
            raise CapabilityError(
                f"{type(model).__name__} has no image embedding (has_embedding=False); "
                "EmbeddingCosineObjective needs goals as encoder embeddings."
            )
        super().__init__(model, metric="cosine", steps=steps, k=k, part=part, goal_hold=goal_hold)
        self.goal_dim = model.embed_dim
        self.sample_goal = sample_goal

    @torch.no_grad()
    def set_goal(self, goal: Tensor) -> None:
        """Set the goals from encoder embeddings. Shapes: [B, E] (or [E]); stored as features [B, F]."""
        embed = self.checked_goal(goal).to(self.model.device)
        self.goal = self.model.features_from_embed(embed, sample=self.sample_goal, hold=self.goal_hold)

    @torch.no_grad()
    def set_goal_pixels(self, pixels: Tensor) -> None:
        """Set the goal from goal images via ``model.embed``. Shapes: uint8 [B,C,H,W]."""
        self.set_goal(self.model.embed(pixels.to(self.model.device)))


class DisagreementObjective(Objective, nn.Module):
    """Intrinsic reward of an ensemble's disagreement (Plan2Explore; LEXA's explorer reward).

    ``r_t = scale * log(mean_d std_k f_k(feat_t)[d] + eps)`` (LEXA ``disag_log`` True,
    ``expl_intr_scale`` 1), or ``scale * mean_d std_k f_k(feat_t)[d]`` without the log (DreamerV2).

    Args:
        ensemble: a :class:`planners.lexa_networks.DisagreementEnsemble`; action-conditioned ones
            (``action_dim > 0``) read ``imagined[keys.ACTION]``.
        log: take the log (LEXA ``disag_log`` True; DreamerV2 False).
        scale: ``expl_intr_scale`` (LEXA: 1).

    Example:
        >>> explorer = ImaginationActorCritic(model, cfg.actor_critic, reward=DisagreementObjective(ensemble))
    """

    def __init__(self, ensemble: nn.Module, log: bool = True, scale: float = 1.0):
        super().__init__()
        self.ensemble, self.log, self.scale = ensemble, log, scale

    def per_step(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Shapes: imagined [N, H] -> [N, H]."""
        action = imagined[keys.ACTION] if self.ensemble.action_dim > 0 else None
        reward = self.ensemble.intrinsic_reward(model.features(imagined), action, log=self.log, scale=self.scale)
        return reward[..., 0]


class TemporalDistanceObjective(GoalObjective, nn.Module):
    """LEXA ``lexa_temporal``: ``r_t = -D(e_hat(feat_t), e_g)``, a learned temporal distance to a goal embedding.

    Goals are encoder embeddings e_g ``[B, E]`` (``set_goal``); ``e_hat`` is the distance network's
    embedding head (``gcdreamer_imag.py::_gc_reward``).

    Args:
        temporal: a :class:`planners.lexa_networks.TemporalDistance` (``embed_dim`` E and
            ``reward(features [..., F], goal_embed [..., E]) -> [..., 1]``).
        steps, k: as :class:`GoalDistanceObjective`.

    Example:
        >>> achiever = ImaginationActorCritic(model, cfg, reward=TemporalDistanceObjective(td), goal_dim=td.embed_dim)
    """

    def __init__(self, temporal: nn.Module, steps: Steps = "final", k: int = 3):
        super().__init__(temporal.embed_dim, steps, k)
        self.temporal = temporal

    def per_step(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Shapes: imagined [N, H] -> [N, H] (about -1 .. 0: D regresses onto steps / L, 1 for negatives)."""
        features = model.features(imagined)  # [N,H,F]
        goal = self.goal_for(features.shape[0]).to(features)[:, None]  # [N,1,E]
        return self.temporal.reward(features, goal)[..., 0]


class SumObjective(Objective):
    """Weighted sum of objectives, e.g. task reward plus an exploration bonus.

    Goal-conditioned when any term is; ``set_goal`` then sets the goal of every goal-conditioned term.

    Args:
        terms: ``[(weight, objective), ...]``.

    Example:
        >>> SumObjective([(1.0, RewardObjective(m)), (0.1, GoalDistanceObjective(m, g))])
    """

    def __init__(self, terms: Sequence[tuple[float, Objective]]):
        if not terms:
            raise ValueError("SumObjective needs at least one (weight, objective) pair.")
        for term in terms:
            if len(term) != 2 or not isinstance(term[1], Objective):
                raise ValueError(f"SumObjective terms must be (weight, Objective) pairs, got {term!r}.")
        self.terms = [(float(w), obj) for w, obj in terms]
        self.goal_conditioned = any(obj.goal_conditioned for _, obj in self.terms)

    def set_goal(self, goal: Tensor) -> None:
        """Set ``goal`` on every goal-conditioned term."""
        if not self.goal_conditioned:
            super().set_goal(goal)
        for _, obj in self.terms:
            if obj.goal_conditioned:
                obj.set_goal(goal)

    def per_step(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Weighted per-step scores. Shapes: [N,H] -> [N,H]."""
        return sum(w * obj.per_step(model, imagined) for w, obj in self.terms)

    def __call__(self, model: WorldModel, imagined: TensorDict) -> Tensor:
        """Shapes: imagined [N,H] -> [N]."""
        return sum(w * obj(model, imagined) for w, obj in self.terms)
