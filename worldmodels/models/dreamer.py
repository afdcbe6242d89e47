"""DreamerV2 world model (Hafner et al., "Mastering Atari with Discrete World Models", ICLR 2021).

RSSM with 32 categorical latents of 32 classes (straight-through samples, ``worldmodels/rssm.py``),
LayerNorm GRU, ELU; ``conv_ha`` encoder/decoder (DreamerV2 kernels [4,4,4,4] / [5,5,6,6], depth 48);
reward head and optional discount (continuation) head, MLPs 4 x 400. Sizes default to the released
``dmc_vision`` config (deter 200, hidden 200). The loss (``agent.py::WorldModel.loss``)::

    L = -ln p(o_t | s_t) - reward_scale ln p(r_t | s_t) - discount_scale ln p(c_t | s_t) + kl_scale L_kl
    L_kl = (1 - alpha) max(mean KL(q || sg(p)), free) + alpha max(mean KL(sg(q) || p), free)

with unit-variance Gaussian image and reward likelihoods (summed over pixels; constants dropped, so
``loss/image`` is ``0.5 * sum (x - x_hat)^2`` per frame; the observation vector, when observed, adds
``proprio_scale * loss/proprio``, ``0.5 * sum (v - v_hat)^2`` per step: DreamerV2's ``dist: mse`` MLP head),
a Bernoulli continuation ``c_t = 1 -
is_terminal_t``, KL balancing alpha = 0.8 and free nats after averaging (``free_avg``; methods.md
section 3.1, :func:`worldmodels.models.distributions.kl_balanced`). Images are ``x / 255 - 0.5`` (DreamerV2
``preprocess``); :meth:`DreamerV2.decode` returns ``[0, 1]``.

Differences from the released TF code, on purpose: the feature order is ``cat(deter, stoch)`` (the
shared RSSM's; DreamerV2 uses ``cat(stoch, deter)``, a permutation); a Gaussian latent (``classes =
0``, LEXA's choice) uses the shared RSSM's ``softplus + min_std`` std instead of ``sigmoid2``; the
discount head is trained on ``1 - is_terminal`` (a probability) and the actor-critic multiplies it by
gamma, where DreamerV2 trains on ``gamma * (1 - is_terminal)`` and uses the mean directly (same product).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, LossOutput, check_shapes
from worldmodels.core.config import DreamerConfig
from worldmodels.models.distributions import KLOutput, kl_balanced
from worldmodels.models.init import initialize
from worldmodels.models.networks import MLP
from worldmodels.models.rssm import RSSM, Categorical, Gaussian
from worldmodels.models.rssm_world_model import RSSMWorldModel


def preprocess(pixels: Tensor) -> Tensor:
    """uint8 pixels -> float ``x / 255 - 0.5`` in ``[-0.5, 0.5]`` (DreamerV2 ``WorldModel.preprocess``).

    Shapes:
        ``[..., C, H, W]`` uint8 -> same shape float32.
    """
    return pixels.to(torch.float32).div_(255.0).sub_(0.5)


def postprocess(images: Tensor) -> Tensor:
    """Decoder mean in ``[-0.5, 0.5]`` -> image in ``[0, 1]`` (``x + 0.5`` clamped)."""
    return (images + 0.5).clamp(0.0, 1.0)


class DreamerV2(RSSMWorldModel):
    """DreamerV2 world model implementing :class:`worldmodels.core.interface.WorldModel`.

    Args:
        config: :class:`DreamerConfig` (DreamerV2 ``dmc_vision`` defaults).
        action_dim: A.
        image_shape: ``(C, H, W)`` of the env's pixels; ``conv_ha`` needs ``H = W = 64``.
        observation: ``pixels`` (``dmc_vision``) | ``proprio`` (the DMC observation vector, ``dmc_proprio``:
            MLP encoder/decoder 4 x 400; no symlog as in DreamerV2 unless ``proprio_symlog``) | ``both`` (embeddings concatenated).
        proprio_dim: P, size of ``keys.PROPRIO`` (needed unless ``observation == "pixels"``).

    Capabilities: ``has_embedding`` (every RSSM model); ``has_continuation`` exactly when
    ``config.pred_discount`` (the discount head exists): :meth:`continuation` then predicts the
    probability of not terminating and the actor-critic discounts with it; ``has_reward`` unless
    ``config.reward_scale == 0`` (LEXA).

    Example:
        >>> model = DreamerV2(DreamerConfig(), action_dim=6)
        >>> opt = make_model_optimizer(model.config, model)  # worldmodels.methods
        >>> out = model.loss(batch)                     # batch [B, T] of replay rows
        >>> opt.zero_grad(); out.loss.backward()
        >>> torch.nn.utils.clip_grad_norm_(model.parameters(), model.config.grad_clip); opt.step()
        >>> ac.update(out)                              # planners.actor_critic
    """

    has_decoder = True
    has_reward = True

    def __init__(
        self,
        config: DreamerConfig,
        action_dim: int,
        image_shape: tuple[int, int, int] = (3, 64, 64),
        observation: str = "pixels",
        proprio_dim: int = 0,
    ):
        super().__init__()
        self.config = config
        self.action_dim = action_dim
        self.has_continuation = config.pred_discount
        self.has_reward = config.reward_scale > 0  # a head trained with scale 0 (LEXA) predicts nothing
        act = config.activation
        if config.classes > 0:
            stoch = Categorical(classes=config.classes, groups=config.stoch_dim)
        else:
            stoch = Gaussian(config.stoch_dim, config.min_std)
        embed_dim = self._build_observation_model(
            observation, image_shape, proprio_dim, config.cnn_depth, config.proprio_units, config.proprio_layers, act,
            config.proprio_symlog,
        )
        self.rssm = RSSM(action_dim, embed_dim, config.deter_dim, stoch, config.hidden_dim, act, layer_norm=True)
        self.feature_dim = self.rssm.feature_dim
        self._build_decoders(self.feature_dim)
        self.reward_head = MLP(self.feature_dim, 1, config.mlp_units, config.mlp_layers, act)
        self.discount_head = (
            MLP(self.feature_dim, 1, config.mlp_units, config.mlp_layers, act) if config.pred_discount else None
        )
        initialize(self, config.init)

    # ------------------------------------------------------------------ interface

    def _preprocess(self, frames: Tensor, noise: bool) -> Tensor:
        return preprocess(frames)

    def continuation(self, state: TensorDict) -> Tensor:
        """Probability of *not* terminating, ``[..., 1]`` in [0, 1] (DreamerV2 discount head mean / gamma).

        Raises:
            CapabilityError: the model was built with ``pred_discount = False`` (DMC default).
        """
        if self.discount_head is None:
            raise CapabilityError(
                "DreamerV2 has no continuation head (has_continuation=False); build it with model.pred_discount=true."
            )
        return torch.sigmoid(self.discount_head(self.features(state)))

    # ------------------------------------------------------------------ training

    def kl_loss(self, post: TensorDict, prior: TensorDict) -> KLOutput:
        """Balanced KL with this config: ``kl_scale * kl_balanced(post, prior, kl_balance, kl_free, free_avg=True)``.

        Returns:
            :class:`KLOutput` ``(loss, value)``: the scaled loss and the mean raw KL (nats).
        """
        cfg = self.config
        out = kl_balanced(post, prior, alpha=cfg.kl_balance, free=cfg.kl_free, free_avg=True)
        return KLOutput(cfg.kl_scale * out.loss, out.value)

    def loss(self, batch: TensorDict) -> LossOutput:
        """DreamerV2 world-model loss (module docstring) on a ``[B, T]`` batch of replay rows.

        Metrics: ``loss/image``, ``loss/reward``, ``loss/kl`` (balanced, free nats, scaled),
        ``loss/discount`` (only with ``pred_discount``), ``loss/total``, ``kl/raw`` (mean
        KL(q || p) in nats), ``entropy/prior``, ``entropy/posterior`` (categorical latents).
        """
        cfg = self.config
        prev_action, reward, is_first = batch[keys.PREV_ACTION], batch[keys.REWARD], batch[keys.IS_FIRST]
        tensors = self._observations(batch, prev_action, is_first)
        b, t = prev_action.shape[:2]
        check_shapes(keys.REWARD, reward, [b, t, 1])

        targets, embed = self._embed(tensors)  # frames [B*T,C,H,W] / vector [B,T,P]; [B,T,E]
        post = self.rssm.observe(embed, prev_action, is_first)  # [B,T]
        prior = self.rssm.prior(post[keys.DETER])  # [B,T] statistics of p(z_t | h_t)
        feats = self.features(post)  # [B,T,F]

        recon = self._reconstruction(targets, feats)  # loss/image and/or loss/proprio
        reward_loss = 0.5 * (self.reward_head(feats) - reward).pow(2).mean()
        kl = self.kl_loss(post, prior)
        metrics = {**recon, "loss/reward": reward_loss, "loss/kl": kl.loss, "kl/raw": kl.value}
        scales = {"loss/image": 1.0, "loss/proprio": cfg.proprio_scale}
        total = sum(scales[k] * v for k, v in recon.items()) + cfg.reward_scale * reward_loss + kl.loss
        if self.discount_head is not None:
            check_shapes(keys.IS_TERMINAL, batch[keys.IS_TERMINAL], [b, t, 1], torch.bool)
            target = 1.0 - batch[keys.IS_TERMINAL].to(feats.dtype)  # [B,T,1]
            discount_loss = F.binary_cross_entropy_with_logits(self.discount_head(feats), target)
            metrics["loss/discount"] = discount_loss
            total = total + cfg.discount_scale * discount_loss
        if self.rssm.categorical:
            with torch.no_grad():
                metrics["entropy/prior"] = _categorical_entropy(prior[keys.LOGITS]).mean()
                metrics["entropy/posterior"] = _categorical_entropy(post[keys.LOGITS]).mean()
        metrics["loss/total"] = total
        metrics_td = TensorDict({k: v.detach() for k, v in metrics.items()}, batch_size=[])
        return LossOutput(total, metrics_td, post.detach(), embed.detach() if self.has_embedding else None)



def _categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy of independent categoricals summed over groups. Shapes: ``[..., G, K] -> [...]``."""
    log_p = logits.log_softmax(-1)
    return -(log_p.exp() * log_p).sum((-2, -1))


__all__ = ["DreamerV2", "preprocess", "postprocess"]
