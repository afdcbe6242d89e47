"""Acting agents: own the belief state, filter observations with ``model.observe``, choose actions.

Both agents follow one loop per env step (under ``torch.inference_mode``; acting never trains):

    s_t = observe(o_t, prev_action = a_{t-1} (0 where is_first), is_first_t, state = s_{t-1})
    a_t = choose(s_t) + N(0, exploration_noise^2), clipped to [-1, 1]

``PlanningAgent`` chooses with a planner (MPC: first action of the plan), ``PolicyAgent`` with a
policy ``features -> action``. Both are torchrl-compatible policies: ``agent(tensordict)`` reads
the model's ``observation_keys`` (``keys.PIXELS`` and/or ``keys.PROPRIO``; and ``keys.IS_FIRST`` when
the env provides it) and writes ``keys.ACTION``, so
``env.rollout(max_steps, policy=agent)`` and collectors work. Pixels may live on the CPU (env)
while the model is on CUDA: observations are moved to the model's device and actions are returned
on the observation's device.
"""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from worldmodels.core import keys
from worldmodels.core.interface import WorldModel, observation_tensors


class _BeliefAgent:
    """Belief bookkeeping shared by the agents; subclasses implement ``_choose(state[B]) -> [B,A]``."""

    def __init__(self, model: WorldModel, action_dim: int | None = None, exploration_noise: float = 0.0):
        action_dim = model.action_dim if action_dim is None else action_dim
        if action_dim != model.action_dim:
            raise ValueError(f"action_dim {action_dim} does not match the model's action_dim {model.action_dim}.")
        if exploration_noise < 0:
            raise ValueError(f"exploration_noise must be >= 0, got {exploration_noise}.")
        self.model = model
        self.action_dim = action_dim
        self.exploration_noise = exploration_noise
        self.belief: TensorDict | None = None
        self.prev_action: Tensor | None = None

    def reset(self, batch_size: int | None = None) -> None:
        """Forget the belief; the next :meth:`act` starts new episodes (is_first for every entry)."""
        self.belief = None
        self.prev_action = None

    def keep(self, rows: Tensor) -> None:
        """Go on with the batch entries ``rows`` only (bool mask ``[B]`` or indices ``[B']``): their
        beliefs and previous actions are kept, the rest dropped, so ended episodes cost nothing more.
        The next :meth:`act` takes observations ``[B']`` in the same order."""
        if self.belief is not None:
            rows = torch.as_tensor(rows)
            self.belief = self.belief[rows.to(self.belief.device)]
            self.prev_action = self.prev_action[rows.to(self.prev_action.device)]

    def _start_episodes(self, entries: Tensor) -> None:
        """Hook: entries (bool ``[B]``) start new episodes mid-run (is_first with an existing belief)."""

    def _choose(self, state: TensorDict) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def act(self, obs: TensorDictBase) -> Tensor:
        """Filter one observation per batch entry and choose actions.

        Args:
            obs: TensorDict ``[B]`` with the model's ``observation_keys`` (``keys.PIXELS`` uint8
                ``[B,C,H,W]`` and/or ``keys.PROPRIO`` float32 ``[B,P]``) and optionally
                ``keys.IS_FIRST`` bool ``[B,1]`` (entries where it is True start a new episode:
                their belief resets inside ``observe``). Without ``IS_FIRST``, the first call after
                :meth:`reset` counts as is_first for all entries.

        Returns:
            action ``[B, A]`` in [-1, 1] on the device of ``obs``'s observations.
        """
        observed = observation_tensors(self.model, obs)  # {key: [B, ...]} the model reads
        pixels = observed.get(keys.PIXELS)
        if obs.batch_dims != 1 or (pixels is not None and pixels.dim() != 4):
            shape = "" if pixels is None else f" and pixels {list(pixels.shape)}"
            raise ValueError(
                f"act expects a TensorDict with batch [B] and pixels [B,C,H,W], got batch {list(obs.batch_size)}"
                f"{shape}; call the agent itself for unbatched env outputs."
            )
        b = obs.batch_size[0]
        out_device = next(iter(observed.values())).device
        device = self.model.device
        with torch.inference_mode():
            if self.belief is not None and self.belief.batch_size[0] != b:
                raise ValueError(
                    f"the agent's belief holds {self.belief.batch_size[0]} entries but obs has {b}; "
                    f"call reset({b}) first."
                )
            if self.belief is None:
                is_first = torch.ones(b, 1, dtype=torch.bool, device=device)
            else:
                is_first = torch.zeros(b, 1, dtype=torch.bool, device=device)
            if keys.IS_FIRST in obs.keys():
                is_first = is_first | obs[keys.IS_FIRST].to(device).reshape(b, 1).bool()
            if self.belief is not None and bool(is_first.any()):
                self._start_episodes(is_first[:, 0])
            prev = torch.zeros(b, self.action_dim, device=device) if self.prev_action is None else self.prev_action
            prev = prev * (~is_first)  # zeros where is_first (alignment rule, keys.py)
            seq = TensorDict({k: v.to(device)[:, None] for k, v in observed.items()}, batch_size=[b, 1])
            states = self.model.observe(seq, prev[:, None], is_first[:, None], state=self.belief)  # [B,1]
            self.belief = states[:, -1]  # [B]
            action = self._choose(self.belief)  # [B,A]
            if self.exploration_noise > 0:
                action = action + self.exploration_noise * torch.randn_like(action)
            action = action.clamp(-1.0, 1.0)
            self.prev_action = action
        return action.clone().to(out_device)  # a normal (non-inference) tensor for the caller

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        """torchrl policy: read the observations (batched ``[B]`` or unbatched ``[]``), write ``keys.ACTION``."""
        if tensordict.batch_dims == 0:
            action = self.act(tensordict.unsqueeze(0))[0]
        else:
            action = self.act(tensordict)
        tensordict.set(keys.ACTION, action)
        return tensordict


