"""LEXA's networks (Mendonca, Rybkin et al., "Discovering and Achieving Goals via World Models", 2021).

The world model is DreamerV2 with a Gaussian latent (``DreamerConfig(classes=0)``, methods.md 2.4); the
explorer and achiever are :class:`planners.actor_critic.ImaginationActorCritic` instances trained in its
imagination with rewards from the networks built here (methods.md 3.3), wrapped as objectives in
:mod:`planners.objectives`::

    explorer   r_t = log( mean_d std_k f_k(feat_t)[d] + eps )       DisagreementEnsemble -> DisagreementObjective
    achiever   r_t = -D(e_hat_t, e_g),  e_hat_t = embed_head(feat_t)  TemporalDistance -> TemporalDistanceObjective
               r_t = cos(feat_t, feat_g)                              EmbeddingCosineObjective (no network)

None of them calls ``model.reward``: LEXA uses no task reward (``expl_extr_scale`` 0).

One LEXA update (``lexa/dreamer.py`` + ``gcdreamer_imag.py``; :meth:`planners.lexa_behaviour.LexaBehaviour.update`)::

    out = model.loss(batch); embed = out.embed                                     # world model
    td.embed_loss(features(out.posterior), embed)        -> model optimiser (lr 3e-4)
    ensemble.loss(features(post), post[STOCH])           -> ensemble optimiser (lr 3e-4)
    explorer.train_step(post)                             # reward=DisagreementObjective(ensemble)
    goal = shuffled_goals(embed); achiever.train_step(post, goal=goal)   # reward=TemporalDistanceObjective(td)
    td.distance_loss(td.predict_embed(features(achiever.imagine(post, goal).states[:, :H])), sequence_ids) -> lr 8e-5
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core.config import LexaConfig
from worldmodels.models.networks import MLP, activation_module


class DisagreementEnsemble(nn.Module):
    """K one-step predictors f_k(feat_t [, a_t]) -> stoch_{t+1}, run as one batched MLP (Plan2Explore).

    LEXA (``exploration.py::Plan2Explore``): K = 10 heads of 4 x 400 ELU, target ``stoch`` with
    ``disag_offset`` 1, no action input, ``disag_log`` True, ``expl_intr_scale`` 1. DreamerV2's own
    Plan2Explore conditions on the action (``disag_action_cond``; here ``action_dim > 0``) and takes no log.
    The members' weights are stacked ``[K, in, out]``; a forward pass is one matmul per layer.

    Args:
        feature_dim: F, size of ``model.features(state)``.
        target_dim: S, size of the flattened stochastic state (categorical ``[C, K]`` -> ``C * K``).
        members: ensemble size K (LEXA ``disag_models``: 10).
        layers: hidden layers per member (LEXA ``disag_layers``: 4).
        units: hidden width (LEXA ``disag_units``: 400).
        activation: ``"elu"`` (LEXA), ``"relu"`` or ``"silu"``.
        action_dim: A > 0 appends the action taken at t to the input (DreamerV2 option); 0 = LEXA.

    Shapes:
        ``forward(features [..., F], action [..., A] | None) -> [K, ..., S]``.
    """

    def __init__(
        self,
        feature_dim: int,
        target_dim: int,
        members: int = 10,
        layers: int = 4,
        units: int = 400,
        activation: str = "elu",
        action_dim: int = 0,
    ):
        super().__init__()
        if members < 2:
            raise ValueError(f"DisagreementEnsemble needs members >= 2 to measure disagreement, got {members}.")
        if min(feature_dim, target_dim, units) < 1 or layers < 0 or action_dim < 0:
            raise ValueError("feature_dim, target_dim and units must be >= 1; layers and action_dim >= 0.")
        self.feature_dim, self.target_dim, self.action_dim = feature_dim, target_dim, action_dim
        self.members = members
        widths = [feature_dim + action_dim] + [units] * layers + [target_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for w_in, w_out in itertools.pairwise(widths):
            bound = 1.0 / math.sqrt(w_in)  # nn.Linear's default init, drawn per member
            self.weights.append(nn.Parameter(torch.empty(members, w_in, w_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, w_out).uniform_(-bound, bound)))
        self.act = activation_module(activation)

    @classmethod
    def from_config(cls, config: LexaConfig, feature_dim: int, target_dim: int) -> DisagreementEnsemble:
        """Ensemble sized by :class:`LexaConfig` (10 members of 4 x 400 ELU by default)."""
        return cls(feature_dim, target_dim, config.ensemble_members, config.ensemble_layers, config.ensemble_units)

    def _inputs(self, features: Tensor, action: Tensor | None) -> Tensor:
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"features must have shape [..., {self.feature_dim}], got {list(features.shape)}.")
        if self.action_dim == 0:
            return features
        if action is None or action.shape[-1] != self.action_dim:
            got = None if action is None else list(action.shape)
            raise ValueError(f"this ensemble is action-conditioned: pass action [..., {self.action_dim}], got {got}.")
        return torch.cat([features, action.to(features)], dim=-1)

    def forward(self, features: Tensor, action: Tensor | None = None) -> Tensor:
        """Every member's prediction of the next stochastic state. Shapes: [..., F] -> [K, ..., S]."""
        x = self._inputs(features, action)
        lead = x.shape[:-1]
        h = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)  # [K,N,F(+A)]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)  # [K,N,out]
            if i < last:
                h = self.act(h)
        return h.reshape(self.members, *lead, self.target_dim)

    def loss(
        self, features: Tensor, stoch: Tensor, is_first: Tensor | None = None, action: Tensor | None = None
    ) -> tuple[Tensor, TensorDict]:
        """Gaussian (unit variance) negative log-likelihood of stoch_{t+1} under every member.

        ``L = sum_k mean_{b,t} 0.5 * sum_d (f_k(sg feat_t)[d] - sg stoch_{t+1}[d])^2`` (constants dropped;
        DreamerV2 ``expl.py``: ``-sum_k mean log_prob``), over pairs (t, t+1) of the sequence
        (``disag_offset`` 1) whose row t+1 does not start an episode (LEXA masks nothing: pass no
        ``is_first`` to reproduce it).

        Args:
            features: ``[B, T, F]`` posterior features feat_t (detached here).
            stoch: ``[B, T, S]`` (or ``[B, T, C, K]``) posterior stochastic states stoch_t (detached).
            is_first: optional bool ``[B, T, 1]``; pairs whose t+1 row is first are skipped.
            action: ``[B, T, A]`` actions taken at t (``keys.ACTION``), only when ``action_dim > 0``.

        Returns:
            ``(loss, metrics)`` with detached ``loss/disagreement`` and ``disagreement/std``.
        """
        if features.dim() != 3 or features.shape[1] < 2:
            raise ValueError(f"features must be [B, T >= 2, {self.feature_dim}], got {list(features.shape)}.")
        b, t = features.shape[:2]
        target = stoch.detach().reshape(b, t, -1)[:, 1:]  # [B,T-1,S]
        if target.shape[-1] != self.target_dim:
            raise ValueError(f"stoch flattens to {target.shape[-1]} values per step, expected {self.target_dim}.")
        act = None if action is None else action.detach()[:, :-1]
        pred = self(features.detach()[:, :-1], act)  # [K,B,T-1,S]
        nll = 0.5 * ((pred - target) ** 2).sum(-1)  # [K,B,T-1]
        if is_first is None:
            per_member = nll.mean(dim=(1, 2))
        else:
            keep = (~is_first[:, 1:, 0].bool()).to(nll)  # [B,T-1]
            per_member = (nll * keep).sum(dim=(1, 2)) / keep.sum().clamp_min(1.0)
        loss = per_member.sum()
        metrics = TensorDict(
            {"loss/disagreement": loss.detach(), "disagreement/std": pred.detach().std(0, unbiased=False).mean()},
            batch_size=[],
        )
        return loss, metrics

    def intrinsic_reward(
        self, features: Tensor, action: Tensor | None = None, log: bool = True, eps: float = 1e-8, scale: float = 1.0
    ) -> Tensor:
        """``scale * log(mean_d std_k f_k(feat)[d] + eps)`` (LEXA ``disag_log`` True, ``expl_intr_scale`` 1);
        ``log=False`` gives DreamerV2's plain ``mean_d std_k``. The std is the population std over members
        (``tf.math.reduce_std``); ``eps`` (absent in LEXA) keeps identical members finite.

        Shapes: features ``[..., F]`` -> ``[..., 1]``.
        """
        disagreement = self(features, action).std(0, unbiased=False).mean(-1, keepdim=True)  # [...,1]
        return scale * (torch.log(disagreement + eps) if log else disagreement)


