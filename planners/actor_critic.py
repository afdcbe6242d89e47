"""Imagination actor-critic (DreamerV2, Hafner et al. 2021, section 2.2 and ``agent.py::ActorCritic``).

From every start state (posteriors of a replay batch) the actor imagines ``H`` steps through the
frozen world model; the start state is prepended, giving ``H + 1`` states ``s_0 .. s_H``::

    rewards    r_t = reward.per_step(s_t)                  (an Objective; default: the model's reward head)
    discounts  d_t = gamma * continuation(s_t)             (has_continuation; else gamma alone)
    values     v_t = v_slow(s_t)                           (the slow TARGET critic)
    targets    R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}),  R_H = v_H,  t = 0..H-1
    weights    w_t = prod_{k<t} d_k                        (w_0 = 1; stop-gradient)

    critic:  L_v  = mean_t w_t * 0.5 (v(s_t) - sg(R_t))^2                      t = 0..H-1
    actor:   L_pi = -mean_t w_t * (obj_t + eta * H[pi(.|s_t)])                   t = 0..H-2
             obj_t = R_{t+1}                               (dynamics backprop, continuous actions)
                   = log pi(a_t|s_t) * sg(R_{t+1} - v_slow(s_t))   (REINFORCE)
                   = mix * dynamics + (1 - mix) * REINFORCE  (both; DreamerV2 actor_grad_mix 0.1)

exactly as the released code indexes them (``target[1:]`` with ``feat[:-2]``; the last state only
bootstraps and its action leads nowhere). Rewards are DreamerV2's ``reward[:-1]``: r_t of the state
s_t itself. The critic's loss is the negative log-likelihood of ``Normal(v, 1)`` (DreamerV2 ``dist:
mse``) without its constant. DreamerV2's reward normalisation (``reward_norm`` with momentum 1 and
scale 1) is the identity and is omitted. World-model parameters are frozen (``requires_grad`` off) while the
loss is built, so the losses give them no gradient, yet dynamics gradients flow *through* the
model's computations into the actor; the reward objective's networks (an ``nn.Module`` objective's,
e.g. LEXA's ensemble) are frozen the same way.

The actor-critic is a :class:`worldmodels.core.interface.Behaviour`: :meth:`update` trains it once
per world-model update from ``LossOutput.posterior``; :meth:`policy` is its actor for acting.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from typing import Iterator, NamedTuple

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from planners.action_distributions import TanhNormal, TruncatedNormal
from planners.objectives import Objective, RewardObjective
from planners.returns import cumulative_discount, lambda_returns
from worldmodels.core import keys
from worldmodels.core.interface import LossOutput, Policy, WorldModel
from worldmodels.core.config import ActorCriticConfig
from worldmodels.models.networks import MLP

class Imagination(NamedTuple):
    """What :meth:`ImaginationActorCritic.imagine` returns."""

    states: TensorDict
    """``[N, H+1]`` states s_0..s_H (start prepended) with ``ACTION`` (zeros on the last row)"""
    actor_out: Tensor
    """``[N, H, 2A]`` raw actor outputs at s_0..s_{H-1} (with gradient to the actor)"""


@contextlib.contextmanager
def frozen(*modules: object) -> Iterator[None]:
    """Turn ``requires_grad`` off for the parameters of the given modules (non-modules are skipped)
    for the duration of the block, then restore it. Gradients still flow *through* their
    computations to other inputs."""
    params = [p for m in modules if isinstance(m, nn.Module) for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class ImaginationActorCritic(nn.Module):
    """Actor, critic and slow target critic trained in the imagination of a frozen world model.

    Args:
        model: any :class:`WorldModel`; it is *referenced*, not registered as a submodule (its
            parameters are not in ``self.parameters()`` or ``self.state_dict()``). When the model
            declares ``has_continuation``, discounts are ``gamma * model.continuation(states)``;
            otherwise the constant gamma.
        config: :class:`ActorCriticConfig` (DreamerV2 dmc_vision defaults).
        reward: the reward :class:`planners.objectives.Objective`, ``reward.per_step(model, states
            [N, H+1]) -> [N, H+1]``; default ``RewardObjective(model)`` (which refuses a model without
            ``has_reward``). A goal passed to :meth:`loss` / :meth:`train_step` is handed to a
            goal-conditioned reward with ``reward.set_goal(goal [N, G])`` first. Stored as
            ``reward_fn``, the name under which an ``nn.Module`` reward's networks are checkpointed.
        goal_dim: size of a goal vector concatenated to the actor's and critic's inputs
            (goal-conditioned behaviour, e.g. LEXA's achiever); 0 = unconditioned.

    Raises:
        CapabilityError: no ``reward`` is given and the model has no reward head.

    Example:
        >>> ac = ImaginationActorCritic(model, ActorCriticConfig())
        >>> out = model.loss(batch)                              # world-model update first
        >>> metrics = ac.update(out)                             # owned optimisers, target copy
        >>> agent = PolicyAgent(model, ac.policy(sample=True))   # acting
    """

    def __init__(
        self, model: WorldModel, config: ActorCriticConfig, reward: Objective | None = None, goal_dim: int = 0
    ):
        super().__init__()
        reward = RewardObjective(model) if reward is None else reward
        if not isinstance(reward, Objective):
            raise TypeError(
                "reward must be a planners.objectives.Objective (per_step(model, imagined [N, H]) -> [N, H]), "
                f"got {type(reward).__name__}."
            )
        if config.horizon < 2:
            raise ValueError(f"actor_critic.horizon must be >= 2, got {config.horizon}.")
        self.__dict__["model"] = model  # a reference, deliberately not a submodule
        self.config = config
        self.reward_fn = reward
        self.goal_dim = goal_dim
        self.action_dim = model.action_dim
        in_dim = model.feature_dim + goal_dim
        self.actor = MLP(in_dim, 2 * model.action_dim, config.units, config.layers, "elu")
        self.critic = MLP(in_dim, 1, config.units, config.layers, "elu")
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        # Owned optimisers, used by train_step() when none are passed; saved in state_dict (extra state).
        self.actor_opt, self.critic_opt = self.optimizers()

    # ------------------------------------------------------------------ policy
    def distribution(self, inputs: Tensor) -> TruncatedNormal | TanhNormal:
        """Action distribution from actor inputs (features, with the goal appended if any).

        Shapes: inputs ``[..., F (+G)]`` -> distribution over ``[..., A]``.
        """
        return self._distribution(self.actor(inputs))

    def _distribution(self, actor_out: Tensor) -> TruncatedNormal | TanhNormal:
        """Distribution from the actor's raw output ``[..., 2A]`` (DreamerV2 ``nets.py::DistLayer``)."""
        mean, std = actor_out.chunk(2, dim=-1)
        min_std = self.config.actor_min_std
        if self.config.actor_dist == "trunc_normal":
            return TruncatedNormal(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + min_std)
        return TanhNormal(5 * torch.tanh(mean / 5), nn.functional.softplus(std) + min_std)

    def _inputs(self, features: Tensor, goal: Tensor | None) -> Tensor:
        if self.goal_dim == 0:
            if goal is not None:
                raise ValueError("this actor-critic was built with goal_dim=0; pass no goal or build it with goal_dim.")
            return features
        if goal is None or goal.shape[-1] != self.goal_dim:
            got = None if goal is None else list(goal.shape)
            raise ValueError(f"a goal of shape [..., {self.goal_dim}] is required (goal_dim={self.goal_dim}), got {got}.")
        goal = goal.to(features)
        while goal.dim() < features.dim():  # [N, G] -> [N, 1, G] for [N, H+1, F] features
            goal = goal.unsqueeze(-2)
        goal = goal.expand(*features.shape[:-1], self.goal_dim)
        return torch.cat([features, goal], dim=-1)

    def act(self, features: Tensor, sample: bool = False, goal: Tensor | None = None) -> Tensor:
        """Action for acting (no gradient): a sample (plus ``exploration_noise``) or the mode.

        Shapes: features ``[B, F]`` (goal ``[B, G]``) -> action ``[B, A]`` in [-1, 1].
        """
        with torch.no_grad():
            dist = self.distribution(self._inputs(features, goal))
            if not sample:
                return dist.mode
            action = dist.rsample()
            if self.config.exploration_noise > 0:
                action = action + self.config.exploration_noise * torch.randn_like(action)
            return action.clamp(-1.0, 1.0)

    def policy(self, sample: bool = False, goal: Tensor | None = None) -> Policy:
        """The actor as a policy ``features [B, F] -> action [B, A]`` for ``PolicyAgent``: samples
        (collection) or the mode (evaluation); a goal-conditioned actor's goal ``[B, G]`` is bound."""
        return functools.partial(self.act, sample=sample, goal=goal)

    # ------------------------------------------------------------------ losses
    def _rewards(self, states: TensorDict, goal: Tensor | None) -> Tensor:
        """``r_t = reward.per_step(s_t)``; the goal ``[N, G]`` is set on a goal-conditioned reward first.

        Shapes: states ``[N, H+1]`` -> ``[N, H+1, 1]``.
        """
        if goal is not None and self.reward_fn.goal_conditioned:
            self.reward_fn.set_goal(goal)
        reward = self.reward_fn.per_step(self.model, states)
        n, h1 = states.batch_size
        if reward.shape != (n, h1):
            name = type(self.reward_fn).__name__
            raise ValueError(f"{name}.per_step must return [N, H+1] = {[n, h1]}, got {list(reward.shape)}.")
        return reward[..., None]

    def _discounts(self, states: TensorDict, is_terminal: Tensor | None) -> Tensor:
        """``d_t = gamma * continuation(s_t)`` with ``has_continuation``, else gamma; the first is
        ``gamma * (1 - is_terminal)`` when given. Shapes: states ``[N, H+1]`` -> ``[N, H+1, 1]``."""
        n, h1 = states.batch_size
        gamma = self.config.discount
        if self.model.has_continuation:
            disc = gamma * self.model.continuation(states)  # [N,H+1,1]
            if is_terminal is not None:  # true first discount from replay (DreamerV2 imagine)
                first = gamma * (1.0 - is_terminal.reshape(n, 1).to(disc))
                disc = torch.cat([first[:, None], disc[:, 1:]], dim=1)
            return disc
        disc = torch.full((n, h1, 1), gamma, device=self.updates.device)
        if is_terminal is not None:
            disc[:, 0] = gamma * (1.0 - is_terminal.reshape(n, 1).float())
        return disc

    def imagine(self, start: TensorDict, goal: Tensor | None = None) -> Imagination:
        """Roll the actor out for ``horizon`` steps through ``model.imagine``.

        Returns:
            :class:`Imagination`: ``states [N, H+1]`` (start prepended) with ``ACTION`` (the action
            *taken at* each state; zeros on the last row) and the actor's raw outputs ``[N, H, 2A]``
            at s_0..s_{H-1} (reused by the actor loss instead of running the actor again).
        """
        policy_inputs = functools.partial(self._inputs, goal=goal)
        outputs = []

        def policy(features: Tensor) -> Tensor:  # DreamerV2 feeds sg(feat) to the actor
            outputs.append(self.actor(policy_inputs(features.detach())))  # [N,2A]
            return self._distribution(outputs[-1]).rsample()

        imagined = self.model.imagine(start, policy, self.config.horizon)  # [N,H]
        actions = imagined[keys.ACTION]  # [N,H,A]: a_h taken at s_h
        states = imagined.exclude(keys.ACTION)
        missing = [k for k in states.keys() if k not in start.keys()]
        if missing:
            raise ValueError(f"start states lack the keys {missing} that model.imagine returns.")
        if len(outputs) != self.config.horizon:
            raise ValueError(f"model.imagine called the policy {len(outputs)} times for horizon {self.config.horizon}.")
        states = torch.cat([start.select(*states.keys())[:, None], states], dim=1)  # [N,H+1]
        states[keys.ACTION] = torch.cat([actions, torch.zeros_like(actions[:, :1])], dim=1)  # [N,H+1,A]
        return Imagination(states, torch.stack(outputs, dim=1))

    def loss(
        self, start: TensorDict, goal: Tensor | None = None, is_terminal: Tensor | None = None
    ) -> tuple[Tensor, TensorDict]:
        """Actor + critic loss from imagined rollouts; see the module docstring for the equations.

        The two terms touch disjoint parameters (the critic sees detached features; the actor's
        objective reaches only actor parameters), so one ``backward`` serves both optimisers.

        Args:
            start: start states, any batch shape (e.g. posteriors ``[B, T]``), flattened to ``[N]``.
            goal: goal vectors ``[N, G]`` or ``[*start.batch_size, G]`` when ``goal_dim > 0``.
            is_terminal: optional ``[*start.batch_size, 1]``: the first discount is then
                ``gamma * (1 - is_terminal)`` (DreamerV2 imagine).

        Returns:
            ``(loss, metrics)``: scalar loss; detached scalar metrics ``loss/actor``,
            ``loss/critic``, ``actor/entropy``, ``critic/value``, ``critic/target``,
            ``imagine/reward``.

        Shapes:
            internally ``[N, H+1, ...]`` rows; returns targets ``[N, H, 1]``.
        """
        cfg = self.config
        start = start.reshape(-1)
        n = start.batch_size[0]
        if goal is not None:
            goal = goal.reshape(n, -1)
        with frozen(self.model, self.reward_fn):
            states, actor_out = self.imagine(start, goal)  # [N,H+1], [N,H,2A]
            features = self.model.features(states)  # [N,H+1,F]; carries dynamics gradients
            reward = self._rewards(states, goal)  # [N,H+1,1]
            discount = self._discounts(states, is_terminal)  # [N,H+1,1]
        inputs = self._inputs(features, goal)  # [N,H+1,F(+G)]
        weight = cumulative_discount(discount).detach()  # [N,H+1,1]
        value = self.target_critic(inputs)  # [N,H+1,1]; params frozen, gradient flows to inputs
        target = lambda_returns(reward[:, :-1], value[:, :-1], discount[:, :-1], value[:, -1], cfg.lambda_)  # [N,H,1]

        # Actor over s_0..s_{H-2}: its action a_t reaches R_{t+1}.
        dist = self._distribution(actor_out[:, :-1])  # = actor(sg(inputs[:, :-2]))
        if cfg.actor_grad == "dynamics":
            objective = target[:, 1:]  # [N,H-1,1]
        else:
            advantage = (target[:, 1:] - value[:, :-2]).detach()  # baseline: slow critic
            log_prob = dist.log_prob(states[keys.ACTION][:, :-2].detach())[..., None]  # [N,H-1,1]
            objective = log_prob * advantage
            if cfg.actor_grad == "both":
                objective = cfg.actor_grad_mix * target[:, 1:] + (1 - cfg.actor_grad_mix) * objective
        entropy = dist.entropy()[..., None]  # [N,H-1,1]
        actor_loss = -(weight[:, :-2] * (objective + cfg.actor_entropy * entropy)).mean()

        # Critic over s_0..s_{H-1}, regressed onto sg(lambda-returns).
        critic_value = self.critic(inputs[:, :-1].detach())  # [N,H,1]
        critic_loss = (weight[:, :-1] * 0.5 * (critic_value - target.detach()) ** 2).mean()

        metrics = TensorDict(
            {
                "loss/actor": actor_loss.detach(),
                "loss/critic": critic_loss.detach(),
                "actor/entropy": entropy.detach().mean(),
                "critic/value": critic_value.detach().mean(),
                "critic/target": target.detach().mean(),
                "imagine/reward": reward.detach().mean(),
            },
            batch_size=[],
        )
        return actor_loss + critic_loss, metrics

    # ------------------------------------------------------------------ optimisation
    def actor_parameters(self) -> list[nn.Parameter]:
        return list(self.actor.parameters())

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """``(actor_opt, critic_opt)``: Adam with DreamerV2's decoupled weight decay.

        DreamerV2 multiplies weights by ``(1 - wd)`` per update; AdamW multiplies by ``(1 - lr *
        weight_decay)``, so ``weight_decay = wd / lr`` reproduces it.
        """
        cfg = self.config
        actor = torch.optim.AdamW(
            self.actor_parameters(), cfg.actor_lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay / cfg.actor_lr
        )
        critic = torch.optim.AdamW(
            self.critic_parameters(), cfg.critic_lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay / cfg.critic_lr
        )
        return actor, critic

    @torch.no_grad()
    def update_target(self) -> None:
        """Count one update; hard-copy critic -> target on updates 0, N, 2N, ... (DreamerV2
        slow_target_update 100, slow_target_fraction 1). Call once after every optimiser step."""
        if int(self.updates) % self.config.target_update_every == 0:
            for src, dst in zip(self.critic.parameters(), self.target_critic.parameters()):
                dst.copy_(src)
        self.updates += 1

    def get_extra_state(self) -> dict:
        """The owned optimisers' states, so ``state_dict()`` checkpoints them with the networks."""
        return {"actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])

    def update(self, out: LossOutput) -> TensorDict:
        """The :class:`~worldmodels.core.interface.Behaviour` step: :meth:`train_step` from the
        posteriors ``out.posterior [B, T]`` of a world-model update, flattened to ``[B*T]`` starts."""
        return self.train_step(out.posterior.reshape(-1))

    def train_step(
        self,
        start: TensorDict,
        goal: Tensor | None = None,
        is_terminal: Tensor | None = None,
        actor_opt: torch.optim.Optimizer | None = None,
        critic_opt: torch.optim.Optimizer | None = None,
    ) -> TensorDict:
        """One training step from start states: loss, backward, clip each optimiser's gradients to
        ``grad_clip``, step both, :meth:`update_target`. ``start``, ``goal`` and ``is_terminal`` as in
        :meth:`loss`. Without optimisers the owned ones (``self.actor_opt``, ``self.critic_opt``,
        checkpointed in ``state_dict()``) are used. Returns the metrics plus ``grad_norm/actor`` and
        ``grad_norm/critic`` (before clipping)."""
        actor_opt = self.actor_opt if actor_opt is None else actor_opt
        critic_opt = self.critic_opt if critic_opt is None else critic_opt
        actor_opt.zero_grad(set_to_none=True)
        critic_opt.zero_grad(set_to_none=True)
        loss, metrics = self.loss(start, goal=goal, is_terminal=is_terminal)
        loss.backward()
        clip = self.config.grad_clip
        metrics["grad_norm/actor"] = nn.utils.clip_grad_norm_(self.actor_parameters(), clip).detach()
        metrics["grad_norm/critic"] = nn.utils.clip_grad_norm_(self.critic_parameters(), clip).detach()
        actor_opt.step()
        critic_opt.step()
        self.update_target()
        return metrics
