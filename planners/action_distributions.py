"""Action distributions of imagination actors (DreamerV2 ``common/dists.py``, ``nets.py::DistLayer``).

Both are diagonal over the last (action) dimension: ``log_prob`` and ``entropy`` sum over it.
``rsample`` is reparameterised (gradients reach the parameters), ``mode`` is deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class TruncatedNormal:
    """Diagonal Normal(loc, scale) truncated to [low, high], summed over the last (action) dim.

    Reparameterised by the inverse CDF: ``x = loc + scale * Phi^-1(Phi(alpha) + u (Phi(beta) -
    Phi(alpha)))`` with ``u ~ U(0, 1)``. Samples are clipped to ``[low + clip, high - clip]`` with a
    straight-through gradient, as DreamerV2's ``common/dists.py::TruncNormalDist`` (clip 1e-6).

    Shapes:
        loc, scale ``[..., A]``; ``rsample() -> [..., A]``; ``log_prob(x)``, ``entropy() -> [...]``.
    """

    def __init__(self, loc: Tensor, scale: Tensor, low: float = -1.0, high: float = 1.0, clip: float = 1e-6):
        self.loc, self.scale, self.low, self.high, self.clip = loc, scale, low, high, clip
        self.alpha = (low - loc) / scale
        self.beta = (high - loc) / scale
        self.cdf_alpha = torch.special.ndtr(self.alpha)
        self.mass = (torch.special.ndtr(self.beta) - self.cdf_alpha).clamp_min(1e-8)  # Z

    @property
    def mode(self) -> Tensor:
        return self.loc.clamp(self.low, self.high)

    def rsample(self) -> Tensor:
        u = torch.rand_like(self.loc)
        p = (self.cdf_alpha + u * self.mass).clamp(1e-7, 1 - 1e-7)
        x = self.loc + self.scale * torch.special.ndtri(p)
        clipped = x.clamp(self.low + self.clip, self.high - self.clip)
        return x + (clipped - x).detach()

    def log_prob(self, x: Tensor) -> Tensor:
        z = (x - self.loc) / self.scale
        return (-0.5 * z**2 - _LOG_SQRT_2PI - self.scale.log() - self.mass.log()).sum(-1)

    def entropy(self) -> Tensor:
        def pdf(v: Tensor) -> Tensor:
            return torch.exp(-0.5 * v**2 - _LOG_SQRT_2PI)

        # H = log(sqrt(2 pi e) sigma Z) + (alpha phi(alpha) - beta phi(beta)) / (2 Z)
        ent = _LOG_SQRT_2PI + 0.5 + self.scale.log() + self.mass.log()
        ent = ent + (self.alpha * pdf(self.alpha) - self.beta * pdf(self.beta)) / (2 * self.mass)
        return ent.sum(-1)


class TanhNormal:
    """tanh(Normal(mean, std)) per action dim, summed over the last dim (DreamerV2 ``tanh_normal``:
    mean = 5 tanh(mu / 5), std = softplus(s) + min_std). Entropy is a one-sample estimate
    ``-log pi(a)``; the mode is ``tanh(mean)``."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean, std
        self.base = torch.distributions.Normal(mean, std)

    @property
    def mode(self) -> Tensor:
        return torch.tanh(self.mean)

    def rsample(self) -> Tensor:
        return torch.tanh(self.base.rsample())

    def log_prob(self, x: Tensor) -> Tensor:
        x = x.clamp(-0.99999997, 0.99999997)
        pre = torch.atanh(x)
        log_det = 2.0 * (math.log(2.0) - pre - nn.functional.softplus(-2.0 * pre))  # log |d tanh / d pre|
        return (self.base.log_prob(pre) - log_det).sum(-1)

    def entropy(self) -> Tensor:
        pre = self.base.rsample()
        log_det = 2.0 * (math.log(2.0) - pre - nn.functional.softplus(-2.0 * pre))
        return -(self.base.log_prob(pre) - log_det).sum(-1)