class DistanceNet(nn.Module):
    """LEXA ``GC_Distance`` (``networks.py``): ``layers`` x (Linear(units) -> ReLU -> BatchNorm) -> Linear(1).

    With ``output="sigmoid"`` a sigmoid follows (this toolkit before issue 16); ``batchnorm=False`` drops the
    BatchNorm layers. BatchNorm uses batch statistics only where D is trained (``train(True)``, set by
    :meth:`TemporalDistance.distance`) and its running statistics elsewhere, so a reward never depends on the
    other rows of its batch. (LEXA calls Keras' BatchNormalization without ``training=``; in TF2 that may
    run in inference mode throughout, i.e. as a learned per-unit affine map -- not verified here.)

    Shapes: ``[..., 2E] -> [..., 1]``.
    """

    def __init__(self, in_dim: int, units: int = 128, layers: int = 4, batchnorm: bool = True, output: str = "linear"):
        super().__init__()
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid', got {output!r}.")
        blocks: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, units), nn.ReLU()] + ([nn.BatchNorm1d(units)] if batchnorm else [])
            width = units
        blocks.append(nn.Linear(width, 1))
        if output == "sigmoid":
            blocks.append(nn.Sigmoid())
        self.net = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        return self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, 1)


class TemporalDistance(nn.Module):
    """LEXA ``lexa_temporal``: embedding head e_hat(feat) and temporal distance D(e_hat_t, e_g).

    * ``embed_head`` (LEXA ``pred_embed: True``, world-model head ``embed`` = DenseHead(value_layers 3,
      units 400, elu)): feat_t -> predicted encoder embedding e_hat_t, trained by :meth:`embed_loss`
      (unit-variance Gaussian NLL) with the model optimiser (lr 3e-4) in LEXA.
    * ``distance_net`` (LEXA ``GC_Distance``, ``dd_inp: embed``, :class:`DistanceNet`): MLP on
      ``cat(e_hat_t, e_g)`` -> predicted normalised number of steps, linear at the output (regression,
      ``dd_loss: regression``), BatchNorm after every hidden layer.
    * reward ``r_t = -D(e_hat_t, e_g)`` (``gcdreamer_imag.py::_gc_reward``).

    Args:
        feature_dim: F.
        embed_dim: E, size of the encoder embedding (DreamerV2 conv_ha: ``32 * depth``).
        head_layers, head_units: embed head MLP (LEXA: value_layers 3 x units 400, ELU).
        layers, units: distance MLP (LEXA GC_Distance: 4 x 128, ReLU).
        positives: positive pairs per loss (LEXA ``dd_num_positives``: 256).
        negative_fraction: negatives = ``int(fraction * positives)`` (LEXA ``dd_neg_sampling_factor``: 0.1).
        output: ``"linear"`` (LEXA) or ``"sigmoid"``; batchnorm: BatchNorm after hidden layers (LEXA: True).
    """

    def __init__(
        self,
        feature_dim: int,
        embed_dim: int,
        head_layers: int = 3,
        head_units: int = 400,
        layers: int = 4,
        units: int = 128,
        positives: int = 256,
        negative_fraction: float = 0.1,
        output: str = "linear",
        batchnorm: bool = True,
    ):
        super().__init__()
        if positives < 1 or not 0.0 <= negative_fraction:
            raise ValueError(
                f"positives must be >= 1 and negative_fraction >= 0, got {positives}, {negative_fraction}."
            )
        self.feature_dim, self.embed_dim = feature_dim, embed_dim
        self.positives, self.negatives = positives, int(negative_fraction * positives)
        self.embed_head = MLP(feature_dim, embed_dim, head_units, head_layers, "elu")
        self.distance_net = DistanceNet(2 * embed_dim, units, layers, batchnorm, output)

    @classmethod
    def from_config(cls, config: LexaConfig, feature_dim: int, embed_dim: int) -> TemporalDistance:
        """Distance sized by :class:`LexaConfig` (256 positive pairs, 25 negatives, linear + BatchNorm)."""
        return cls(
            feature_dim,
            embed_dim,
            positives=config.temporal_pairs,
            negative_fraction=config.negative_fraction,
            output=config.distance_output,
            batchnorm=config.distance_batchnorm,
        )

    def predict_embed(self, features: Tensor) -> Tensor:
        """e_hat = embed_head(feat). Shapes: [..., F] -> [..., E]."""
        return self.embed_head(features)

    def embed_loss(
        self, features: Tensor, embed: Tensor, grad_to_model: bool = False
    ) -> tuple[Tensor, TensorDict]:
        """Embed-head loss ``mean 0.5 * sum_e (e_hat(feat) - sg(embed))^2`` (LEXA ``gcdreamer_wm.py``:
        ``data['embed'] = stop_gradient(embed)``; ``grad_heads: ['image']``, so the head's input is
        detached too unless ``grad_to_model``).

        Shapes: features ``[B, T, F]``, embed ``[B, T, E]`` -> scalar.
        """
        features = features if grad_to_model else features.detach()
        loss = 0.5 * ((self.predict_embed(features) - embed.detach()) ** 2).sum(-1).mean()
        return loss, TensorDict({"loss/embed": loss.detach()}, batch_size=[])

    def distance(self, embed: Tensor, goal_embed: Tensor, batch_stats: bool = False) -> Tensor:
        """D(e, e_g), the predicted number of steps / L. ``batch_stats``: BatchNorm normalises with this
        batch's statistics and updates its running ones (training D only).

        Shapes: ``[..., E]`` and ``[..., E]`` (broadcast) -> ``[..., 1]``.
        """
        embed, goal_embed = torch.broadcast_tensors(embed, goal_embed.to(embed))
        self.distance_net.train(batch_stats)
        return self.distance_net(torch.cat([embed, goal_embed], dim=-1))

    def reward(self, features: Tensor, goal_embed: Tensor) -> Tensor:
        """``r = -D(embed_head(feat), e_g)``. Shapes: ``[..., F]``, ``[..., E]`` -> ``[..., 1]``."""
        return -self.distance(self.predict_embed(features), goal_embed)

    def distance_loss(
        self,
        embeds: Tensor,
        sequence_ids: Tensor | None = None,
        generator: torch.Generator | None = None,
        goal_embeds: Tensor | None = None,
        label_scale: int | None = None,
    ) -> tuple[Tensor, TensorDict]:
        """Regression loss of D on imagined trajectories (LEXA ``get_dynamical_distance_loss``, ``dd_train_imag``,
        ``dd_norm_reg_label``, ``dd_distance: steps_to_go``).

        The N trajectories hold L states each (LEXA: the H = 15 states s_0..s_{H-1} of its imagination, start
        included). Positives: ``positives`` pairs (n, i, j), i <= j, drawn uniformly from all such pairs,
        label ``(j - i) / L`` in ``[0, (L-1)/L]``. Negatives: ``int(0.1 * 256) = 25`` pairs of a random state
        (n, i) and a random state (n', j) of a trajectory whose start lies in another replay sequence,
        ``sequence_ids[n'] != sequence_ids[n]`` (``tools.get_future_goal_idxs_neg_sampling``), label ``L / L = 1``.
        ``L = mean_pos (D - y)^2 + mean_neg (D - 1)^2``; both sets go through D as one batch (BatchNorm).

        Args:
            embeds: ``[N, L, E]`` (predicted) embeddings along imagined trajectories; detached here.
            sequence_ids: ``[N]`` int, the replay sequence each trajectory starts in; None = every trajectory
                its own sequence. No negatives when all ids are equal.
            generator: torch RNG for the pair sampling (on the embeddings' device).
            goal_embeds: ``[N, L, E]`` the goal of pair (n', j) is ``goal_embeds[n', j]`` (None = ``embeds``);
                ``lexa.distance_replay`` pairs predicted states with real goal embeddings.
            label_scale: the steps a label of 1 stands for (None = L, LEXA; ``lexa.distance_window``).

        Returns:
            ``(loss, metrics)`` with detached ``loss/distance``, ``distance/positive``, ``distance/negative``
            (the two MSE terms) and ``distance/positive_mean``, ``distance/negative_mean`` (mean predictions).
        """
        if embeds.dim() != 3 or embeds.shape[1] < 2 or embeds.shape[-1] != self.embed_dim:
            raise ValueError(f"embeds must be [N, L >= 2, {self.embed_dim}], got {list(embeds.shape)}.")
        if goal_embeds is not None and goal_embeds.shape != embeds.shape:
            raise ValueError(f"goal_embeds must match embeds {list(embeds.shape)}, got {list(goal_embeds.shape)}.")
        embeds = embeds.detach()
        goal_embeds = embeds if goal_embeds is None else goal_embeds.detach()
        n, length, _ = embeds.shape
        device = embeds.device
        pairs = distance_pairs(n, length, self.positives, self.negatives, sequence_ids, generator, device, label_scale)
        cur, goal = embeds[pairs.cur_traj, pairs.cur_step], goal_embeds[pairs.goal_traj, pairs.goal_step]  # [P+m,E]
        label = pairs.label.to(embeds)
        pred = self.distance(cur, goal, batch_stats=True)[:, 0]  # [P+m]: one BatchNorm batch
        has_negatives = pred.shape[0] > self.positives
        pos = pred[: self.positives]
        pos_loss = ((pos - label[: self.positives]) ** 2).mean()
        loss = pos_loss
        metrics = {"distance/positive": pos_loss.detach(), "distance/positive_mean": pos.detach().mean()}
        if has_negatives:
            neg = pred[self.positives :]
            neg_loss = ((neg - label[self.positives :]) ** 2).mean()
            loss = loss + neg_loss
            metrics["distance/negative"] = neg_loss.detach()
            metrics["distance/negative_mean"] = neg.detach().mean()
        metrics["loss/distance"] = loss.detach()
        return loss, TensorDict(metrics, batch_size=[])