class PlanningAgent(_BeliefAgent):
    """Model-predictive agent: plan from the current belief, execute the first action.

    The agent acts under ``torch.inference_mode``; the sampling planners plan inside it, the
    gradient planner leaves it inside its own ``plan`` (it needs autograd through the model).

    Args:
        model: the world model (observe + whatever the planner uses).
        planner: object with ``reset(batch_size)`` and ``plan(state[B]) -> [B,H,A]`` (CEM, MPPI, iCEM,
            gradient), and ``plan(state, horizon=H)`` when :attr:`horizon` is set.
        action_dim: A; must match ``model.action_dim`` (default: read from the model).
        exploration_noise: std of Gaussian noise on executed actions (PlaNet: 0.3 collecting, 0 eval).

    Attributes:
        horizon: ``None`` (default) plans with the planner's configured horizon; an int makes every
            following plan that long, so a caller can shrink it as an episode proceeds (PLDM:
            ``agent.horizon = min(steps_left, 96)`` before each step).

    Example:
        >>> agent = PlanningAgent(model, CEMPlanner(model, RewardObjective(model), CEMConfig()), model.action_dim, 0.3)
        >>> agent.reset(1)
        >>> rollout = env.rollout(100, policy=agent)
    """

    def __init__(self, model: WorldModel, planner, action_dim: int | None = None, exploration_noise: float = 0.0):
        super().__init__(model, action_dim, exploration_noise)
        self.planner = planner
        self.horizon: int | None = None

    def reset(self, batch_size: int | None = None) -> None:
        super().reset(batch_size)
        self.planner.reset(batch_size)

    def keep(self, rows: Tensor) -> None:
        rows = torch.as_tensor(rows)
        super().keep(rows)
        keep = getattr(self.planner, "keep", None)
        if keep is None:
            raise TypeError(f"{type(self.planner).__name__} has no keep(rows); the agent cannot drop batch entries.")
        keep(rows)

    def _start_episodes(self, entries: Tensor) -> None:
        self.planner.reset(entries.shape[0], entries=entries)  # no stale warm start for new episodes

    def _choose(self, state: TensorDict) -> Tensor:
        if self.horizon is None:
            return self.planner.plan(state)[:, 0]  # [B,A]
        return self.planner.plan(state, horizon=self.horizon)[:, 0]  # [B,A]


class PolicyAgent(_BeliefAgent):
    """Agent acting with a policy on model features (e.g. a DreamerV2 actor).

    Args:
        model: the world model.
        policy: ``features [B,F] -> action [B,A]``, e.g. ``actor.sample`` while collecting or
            ``actor.mode`` for evaluation; a goal-conditioned actor is bound to its goal first
            (``functools.partial``).
        exploration_noise: std of extra Gaussian noise on executed actions (default 0).

    Example:
        >>> agent = PolicyAgent(model, actor.mode)
        >>> agent.reset(4); action = agent.act(obs)   # obs TensorDict [4] -> [4, A]
    """

    def __init__(self, model: WorldModel, policy: Callable[[Tensor], Tensor], exploration_noise: float = 0.0):
        if not callable(policy):
            raise ValueError(f"policy must be a callable features -> action, got {type(policy).__name__}.")
        super().__init__(model, model.action_dim, exploration_noise)
        self.policy = policy

    def _choose(self, state: TensorDict) -> Tensor:
        return self.policy(self.model.features(state))  # [B,A]
