"""Latent distributions of the RSSM as pure functions on tensors.

Diagonal Gaussians (PlaNet, LEXA) are described by ``(mean, std)``; grouped one-hot categoricals
(DreamerV2: 32 groups of 32 classes) by ``logits [..., groups, classes]``. Everything here is a
plain function so that it can be checked against hand-computed numbers
(``tests/test_distributions.py``).

KL conventions (``shared/reference/methods.md``):

* PlaNet: KL summed over latent dims, then ``max(KL, free)`` per time step and sequence, then
  averaged (:func:`kl_free_nats`).
* DreamerV2 KL balancing (Hafner et al. 2021, Eq. 5 / ``nets.py::RSSM.kl_loss``), sg = stop-gradient::

      rep = KL(q || sg(p))      # trains the posterior / encoder
      dyn = KL(sg(q) || p)      # trains the prior / dynamics
      L   = (1 - alpha) * max(mean(rep), free) + alpha * max(mean(dyn), free)

  with ``free_avg=True`` (average, then clamp); ``free_avg=False`` clamps each element first.
  ``alpha == 0.5`` falls back to the plain ``max(mean(KL(q || p)), free)`` (:func:`kl_balanced`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core import keys


# ------------------------------------------------------------------------- Gaussian


def gaussian_params(stats: Tensor, min_std: float) -> tuple[Tensor, Tensor]:
    """Split a head's output into ``mean`` and ``std = softplus(raw) + min_std`` (PlaNet ``rssm.py``).

    Shapes:
        ``stats [..., 2S] -> (mean [..., S], std [..., S])``.
    """
    mean, raw = stats.chunk(2, dim=-1)
    return mean, F.softplus(raw) + min_std


def gaussian_kl(mean_q: Tensor, std_q: Tensor, mean_p: Tensor, std_p: Tensor) -> Tensor:
    """Closed-form ``KL(N(mean_q, std_q^2) || N(mean_p, std_p^2))`` summed over the last dim.

    ``KL = sum_i [ log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2 ]``.

    Shapes:
        all inputs ``[..., S]`` -> ``[...]``.
    """
    var_ratio = (std_q / std_p).pow(2)
    mahal = ((mean_q - mean_p) / std_p).pow(2)
    return 0.5 * (var_ratio + mahal - 1.0 - var_ratio.log()).sum(-1)


# ------------------------------------------------------------------------- categorical


def categorical_kl(logits_q: Tensor, logits_p: Tensor) -> Tensor:
    """``KL(q || p)`` of independent one-hot categoricals, summed over groups (DreamerV2 ``Independent(., 1)``).

    ``KL = sum_g sum_k q_gk (log q_gk - log p_gk)``.

    Shapes:
        ``[..., G, K]`` -> ``[...]``.
    """
    log_q = logits_q.log_softmax(-1)
    log_p = logits_p.log_softmax(-1)
    return (log_q.exp() * (log_q - log_p)).sum((-2, -1))


def onehot_straight_through(logits: Tensor, gumbel: Tensor | None = None) -> Tensor:
    """Straight-through one-hot sample (DreamerV2 ``OneHotDist.sample``): ``onehot + probs - sg(probs)``.

    The forward value is an exact one-hot sample; the gradient is that of ``probs``. Sampling uses the
    Gumbel-max trick so that noise can be drawn ahead of a time loop (``gumbel`` = ``-log(-log U)``).

    Shapes:
        ``logits [..., G, K]`` (and ``gumbel`` of the same shape) -> ``[..., G, K]``.
    """
    if gumbel is None:
        gumbel = gumbel_noise(logits.shape, logits.device, logits.dtype)
    index = (logits.detach() + gumbel).argmax(-1, keepdim=True)
    onehot = torch.zeros_like(logits).scatter_(-1, index, 1.0)
    probs = logits.softmax(-1)
    return onehot + probs - probs.detach()


def gumbel_noise(shape: torch.Size | tuple[int, ...], device=None, dtype=torch.float32) -> Tensor:
    """Standard Gumbel noise ``-log(-log U)``, U ~ Uniform(0, 1), clamped away from 0 and 1."""
    u = torch.rand(shape, device=device, dtype=dtype).clamp_(1e-6, 1.0 - 1e-6)
    return -(-u.log()).log()


# ------------------------------------------------------------------------- KL losses


def state_kl(post: TensorDict, prior: TensorDict) -> Tensor:
    """``KL(post || prior)`` for RSSM states holding ``MEAN``/``STD`` (Gaussian) or ``LOGITS`` (categorical).

    Shapes:
        states with batch ``[...]`` -> ``[...]``.
    """
    if keys.LOGITS in post.keys():
        return categorical_kl(post[keys.LOGITS], prior[keys.LOGITS])
    return gaussian_kl(post[keys.MEAN], post[keys.STD], prior[keys.MEAN], prior[keys.STD])


def kl_free_nats(kl: Tensor, free: float) -> Tensor:
    """PlaNet free nats: ``mean(max(KL, free))`` with the clamp per time step and sequence.

    Args:
        kl: KL already summed over latent dims, ``[B, T]`` (any shape).
        free: free nats (PlaNet: 3.0).

    Returns:
        scalar.
    """
    return kl.clamp(min=free).mean()


class KLOutput(NamedTuple):
    """What :func:`kl_balanced` returns."""

    loss: Tensor
    """scalar KL loss with balancing and free nats applied"""
    value: Tensor
    """scalar ``mean(KL(q || p))`` without stop-gradients or clamps (for metrics)"""


def _detached(state: TensorDict) -> TensorDict:
    return state.detach()


def kl_balanced(
    post: TensorDict, prior: TensorDict, alpha: float = 0.8, free: float = 1.0, free_avg: bool = True
) -> KLOutput:
    """DreamerV2 KL balancing (Hafner et al. 2021, Sec. 2.2 / ``RSSM.kl_loss``), Gaussian or categorical.

    ``L = (1 - alpha) * max(mean(KL(q || sg(p))), free) + alpha * max(mean(KL(sg(q) || p)), free)``;
    with ``free_avg=False`` the clamp is applied per element before the mean. ``alpha = 0.5`` is
    the plain ``max(mean(KL(q || p)), free)`` (same value and gradient).

    Args:
        post: posterior states q (``MEAN``/``STD`` or ``LOGITS``), batch ``[...]``.
        prior: prior states p, same batch.
        alpha: weight of the dynamics term (DreamerV2: 0.8).
        free: free nats (DreamerV2 DMC: 1.0; Atari: 0.0).
        free_avg: clamp after averaging (DreamerV2 default True).

    Returns:
        :class:`KLOutput` ``(loss, value)``, both scalars.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"KL balance alpha must be in [0, 1], got {alpha}.")

    def clamp_mean(kl: Tensor) -> Tensor:
        return kl.mean().clamp(min=free) if free_avg else kl.clamp(min=free).mean()

    kl = state_kl(post, prior)
    if alpha == 0.5:
        return KLOutput(clamp_mean(kl), kl.detach().mean())
    rep = state_kl(post, _detached(prior))  # trains the posterior
    dyn = state_kl(_detached(post), prior)  # trains the prior
    loss = (1.0 - alpha) * clamp_mean(rep) + alpha * clamp_mean(dyn)
    return KLOutput(loss, kl.detach().mean())