class DistancePairs(NamedTuple):
    """Training pairs of the temporal distance: state ``(cur_traj, cur_step)``, goal ``(goal_traj, goal_step)``
    and its label, positives first then negatives. All ``[P + m]``."""

    cur_traj: Tensor
    cur_step: Tensor
    goal_traj: Tensor
    goal_step: Tensor
    label: Tensor


def distance_pairs(
    trajectories: int,
    length: int,
    positives: int,
    negatives: int,
    sequence_ids: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    scale: int | None = None,
) -> DistancePairs:
    """LEXA's temporal-distance pairs (``get_future_goal_idxs`` + ``get_future_goal_idxs_neg_sampling``).

    Positives: uniform over all (n, i, j) with i <= j < L, label ``(j - i) / L`` (``dd_norm_reg_label``,
    ``dd_seq_len`` = L = ``imag_horizon``). Negatives: state (n, i) and goal (n', j) with uniform i, j and n'
    a trajectory of another replay sequence (``sequence_ids[n'] != sequence_ids[n]``; LEXA:
    ``j // batch_length != cur // batch_length``), label ``L / L = 1``. No negatives if every id is equal.

    Args:
        trajectories: N; length: L states per trajectory; positives: P; negatives: m.
        sequence_ids: ``[N]`` replay sequence of each trajectory (None = each trajectory its own).
        scale: positives' labels are ``(j - i) / scale`` (None = L, LEXA); ``scale`` >= L keeps them below 1,
            the negatives' label (``lexa.distance_window``: one scale for imagined and longer replay runs).
    """
    scale = length if scale is None else scale
    if scale < length:
        raise ValueError(f"label scale must be >= the trajectory length {length}, got {scale}.")
    ids = torch.arange(trajectories, device=device) if sequence_ids is None else sequence_ids.to(device)
    if ids.shape != (trajectories,):
        raise ValueError(f"sequence_ids must have shape [{trajectories}], got {list(ids.shape)}.")
    cur_idx, goal_idx = torch.triu_indices(length, length, device=device)  # all i <= j within one trajectory
    pick = torch.randint(cur_idx.numel(), (positives,), generator=generator, device=device)
    traj = torch.randint(trajectories, (positives,), generator=generator, device=device)
    i, j = cur_idx[pick], goal_idx[pick]
    parts = [(traj, i, traj, j, (j - i).float() / scale)]
    other = ids[None, :] != ids[:, None]  # [N,N] trajectory pairs from different sequences
    if negatives > 0 and bool(other.any()):
        a = torch.multinomial(other.any(1).float(), negatives, replacement=True, generator=generator)  # [m]
        b = torch.multinomial(other[a].float(), 1, generator=generator)[:, 0]  # [m], another sequence
        ta = torch.randint(length, (negatives,), generator=generator, device=device)
        tb = torch.randint(length, (negatives,), generator=generator, device=device)
        parts.append((a, ta, b, tb, torch.ones(negatives, device=device)))
    return DistancePairs(*(torch.cat(column) for column in zip(*parts)))


