"""Interface plumbing shared by the world models built on the RSSM (PlaNet, DreamerV2, LEXA).

The state is the RSSM's (``deter`` + ``stoch``); ``observe`` encodes every frame once and filters
with the posterior; ``imagine`` rolls the prior; ``embed_goal`` is the posterior of the goal image
from the initial state (LEXA's goal embedding). Every RSSM model declares ``has_embedding``: its
encoder embedding is exposed through ``embed`` / ``embed_dim`` / ``features_from_embed`` and its
``loss`` returns the batch's embeddings in ``LossOutput.embed``. Subclasses build ``self.rssm``,
``self.encoder`` and ``self.reward_head``, and implement ``_preprocess`` (uint8 frames -> network
input), ``decode`` and ``loss``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core import keys
from worldmodels.core.interface import Policy, WorldModel, check_shapes


class RSSMWorldModel(WorldModel):
    """A :class:`WorldModel` whose state, observation filter and imagination are an RSSM's."""

    has_embedding = True

    def _preprocess(self, frames: Tensor, noise: bool) -> Tensor:  # pragma: no cover - abstract
        """uint8 ``[N,C,H,W]`` -> float network input ``[N,C,H,W]`` (``noise``: training-time dequantisation)."""
        raise NotImplementedError

    def initial_state(self, batch_size: int) -> TensorDict:
        return self.rssm.initial_state(batch_size)

    def features(self, state: TensorDict) -> Tensor:
        return self.rssm.features(state)

    def _check_sequence(self, pixels: Tensor, prev_action: Tensor, is_first: Tensor) -> None:
        check_shapes(keys.PIXELS, pixels, [None, None, *self.image_shape], torch.uint8)
        b, t = pixels.shape[:2]
        check_shapes(keys.PREV_ACTION, prev_action, [b, t, self.action_dim])
        check_shapes(keys.IS_FIRST, is_first, [b, t, 1], torch.bool)

    def _embed(self, pixels: Tensor, noise: bool = False) -> tuple[Tensor, Tensor]:
        """uint8 ``[B,T,C,H,W]`` -> (preprocessed frames ``[B*T,C,H,W]``, embeddings ``[B,T,E]``)."""
        b, t = pixels.shape[:2]
        frames = self._preprocess(pixels.reshape(b * t, *self.image_shape), noise)
        return frames, self.encoder(frames).reshape(b, t, -1)

    def observe(
        self, pixels: Tensor, prev_action: Tensor, is_first: Tensor, state: TensorDict | None = None
    ) -> TensorDict:
        """Posterior states ``[B, T]`` (sampled stochastic parts); see :class:`WorldModel`."""
        self._check_sequence(pixels, prev_action, is_first)
        _, embed = self._embed(pixels)
        return self.rssm.observe(embed, prev_action, is_first, state)

    def imagine(self, state: TensorDict, actions: Tensor | Policy, horizon: int | None = None) -> TensorDict:
        return self.rssm.imagine(state, actions, horizon)

    @property
    def embed_dim(self) -> int:
        """E, size of the encoder embedding of one image."""
        return self.encoder.output_dim

    def embed(self, pixels: Tensor) -> Tensor:
        """Encoder embeddings of images (LEXA's e_g for goal images). Shapes: uint8 ``[..., C, H, W]`` -> ``[..., E]``."""
        lead = pixels.shape[:-3]
        check_shapes("pixels", pixels, [*lead, *self.image_shape], torch.uint8)
        return self._embed(pixels.reshape(-1, 1, *self.image_shape))[1].reshape(*lead, -1)

    def features_from_embed(self, embed: Tensor, sample: bool = True) -> Tensor:
        """Features of the posterior from the initial state, a zero action and image embeddings ``[N, E]``
        (LEXA ``get_init_feat_embed``); ``sample=False`` takes the posterior mean / mode instead of a
        sample, as LEXA's achiever does (``sample=False`` is its default). Shapes: ``[N, E]`` -> ``[N, F]``."""
        n = embed.shape[0]
        zeros = torch.zeros(n, 1, self.action_dim, device=embed.device, dtype=embed.dtype)
        first = torch.ones(n, 1, 1, dtype=torch.bool, device=embed.device)
        return self.features(self.rssm.observe(embed[:, None], zeros, first, sample=sample))[:, 0]

    def embed_goal(self, pixels: Tensor) -> Tensor:
        """Features of the posterior of the goal image from the initial state (LEXA's goal embedding)."""
        check_shapes("goal pixels", pixels, [None, *self.image_shape], torch.uint8)
        return self.features_from_embed(self.embed(pixels))

    def reward(self, state: TensorDict) -> Tensor:
        """Mean of the reward head, ``[..., 1]``."""
        return self.reward_head(self.features(state))
