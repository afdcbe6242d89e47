"""Recurrent state-space model (RSSM) shared by PlaNet, DreamerV2 and LEXA.

PlaNet (Hafner et al. 2019, Eq. 4 and ``planet/models/rssm.py``) with the DreamerV2 discrete latent
(Hafner et al. 2021, Sec. 2.1) as an option. With ``s_t = (h_t, z_t)``:

* deterministic:  ``h_t = GRU(h_{t-1}, act(W [z_{t-1}, a_{t-1}]))``
* prior:          ``p(z_t | h_t)``       from ``MLP(h_t)``
* posterior:      ``q(z_t | h_t, e_t)``  from ``MLP([h_t, e_t])`` with ``e_t`` the image embedding

``z`` is a diagonal Gaussian (``Gaussian(stoch_dim, min_std)``, std = softplus + min_std) or
``groups`` one-hot categoricals of ``classes`` classes (``Categorical(classes, groups)``,
straight-through samples). States are TensorDicts with ``DETER [..., D]``, ``STOCH`` (``[..., S]`` or
``[..., G, K]``) and ``MEAN``/``STD`` or ``LOGITS``. Alignment (``keys.py``): the posterior at ``t``
uses ``prev_action[t]``, the action that led to ``pixels[t]``; where ``is_first[t]`` the previous
state and ``prev_action[t]`` are reset to zeros (the initial state) before the step.

Speed: the time loops work on plain tensors and build one TensorDict at the end; everything that
does not depend on the recurrence is computed for all ``T`` steps before the loop (the action part
of the prior input layer, the embedding part of the posterior input layer, the sampling noise), and
the prior statistics needed by the KL of the posterior rollout are computed after the loop from the
stacked ``h_t`` in one batched call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys
from worldmodels.models.distributions import gaussian_params, gumbel_noise, onehot_straight_through
from worldmodels.models.networks import activation_module


@dataclass(frozen=True)
class Gaussian:
    """Diagonal Gaussian stochastic state (PlaNet: 30 dims, min std 0.1; LEXA: 50)."""

    stoch_dim: int = 30
    min_std: float = 0.1

    @property
    def flat_dim(self) -> int:
        return self.stoch_dim

    @property
    def stats_dim(self) -> int:
        return 2 * self.stoch_dim


@dataclass(frozen=True)
class Categorical:
    """``groups`` one-hot categoricals with ``classes`` classes each (DreamerV2: 32 x 32)."""

    classes: int = 32
    groups: int = 32

    @property
    def flat_dim(self) -> int:
        return self.classes * self.groups

    @property
    def stats_dim(self) -> int:
        return self.classes * self.groups


Stoch = Union[Gaussian, Categorical]


class LayerNormGRUCell(nn.Module):
    """GRU cell with LayerNorm on the gates (DreamerV2 ``nets.py::GRUCell``, update bias -1).

    ``[r, c, u] = LN(W [x, h])``; ``r = sigmoid(r)``; ``c = tanh(r * c)``; ``u = sigmoid(u - 1)``;
    ``h' = u * c + (1 - u) * h``. Same call signature as :class:`torch.nn.GRUCell`.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(input_size + hidden_size, 3 * hidden_size, bias=False)
        self.norm = nn.LayerNorm(3 * hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h


class RSSM(nn.Module):
    """The RSSM core; see the module docstring for the equations.

    Args:
        action_dim: A.
        embed_dim: E, size of the image embedding fed to the posterior.
        deter_dim: D, GRU state size (PlaNet: 200).
        stoch: :class:`Gaussian` or :class:`Categorical`.
        hidden_dim: hidden layer size of the input/prior/posterior layers (PlaNet: 200).
        activation: ``"relu"`` (PlaNet) or ``"elu"`` (DreamerV2).
        layer_norm: LayerNorm GRU (DreamerV2/LEXA) instead of :class:`torch.nn.GRUCell`.

    Example:
        >>> rssm = RSSM(action_dim=2, embed_dim=1024, deter_dim=200, stoch=Gaussian(30, 0.1), hidden_dim=200)
        >>> post = rssm.observe(embeds, prev_actions, is_first)          # [B, T]
        >>> imag = rssm.imagine(post[:, -1], actions)                     # [B, H] with keys.ACTION
        >>> feats = rssm.features(imag)                                   # [B, H, D + S]
    """

    def __init__(
        self,
        action_dim: int,
        embed_dim: int,
        deter_dim: int,
        stoch: Stoch,
        hidden_dim: int,
        activation: str = "relu",
        layer_norm: bool = False,
    ):
        super().__init__()
        if not isinstance(stoch, (Gaussian, Categorical)):
            raise ValueError(f"stoch must be rssm.Gaussian or rssm.Categorical, got {stoch!r}.")
        self.action_dim, self.embed_dim, self.deter_dim = action_dim, embed_dim, deter_dim
        self.stoch = stoch
        self.categorical = isinstance(stoch, Categorical)
        self.feature_dim = deter_dim + stoch.flat_dim
        self.act = activation_module(activation)
        # prior input: act(W [z_{t-1}, a_{t-1}]); split as W_z z + (W_a a + b) in the loops
        self.img_in = nn.Linear(stoch.flat_dim + action_dim, hidden_dim)
        self.gru = LayerNormGRUCell(hidden_dim, deter_dim) if layer_norm else nn.GRUCell(hidden_dim, deter_dim)
        self.prior_net = nn.Sequential(
            nn.Linear(deter_dim, hidden_dim), activation_module(activation), nn.Linear(hidden_dim, stoch.stats_dim)
        )
        # posterior input: act(W [h_t, e_t]); split as W_h h + (W_e e + b)
        self.post_in = nn.Linear(deter_dim + embed_dim, hidden_dim)
        self.post_out = nn.Linear(hidden_dim, stoch.stats_dim)
        self.static_resets = False
        """mask the state at every step of :meth:`observe` (the same numbers) instead of reading from
        ``is_first`` on the host where resets occur: no host sync, as a CUDA graph needs"""

    # ------------------------------------------------------------------ state helpers

    def initial_state(self, batch_size: int) -> TensorDict:
        """All-zero state ``[batch_size]`` (PlaNet/DreamerV2 ``initial: zeros``) on the module's device."""
        p = self.img_in.weight
        d = self._tensor_state(
            torch.zeros(batch_size, self.deter_dim, device=p.device, dtype=p.dtype),
            torch.zeros(batch_size, self.stoch.flat_dim, device=p.device, dtype=p.dtype),
            torch.zeros(batch_size, self.stoch.stats_dim, device=p.device, dtype=p.dtype),
            raw=True,
        )
        return TensorDict(d, batch_size=[batch_size])

    def features(self, state: TensorDict) -> Tensor:
        """``cat(deter, flatten(stoch))``, ``[..., D + S]`` (or ``D + G*K``)."""
        stoch = state[keys.STOCH]
        if self.categorical:
            stoch = stoch.flatten(-2)
        return torch.cat([state[keys.DETER], stoch], -1)

    def mean_features(self, state: TensorDict) -> Tensor:
        """``cat(deter, mean of z)`` from the state's statistics, ``[..., D + S]``: the Gaussian ``MEAN``,
        or the one-hot mode of the categorical ``LOGITS`` (the ``sample=False`` state, without its noise).
        A goal image's posterior features with ``sample=False`` are this, for the same state."""
        if self.categorical:
            logits = state[keys.LOGITS]
            stoch = F.one_hot(logits.argmax(-1), self.stoch.classes).to(logits.dtype).flatten(-2)
        else:
            stoch = state[keys.MEAN]
        return torch.cat([state[keys.DETER], stoch], -1)

    def prior(self, deter: Tensor) -> TensorDict:
        """Prior statistics ``p(z | h)`` for any batch of ``deter [..., D]`` (no sample): ``MEAN``/``STD`` or ``LOGITS``."""
        return TensorDict(self._stats_dict(self.prior_net(deter)), batch_size=deter.shape[:-1])

    def _stats_dict(self, stats: Tensor) -> dict:
        if self.categorical:
            return {keys.LOGITS: stats.unflatten(-1, (self.stoch.groups, self.stoch.classes))}
        mean, std = gaussian_params(stats, self.stoch.min_std)
        return {keys.MEAN: mean, keys.STD: std}

    def _tensor_state(self, deter: Tensor, stoch_flat: Tensor, stats: Tensor, raw: bool = False) -> dict:
        """Tensors -> state dict. ``raw`` keeps ``stats`` as-is (used for the zero initial state)."""
        out = {keys.DETER: deter}
        if self.categorical:
            shape = (self.stoch.groups, self.stoch.classes)
            out[keys.STOCH] = stoch_flat.unflatten(-1, shape)
            out[keys.LOGITS] = stats.unflatten(-1, shape)
        else:
            out[keys.STOCH] = stoch_flat
            if raw:
                out[keys.MEAN], out[keys.STD] = stats.chunk(2, -1)
            else:
                out.update(self._stats_dict(stats))
        return out

    def _flat_stoch(self, state: TensorDict) -> Tensor:
        stoch = state[keys.STOCH]
        return stoch.flatten(-2) if self.categorical else stoch

    def _noise(self, shape: tuple[int, ...], like: Tensor, sample: bool = True) -> Tensor:
        """Sampling noise for ``shape`` leading dims: N(0, I) ``[..., S]`` or Gumbel ``[..., G, K]``.

        Zeros when not ``sample``: the Gaussian sample is then its mean, the categorical one its mode.
        """
        if not sample:
            tail = (self.stoch.groups, self.stoch.classes) if self.categorical else (self.stoch.stoch_dim,)
            return torch.zeros(*shape, *tail, device=like.device, dtype=like.dtype)
        if self.categorical:
            return gumbel_noise((*shape, self.stoch.groups, self.stoch.classes), like.device, like.dtype)
        return torch.randn(*shape, self.stoch.stoch_dim, device=like.device, dtype=like.dtype)

    def _sample(self, stats: Tensor, noise: Tensor) -> Tensor:
        """Flat reparameterised / straight-through sample from head output ``stats``."""
        if self.categorical:
            logits = stats.unflatten(-1, (self.stoch.groups, self.stoch.classes))
            return onehot_straight_through(logits, noise).flatten(-2)
        mean, std = gaussian_params(stats, self.stoch.min_std)
        return mean + std * noise

    def _split_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        s = self.stoch.flat_dim
        w_img, w_post = self.img_in.weight, self.post_in.weight
        return w_img[:, :s], w_img[:, s:], w_post[:, : self.deter_dim], w_post[:, self.deter_dim :]

    # ------------------------------------------------------------------ single steps

    def prior_tensors(self, deter: Tensor, stoch: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One prior step on plain tensors: ``(h, z_flat, a) -> (h', stats', z_flat')`` (sampled ``z``).

        Shapes:
            ``deter [N, D]``, ``stoch [N, S_flat]``, ``action [N, A]`` -> ``[N, D]``, ``[N, stats]``, ``[N, S_flat]``.
        """
        x = self.act(self.img_in(torch.cat([stoch, action], -1)))
        deter = self.gru(x, deter)
        stats = self.prior_net(deter)
        return deter, stats, self._sample(stats, self._noise(deter.shape[:-1], deter))

    # ------------------------------------------------------------------ sequences

    def observe(
        self,
        embeds: Tensor,
        prev_actions: Tensor,
        is_first: Tensor,
        state: TensorDict | None = None,
        sample: bool = True,
    ) -> TensorDict:
        """Posterior filtering over a sequence.

        Args:
            embeds: image embeddings ``[B, T, E]``.
            prev_actions: action that led to each step ``[B, T, A]``.
            is_first: bool ``[B, T, 1]``; the state is reset to zeros before a step where True.
            state: state ``[B]`` to continue from (default: initial state).
            sample: draw ``z_t`` (True, training and acting) or take the mean / mode (False, deterministic).

        Returns:
            posterior states ``[B, T]`` (``DETER``, ``STOCH``, ``MEAN``/``STD`` or ``LOGITS``). The prior
            at each step is ``self.prior(post[keys.DETER])`` (same ``h_t``).
        """
        b, t = embeds.shape[:2]
        if state is None:
            state = self.initial_state(b)
        w_z, w_a, w_h, w_e = self._split_weights()
        keep = (~is_first.bool()).to(embeds.dtype)  # [B,T,1]
        a_in = F.linear(prev_actions * keep, w_a, self.img_in.bias)  # [B,T,H]
        e_in = F.linear(embeds, w_e, self.post_in.bias)  # [B,T,H]
        noise = self._noise((b, t), embeds, sample)  # [B,T,S] or [B,T,G,K]
        if self.static_resets:
            resets = [True] * t
        else:
            resets = is_first.reshape(b, t).any(0).tolist()  # one sync, then no masking where not needed
        deter, stoch = state[keys.DETER], self._flat_stoch(state)
        deters, stochs, stats_all = [], [], []
        for i in range(t):
            if resets[i]:
                deter, stoch = deter * keep[:, i], stoch * keep[:, i]
            deter = self.gru(self.act(F.linear(stoch, w_z) + a_in[:, i]), deter)  # [B,D]
            stats = self.post_out(self.act(F.linear(deter, w_h) + e_in[:, i]))  # [B,stats]
            stoch = self._sample(stats, noise[:, i])
            deters.append(deter)
            stochs.append(stoch)
            stats_all.append(stats)
        out = self._tensor_state(torch.stack(deters, 1), torch.stack(stochs, 1), torch.stack(stats_all, 1))
        return TensorDict(out, batch_size=[b, t])

    def imagine(
        self,
        state: TensorDict,
        actions: Tensor | Callable[[Tensor], Tensor],
        horizon: int | None = None,
        sample: bool = True,
    ) -> TensorDict:
        """Prior rollout from ``state [N]`` for an action sequence ``[N, H, A]`` or a policy.

        Args:
            state: start states ``[N]``.
            actions: ``[N, H, A]`` tensor, or a policy ``features [N, F] -> action [N, A]``.
            horizon: H, required with a policy (ignored with a tensor, must match if given).
            sample: sample ``z`` from the prior (True) or take its mean / mode (False).

        Returns:
            ``[N, H]`` rows: ``ACTION`` a_h and the state s_{h+1} it leads to (start state excluded).
        """
        n = state.batch_size[0] if state.batch_dims == 1 else None
        if n is None:
            raise ValueError(f"imagine needs a start state with batch [N], got batch {list(state.batch_size)}.")
        w_z, w_a, _, _ = self._split_weights()
        policy = None
        if callable(actions) and not isinstance(actions, Tensor):
            policy = actions
            if horizon is None or horizon < 1:
                raise ValueError(f"imagine with a policy needs horizon >= 1, got {horizon}.")
            a_in = None
        else:
            if actions.dim() != 3 or actions.shape[0] != n or actions.shape[2] != self.action_dim:
                raise ValueError(
                    f"actions must have shape [{n}, H, {self.action_dim}], got {list(actions.shape)}."
                )
            if horizon is not None and horizon != actions.shape[1]:
                raise ValueError(f"horizon {horizon} does not match the actions' length {actions.shape[1]}.")
            horizon = actions.shape[1]
            a_in = F.linear(actions, w_a, self.img_in.bias)  # [N,H,hidden]
        deter, stoch = state[keys.DETER], self._flat_stoch(state)
        noise = self._noise((n, horizon), deter, sample)
        deters, stochs, stats_all, acts = [], [], [], []
        for i in range(horizon):
            if policy is not None:
                action = policy(torch.cat([deter, stoch], -1))
                acts.append(action)
                step_in = F.linear(action, w_a, self.img_in.bias)
            else:
                step_in = a_in[:, i]
            deter = self.gru(self.act(F.linear(stoch, w_z) + step_in), deter)
            stats = self.prior_net(deter)
            stoch = self._sample(stats, noise[:, i])
            deters.append(deter)
            stochs.append(stoch)
            stats_all.append(stats)
        out = self._tensor_state(torch.stack(deters, 1), torch.stack(stochs, 1), torch.stack(stats_all, 1))
        out[keys.ACTION] = torch.stack(acts, 1) if policy is not None else actions
        return TensorDict(out, batch_size=[n, horizon])
