"""PlaNet world model (Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019).

Gaussian RSSM (deter 200, stoch 30, hidden 200, min std 0.1, ReLU), ``conv_ha`` encoder/decoder
(depth 32), reward MLP (3 x 300). The training objective is the negative variational bound
(paper Eq. 3) with free nats and scales from the released configs::

    L = E_t[ -ln p(o_t | s_t) ] + reward_scale * E_t[ -ln p(r_t | s_t) ]
        + kl_scale * mean_{b,t} max(KL(q(s_t | s_{t-1}, a_{t-1}, o_t) || p(s_t | s_{t-1}, a_{t-1})), free_nats)

with unit-variance Gaussian likelihoods (summed over pixels; additive constants dropped, so
``loss/image`` is ``0.5 * sum (x - x_hat)^2`` per frame; with ``env.observation`` proprio or both, the
observation vector's ``loss/proprio = 0.5 * sum (v - v_hat)^2`` per step joins or replaces it).
Images are quantised to ``image_bits``
with uniform dequantisation noise (PlaNet ``tools/preprocess.py``, as in Glow, Kingma & Dhariwal
2018, Sec. 5; see :func:`preprocess`). Latent overshooting (paper Eq. 7) is an option, see
:meth:`PlaNet.overshooting_kl`.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core import keys
from worldmodels.core.interface import LossOutput, check_shapes
from worldmodels.core.config import PlaNetConfig
from worldmodels.models.distributions import gaussian_kl, gaussian_params, kl_free_nats
from worldmodels.models.init import initialize
from worldmodels.models.networks import MLP
from worldmodels.models.rssm import RSSM, Gaussian
from worldmodels.models.rssm_world_model import RSSMWorldModel


def preprocess(pixels: Tensor, bits: int, noise: bool = True) -> Tensor:
    """uint8 pixels -> float in ``[-0.5, 0.5)``: quantise to ``bits`` and dequantise (PlaNet ``preprocess``).

    ``x = floor(p / 2**(8 - bits)) / 2**bits + u - 0.5`` with ``u ~ U(0, 1 / 2**bits)`` (uniform
    dequantisation noise, Glow Sec. 5 / PlaNet ``tools/preprocess.py``). Without ``noise`` ``u`` is
    its mean ``0.5 / 2**bits`` (the bin centre; used when acting, so beliefs are deterministic).

    Shapes:
        ``[..., C, H, W]`` uint8 -> same shape float32 (``channels_last`` when 4-D).
    """
    bins = 2**bits
    index = pixels >> (8 - bits)  # uint8 bin index 0..bins-1
    fmt = torch.channels_last if pixels.dim() == 4 else torch.contiguous_format
    x = torch.empty(pixels.shape, dtype=torch.float32, device=pixels.device, memory_format=fmt)
    # (index + u) / bins - 0.5 == (index + (u - bins/2)) / bins: 3 in-place passes, one allocation
    if noise:
        x.uniform_(-0.5 * bins, 1.0 - 0.5 * bins).add_(index)
    else:
        x.copy_(index).add_(0.5 - 0.5 * bins)
    return x.mul_(1.0 / bins)


def postprocess(images: Tensor) -> Tensor:
    """Decoder mean in ``[-0.5, 0.5]`` -> image in ``[0, 1]`` (``x + 0.5`` clamped)."""
    return (images + 0.5).clamp(0.0, 1.0)


class PlaNet(RSSMWorldModel):
    """PlaNet world model implementing :class:`worldmodels.core.interface.WorldModel`.

    Args:
        config: :class:`PlaNetConfig` (paper defaults).
        action_dim: A.
        image_shape: ``(C, H, W)`` of the env's pixels; ``conv_ha`` needs ``H = W = 64``.
        observation: ``pixels`` | ``proprio`` (the DMC observation vector, MLP encoder/decoder of
            ``proprio_layers x proprio_units``; ours, PlaNet has none) | ``both`` (embeddings concatenated).
        proprio_dim: P, size of ``keys.PROPRIO`` (needed unless ``observation == "pixels"``).

    Example:
        >>> model = PlaNet(PlaNetConfig(), action_dim=6)
        >>> out = model.loss(batch)                       # batch [B, T] of replay rows
        >>> out.loss.backward()
        >>> imag = model.imagine(out.posterior[:, -1], actions)   # [B, H]
        >>> model.reward(imag).shape                      # [B, H, 1]
    """

    has_decoder = True
    has_reward = True

    def __init__(
        self,
        config: PlaNetConfig,
        action_dim: int,
        image_shape: tuple[int, int, int] = (3, 64, 64),
        observation: str = "pixels",
        proprio_dim: int = 0,
    ):
        super().__init__()
        self.config = config
        self.action_dim = action_dim
        embed_dim = self._build_observation_model(
            observation, image_shape, proprio_dim, config.cnn_depth, config.proprio_units, config.proprio_layers,
            config.activation, config.proprio_symlog,
        )  # fmt: skip
        self.rssm = RSSM(
            action_dim,
            embed_dim,
            config.deter_dim,
            Gaussian(config.stoch_dim, config.min_std),
            config.hidden_dim,
            config.activation,
        )
        self.feature_dim = self.rssm.feature_dim
        self._build_decoders(self.feature_dim)
        self.reward_head = MLP(self.feature_dim, 1, config.reward_units, config.reward_layers, config.activation)
        initialize(self, config.init)

    # ------------------------------------------------------------------ interface

    def _preprocess(self, frames: Tensor, noise: bool) -> Tensor:
        return preprocess(frames, self.config.image_bits, noise)

    # ------------------------------------------------------------------ training

    def loss(self, batch: TensorDict) -> LossOutput:
        """Negative ELBO with free nats (module docstring) on a ``[B, T]`` batch.

        Metrics: ``loss/image``, ``loss/reward``, ``loss/kl`` (after free nats and scale), ``kl/raw``
        (mean KL in nats before the clamp), ``loss/overshooting`` (if enabled), ``loss/total``.
        """
        cfg = self.config
        prev_action, reward, is_first = batch[keys.PREV_ACTION], batch[keys.REWARD], batch[keys.IS_FIRST]
        tensors = self._observations(batch, prev_action, is_first)
        b, t = prev_action.shape[:2]
        check_shapes(keys.REWARD, reward, [b, t, 1])

        targets, embed = self._embed(tensors, noise=True)  # frames [B*T,C,H,W] / vector [B,T,P]; [B,T,E]
        post = self.rssm.observe(embed, prev_action, is_first)
        prior = self.rssm.prior(post[keys.DETER])
        feats = self.features(post)  # [B,T,F]

        recon = self._reconstruction(targets, feats)  # loss/image and/or loss/proprio
        reward_loss = 0.5 * (self.reward_head(feats) - reward).pow(2).mean()
        kl = gaussian_kl(post[keys.MEAN], post[keys.STD], prior[keys.MEAN], prior[keys.STD])  # [B,T]
        kl_loss = cfg.kl_scale * kl_free_nats(kl, cfg.free_nats)

        metrics = {**recon, "loss/reward": reward_loss, "kl/raw": kl.mean()}
        if cfg.overshooting_distance > 1:
            over = self.overshooting_kl(post, prev_action, is_first)
            metrics["loss/overshooting"] = over
            kl_loss = (kl_loss + cfg.overshooting_scale * over) / cfg.overshooting_distance
        metrics["loss/kl"] = kl_loss
        total = sum(recon.values()) + cfg.reward_scale * reward_loss + kl_loss
        metrics["loss/total"] = total
        metrics_td = TensorDict({k: v.detach() for k, v in metrics.items()}, batch_size=[])
        return LossOutput(total, metrics_td, post.detach(), embed.detach() if self.has_embedding else None)

    def overshooting_kl(self, post: TensorDict, prev_action: Tensor, is_first: Tensor) -> Tensor:
        """Latent overshooting KL terms for distances d = 2..D (PlaNet paper Eq. 7).

        Eq. 7 bounds ``(1/D) sum_{d=1}^{D} [ ln p(o_t|s_t) - beta_d E_{p(s_{t-1}|s_{t-d}) q(s_{t-d})}
        KL(q(s_t | o_<=t, a_<t) || p(s_t | s_{t-1}, a_{t-1})) ]``. Here the prior is rolled out ``d`` steps
        (sampling) from the posterior at every ``t - d`` and compared with the posterior at ``t``, which
        gets no gradient for ``d > 1`` ("we stop gradients of the posterior distributions for overshooting
        distances d > 1"). Pairs that cross an episode start (``is_first`` in ``(t-d, t]``) or the
        sequence end are excluded. The loss combines
        ``(kl_scale * KL_1 + overshooting_scale * sum_{d=2}^{D} KL_d) / D``, so ``D = 1`` is the standard term.

        Returns:
            scalar ``sum_{d=2}^{D} mean_valid max(KL_d, free_nats)``.
        """
        cfg, rssm = self.config, self.rssm
        b, t = prev_action.shape[:2]
        target = post.detach()
        firsts = is_first.reshape(b, t).to(torch.int64).cumsum(1)  # [B,T] episode counter
        deter, stoch = post[keys.DETER], post[keys.STOCH]  # [B,T,.]: d-1 steps from start t0, at t0+d-1
        total = prev_action.new_zeros(())
        for d in range(1, min(cfg.overshooting_distance, t - 1) + 1):
            # start t0 in [0, T-d): step d applies prev_action[t0 + d] and is compared with posterior[t0 + d]
            deter, stats, stoch = rssm.prior_tensors(
                deter[:, : t - d].flatten(0, 1), stoch[:, : t - d].flatten(0, 1), prev_action[:, d:].flatten(0, 1)
            )
            deter, stats, stoch = (x.unflatten(0, (b, t - d)) for x in (deter, stats, stoch))
            if d >= 2:
                mean, std = gaussian_params(stats, rssm.stoch.min_std)
                kl = gaussian_kl(target[keys.MEAN][:, d:], target[keys.STD][:, d:], mean, std)  # [B,T-d]
                valid = (firsts[:, d:] == firsts[:, : t - d]).to(kl.dtype)
                total = total + (kl.clamp(min=cfg.free_nats) * valid).sum() / valid.sum().clamp(min=1.0)
        return total