def replay_windows(x: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Replay sequences cut into runs of ``length`` consecutive steps (the tail that does not fill a run is
    dropped), for D's replay pairs (``lexa.distance_replay``); a run's id is its replay sequence, so
    :func:`distance_pairs` draws positives inside a run and negatives from other sequences.

    Shapes: ``[B, T, ...]`` -> runs ``[B * (T // length), length, ...]`` and int64 ids ``[B * (T // length)]``.

    Raises:
        ValueError: T is shorter than ``length``.
    """
    b, t = x.shape[:2]
    if length < 1 or t < length:
        raise ValueError(f"replay windows of T = {t} steps cannot be cut into runs of {length} (needs T >= {length} >= 1).")
    runs = t // length
    cut = x[:, : runs * length].reshape(b * runs, length, *x.shape[2:])
    return cut, torch.arange(b, device=x.device).repeat_interleave(runs)


def shuffled_goals(embed: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Training goals for the achiever (LEXA ``training_goals: batch``): the replay batch's encoder
    embeddings, flattened and randomly permuted, so each start state gets another frame as its goal.

    Shapes: embed ``[B, T, E]`` (any leading shape) -> ``[B*T, E]`` (detached), row-aligned with
    ``posterior.reshape(-1)``.
    """
    flat = embed.detach().reshape(-1, embed.shape[-1])
    return flat[torch.randperm(flat.shape[0], generator=generator, device=flat.device)]


__all__ = [
    "DisagreementEnsemble", "DistanceNet", "DistancePairs", "TemporalDistance", "distance_pairs", "replay_windows",
    "shuffled_goals",
]
