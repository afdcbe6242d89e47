"""LEXA's behaviour learners in one place: explorer, achiever and their reward networks (Mendonca et al. 2021).

One :meth:`LexaBehaviour.update` per world-model update, on the same replay batch (``lexa/dreamer.py``
``train`` + ``gcdreamer_imag.py``; methods.md 2.4 and 3.3)::

    ensemble   f_k(sg feat_t) -> sg stoch_{t+1}, Gaussian NLL                 (Plan2Explore, lr 3e-4)
    explorer   imagination actor-critic, r_t = log(mean_d std_k f_k(feat_t)[d])   (no task reward)
    achiever   imagination actor-critic on [feat_t, e_g], goals e_g = the batch's own encoder
               embeddings shuffled (``training_goals: batch``), reward
                 temporal: r_t = -D(e_hat(feat_t), e_g)       D trained on imagined achiever rollouts
                 cosine:   r_t = cos(feat_t, feat_g),  feat_g = posterior mean of e_g from the initial state
    temporal   embed head e_hat(sg feat) -> sg embed (lr 3e-4); D on pairs of imagined states (lr 8e-5), one
               rollout per replay start; negatives pair rollouts that start in different replay sequences;
               with ``lexa.distance_replay`` also on replay pairs (e_hat of the posterior, real embedding)

The explorer and achiever are :class:`planners.actor_critic.ImaginationActorCritic` instances (not
forks) with objectives as rewards (:class:`planners.objectives.DisagreementObjective`,
:class:`~planners.objectives.TemporalDistanceObjective`, :class:`~planners.objectives.EmbeddingCosineObjective`);
the world model is referenced, never trained here, and its reward head is never read. The behaviour
is a :class:`worldmodels.core.interface.Behaviour`: ``update(out)`` per world-model update, and
``policy(sample)`` is the explorer's.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from planners.actor_critic import ImaginationActorCritic
from planners.lexa_networks import DisagreementEnsemble, TemporalDistance, replay_windows, shuffled_goals
from planners.objectives import (
    DisagreementObjective,
    EmbeddingCosineObjective,
    GoalObjective,
    TemporalDistanceObjective,
)
from worldmodels.core import keys
from worldmodels.core.config import ActorCriticConfig, LexaConfig
from worldmodels.core.interface import CapabilityError, LossOutput, Policy, WorldModel

def stoch_size(model: WorldModel) -> int:
    """S, the flattened size of the stochastic state ``initial_state(1)[keys.STOCH]`` (the ensemble's target).

    Raises:
        CapabilityError: the model's state has no ``keys.STOCH`` entry.
    """
    state = model.initial_state(1)
    if keys.STOCH not in state.keys():
        raise CapabilityError(
            f"{type(model).__name__}'s state has no {keys.STOCH!r} entry for LEXA's disagreement ensemble to predict."
        )
    return state[keys.STOCH][0].numel()


@torch.no_grad()
def distance_rollouts(
    achiever: ImaginationActorCritic, posterior: TensorDict, goals: Tensor, starts: int = 0
) -> tuple[TensorDict, Tensor]:
    """The achiever's imagined rollouts toward ``goals`` from every replay start (``starts`` 0, LEXA) or a
    random subset of ``starts``, cut to their first H states s_0..s_{H-1} (LEXA's ``imag_feat``), and the
    replay sequence each starts in (row ``b*T + t`` of the flattened batch starts in sequence b).

    Shapes: posterior ``[B, T]``, goals ``[B*T, E]`` -> states ``[N, H]``, sequence ids ``[N]``.
    """
    start = posterior.reshape(-1)  # [B*T]
    ids = torch.arange(posterior.shape[0], device=goals.device).repeat_interleave(posterior.shape[1])  # [B*T]
    if 0 < starts < start.shape[0]:
        pick = torch.randperm(start.shape[0], device=goals.device)[:starts]
        start, goals, ids = start[pick], goals[pick], ids[pick]
    return achiever.imagine(start, goals).states[:, :-1], ids


class LexaBehaviour(nn.Module):
    """Explorer + achiever of LEXA on a frozen world model that declares ``has_embedding``.

    Args:
        model: a world model with ``has_embedding`` (goals are encoder embeddings) and a ``keys.STOCH``
            state entry (the ensemble's target), e.g. DreamerV2 / PlaNet; referenced, not registered
            (its parameters are not in this module).
        ac_config: sizes and optimisers of both actor-critics (DreamerV2 / LEXA: 4 x 400, lr 8e-5).
        config: :class:`LexaConfig`.
        model_lr: learning rate of the embedding head (LEXA trains it with the model optimiser, 3e-4).

    Raises:
        CapabilityError: the model declares no embedding, or its state has no stochastic part.

    Shapes:
        ``update(out)`` with ``out.posterior [B, T]`` and ``out.embed [B, T, E]``; goals for acting are
        embeddings ``[1, E]``.
    """

    def __init__(self, model: WorldModel, ac_config: ActorCriticConfig, config: LexaConfig, model_lr: float = 3e-4):
        super().__init__()
        if not model.has_embedding:
            raise CapabilityError(
                f"{type(model).__name__} has no image embedding (has_embedding=False); LEXA's goals are encoder embeddings."
            )
        self.__dict__["model"] = model
        self.config = config
        feat, embed = model.feature_dim, model.embed_dim
        self.ensemble = DisagreementEnsemble.from_config(config, feat, stoch_size(model))
        explorer_reward = DisagreementObjective(self.ensemble, log=config.disag_log, scale=config.intrinsic_scale)
        self.explorer = ImaginationActorCritic(model, ac_config, reward=explorer_reward)
        if config.achiever_reward == "temporal":
            self.temporal = TemporalDistance.from_config(config, feat, embed)
            achiever_reward: GoalObjective = TemporalDistanceObjective(self.temporal)
        else:
            self.temporal = None
            achiever_reward = EmbeddingCosineObjective(
                model, sample_goal=config.goal_features == "sample", part=config.cosine_part,
                goal_hold=config.goal_hold,
            )
        self.achiever = ImaginationActorCritic(model, ac_config, reward=achiever_reward, goal_dim=embed)
        self.ensemble_opt = torch.optim.Adam(self.ensemble.parameters(), config.ensemble_lr, eps=ac_config.adam_eps)
        self.temporal_opt = None
        if self.temporal is not None:
            self.temporal_opt = torch.optim.Adam(
                [
                    {"params": self.temporal.embed_head.parameters(), "lr": model_lr},
                    {"params": self.temporal.distance_net.parameters(), "lr": config.distance_lr},
                ],
                eps=ac_config.adam_eps,
            )
        self.grad_clip = ac_config.grad_clip
        self.horizon = ac_config.horizon
        self.window = config.distance_window or self.horizon  # steps a distance label of 1 stands for

    # ------------------------------------------------------------------ training
    def _step(self, optimizer: torch.optim.Optimizer, loss: Tensor, params, clip: float = 100.0) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        return norm.detach()

    def update(self, out: LossOutput) -> TensorDict:
        """One LEXA behaviour update on a world-model update's output (a replay batch's posteriors and
        encoder embeddings).

        Args:
            out: the world model's :class:`LossOutput`; reads ``out.posterior`` (detached posterior
                states ``[B, T]``) and ``out.embed`` (detached encoder embeddings ``[B, T, E]``).

        Returns:
            detached scalar metrics, prefixed ``explorer/``, ``achiever/``, ``ensemble/``, ``temporal/``.

        Raises:
            ValueError: ``out.embed`` is None (the model must declare ``has_embedding`` and fill it).
        """
        model, posterior, embed = self.model, out.posterior, out.embed
        if embed is None:
            raise ValueError(
                "LexaBehaviour.update needs LossOutput.embed, the batch's encoder embeddings [B, T, E]; "
                f"{type(model).__name__}.loss returned None (the model must declare has_embedding and fill it)."
            )
        if posterior.batch_dims != 2 or embed.shape[:2] != posterior.batch_size:
            raise ValueError(
                f"posterior must be [B, T] and embed [B, T, E]; got {list(posterior.batch_size)} and {list(embed.shape)}."
            )
        metrics: dict[str, Tensor] = {}
        with torch.no_grad():
            features = model.features(posterior)  # [B,T,F]
        ens_loss, ens_metrics = self.ensemble.loss(features, posterior[keys.STOCH])
        metrics["ensemble/grad_norm"] = self._step(self.ensemble_opt, ens_loss, self.ensemble.parameters())
        metrics.update({f"ensemble/{k}": v for k, v in ens_metrics.items()})

        start = posterior.reshape(-1)  # [N]
        metrics.update({f"explorer/{k}": v for k, v in self.explorer.train_step(start).items()})
        goals = shuffled_goals(embed)  # [N,E]
        metrics.update({f"achiever/{k}": v for k, v in self.achiever.train_step(start, goal=goals).items()})

        if self.temporal is not None:
            embed_loss, embed_metrics = self.temporal.embed_loss(features, embed)
            embeds, ids = self.distance_data(posterior, goals)
            dist_loss, dist_metrics = self.temporal.distance_loss(embeds, ids, label_scale=self.window)
            loss = embed_loss + dist_loss
            if self.config.distance_replay:
                replay_loss, replay_metrics = self.replay_distance_loss(features, embed)
                loss = loss + replay_loss
                metrics.update({f"temporal/replay/{k}": v for k, v in replay_metrics.items()})
            metrics["temporal/grad_norm"] = self._step(self.temporal_opt, loss, self.temporal.parameters(), self.grad_clip)
            for name, value in [*embed_metrics.items(), *dist_metrics.items()]:
                metrics[f"temporal/{name}"] = value
        return TensorDict(metrics, batch_size=[])

    def distance_data(self, posterior: TensorDict, goals: Tensor) -> tuple[Tensor, Tensor | None]:
        """What D is trained on (LEXA ``dd_train_imag``): :func:`distance_rollouts` as predicted embeddings,
        with ``lexa.distance_starts`` and ``lexa.distance_negatives``.

        Shapes: posterior ``[B, T]``, goals ``[B*T, E]`` -> embeds ``[N, H, E]``, sequence ids ``[N]``
        (None with ``distance_negatives="trajectory"``).
        """
        states, ids = distance_rollouts(self.achiever, posterior, goals, self.config.distance_starts)
        with torch.no_grad():
            embeds = self.temporal.predict_embed(self.model.features(states))  # [N,H,E]
        return embeds, (ids if self.config.distance_negatives == "sequence" else None)

    def replay_distance_loss(self, features: Tensor, embed: Tensor) -> tuple[Tensor, TensorDict]:
        """D's loss on the replay batch (``lexa.distance_replay``): the windows cut into runs of H steps
        (W = ``lexa.distance_window`` steps when set, :func:`replay_windows`), a pair's state the predicted
        embedding e_hat of the posterior features at step i, its goal the real encoder embedding at step j;
        labels (j - i) / W and negatives as on imagined rollouts.

        Shapes: features ``[B, T, F]``, embed ``[B, T, E]`` (T >= W) -> scalar loss.
        """
        with torch.no_grad():
            predicted, ids = replay_windows(self.temporal.predict_embed(features), self.window)  # [B*R,W,E]
        real, _ = replay_windows(embed, self.window)
        return self.temporal.distance_loss(predicted, ids, goal_embeds=real, label_scale=self.window)

    @torch.no_grad()
    def explorer_vs_random(self, start: TensorDict, generator: torch.Generator | None = None) -> dict[str, float]:
        """Mean imagined intrinsic reward of the explorer and of uniform random actions, from the same starts.

        The intrinsic reward falls for any policy as the ensemble learns, so its raw value says little
        about the explorer; what the explorer actor learns is to *seek* disagreement, i.e. to score above
        random actions under the same ensemble. Both are averaged over the H imagined steps (not the start).

        Args:
            start: posterior states ``[N]`` (for example ``LossOutput.posterior.reshape(-1)``).
            generator: torch RNG for the random actions.

        Returns:
            ``{"explorer": float, "random": float}``.
        """
        reward = self.explorer.reward_fn
        explorer_states = self.explorer.imagine(start).states[:, 1:]  # [N,H]
        horizon, n = explorer_states.shape[1], start.shape[0]
        action_dim = explorer_states[keys.ACTION].shape[-1]
        actions = torch.rand(n, horizon, action_dim, generator=generator, device=self.model.device) * 2 - 1
        random_states = self.model.imagine(start, actions, horizon)  # [N,H], ACTION = a_h taken at s_h
        return {
            "explorer": reward.per_step(self.model, explorer_states).mean().item(),
            "random": reward.per_step(self.model, random_states).mean().item(),
        }

    # ------------------------------------------------------------------ acting
    def policy(self, sample: bool = False) -> Policy:
        """The explorer's policy ``features [B, F] -> action [B, A]``: samples while collecting, else the mode."""
        return self.explorer.policy(sample=sample)

    @torch.no_grad()
    def goal_embedding(self, goal_pixels: Tensor) -> Tensor:
        """Encoder embedding of goal images. Shapes: uint8 ``[C, H, W]`` or ``[N, C, H, W]`` -> ``[N, E]``."""
        if goal_pixels.dim() == 3:
            goal_pixels = goal_pixels[None]
        return self.model.embed(goal_pixels.to(self.model.device))

    def achiever_policy(self, goal_pixels: Tensor, sample: bool = False) -> Policy:
        """``features [1, F] -> action [1, A]`` of the achiever toward one goal image ``[C, H, W]``."""
        return self.achiever.policy(sample=sample, goal=self.goal_embedding(goal_pixels))

    # ------------------------------------------------------------------ checkpointing
    def get_extra_state(self) -> dict:
        state = {"ensemble_opt": self.ensemble_opt.state_dict()}
        if self.temporal_opt is not None:
            state["temporal_opt"] = self.temporal_opt.state_dict()
        return state

    def set_extra_state(self, state: dict) -> None:
        self.ensemble_opt.load_state_dict(state["ensemble_opt"])
        if self.temporal_opt is not None:
            self.temporal_opt.load_state_dict(state["temporal_opt"])

