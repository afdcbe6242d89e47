"""Interface plumbing shared by the world models built on the RSSM (PlaNet, DreamerV2, LEXA).

The state is the RSSM's (``deter`` + ``stoch``); ``observe`` encodes every observation once and filters
with the posterior; ``imagine`` rolls the prior; ``embed_goal`` is the posterior of the goal image
from the initial state (LEXA's goal embedding).

Observations (``env.observation``): ``pixels`` (conv encoder/decoder), ``proprio`` (the DMC observation
vector ``keys.PROPRIO``: MLP encoder/decoder, DreamerV2 ``dmc_proprio``) or ``both``; with both the
embedding is ``cat(conv(pixels), mlp(proprio))`` (DreamerV2 ``Encoder.__call__``) and the decoders
reconstruct each. Only a pixels-only model declares ``has_embedding`` (its embedding is of images, so
goal images can be embedded): ``embed`` / ``embed_dim`` / ``features_from_embed`` and ``LossOutput.embed``.
A model without an image decoder declares ``has_decoder = False`` (viz then uses a probe).

Subclasses call :meth:`_build_observation_model` and build ``self.rssm`` and ``self.reward_head``,
and implement ``_preprocess`` (uint8 frames -> network input) and ``loss`` (with
:meth:`_reconstruction`).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, Policy, WorldModel, check_shapes, observation_tensors
from worldmodels.models.networks import MLP, ConvDecoder, ConvEncoder, VectorEncoder

OBSERVATIONS = ("pixels", "proprio", "both")
"""What an RSSM model can observe (``env.observation``)."""


def symlog(x: Tensor) -> Tensor:
    """``sign(x) ln(1 + |x|)`` (DreamerV3, Hafner et al. 2023, Eq. 9)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: ``sign(x) (exp|x| - 1)``."""
    return torch.sign(x) * torch.expm1(x.abs())


class RSSMWorldModel(WorldModel):
    """A :class:`WorldModel` whose state, observation filter and imagination are an RSSM's."""

    has_embedding = True

    def _preprocess(self, frames: Tensor, noise: bool) -> Tensor:  # pragma: no cover - abstract
        """uint8 ``[N,C,H,W]`` -> float network input ``[N,C,H,W]`` (``noise``: training-time dequantisation)."""
        raise NotImplementedError

    def _build_observation_model(
        self,
        observation: str,
        image_shape: tuple[int, int, int],
        proprio_dim: int,
        cnn_depth: int,
        proprio_units: int,
        proprio_layers: int,
        activation: str,
        proprio_symlog: bool = False,
    ) -> int:
        """Build the encoders (``encoder`` conv, ``proprio_encoder`` MLP) for ``observation``; -> embedding size E.

        The decoders need the feature size, so :meth:`_build_decoders` follows once the RSSM exists.
        """
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {', '.join(OBSERVATIONS)}, got {observation!r}.")
        if observation != "pixels" and proprio_dim < 1:
            raise ValueError(
                f"observation {observation!r} needs the size of the observation vector (proprio_dim >= 1), got "
                f"{proprio_dim}; build the env with env.observation: {observation} so it emits keys.PROPRIO."
            )
        self.observation = observation
        self.image_shape = tuple(image_shape)
        self.proprio_dim = int(proprio_dim) if observation != "pixels" else 0
        self._proprio_units, self._proprio_layers, self._activation = proprio_units, proprio_layers, activation
        self._cnn_depth = cnn_depth
        self.proprio_symlog = bool(proprio_symlog)
        reads_pixels = observation in ("pixels", "both")
        self.encoder = ConvEncoder(self.image_shape, cnn_depth, activation) if reads_pixels else None
        self.proprio_encoder = (
            VectorEncoder(self.proprio_dim, proprio_units, proprio_layers, activation) if self.proprio_dim else None
        )
        self.has_embedding = observation == "pixels"
        self.has_decoder = reads_pixels
        shapes: dict[str, tuple[int, ...]] = {}
        if reads_pixels:
            shapes[keys.PIXELS] = self.image_shape
        if self.proprio_dim:
            shapes[keys.PROPRIO] = (self.proprio_dim,)
        self._observation_shapes = shapes
        return sum(m.output_dim for m in (self.encoder, self.proprio_encoder) if m is not None)

    def _build_decoders(self, feature_dim: int) -> None:
        """``decoder`` (conv, pixels) and ``proprio_decoder`` (MLP ``F -> [units] * layers -> P``), as observed."""
        act = self._activation
        self.decoder = (
            ConvDecoder(feature_dim, self.image_shape, self._cnn_depth, act) if self.encoder is not None else None
        )
        self.proprio_decoder = (
            MLP(feature_dim, self.proprio_dim, self._proprio_units, self._proprio_layers, act)
            if self.proprio_dim
            else None
        )

    @property
    def observation_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._observation_shapes)

    def initial_state(self, batch_size: int) -> TensorDict:
        return self.rssm.initial_state(batch_size)

    def features(self, state: TensorDict) -> Tensor:
        return self.rssm.features(state)

    def mean_features(self, state: TensorDict) -> Tensor:
        """Features with the stochastic part at its mean / mode instead of the sample, ``[..., F]``."""
        return self.rssm.mean_features(state)

    def _observations(self, obs: TensorDict | Tensor | Mapping[str, Tensor], prev_action: Tensor,
                      is_first: Tensor) -> dict[str, Tensor]:  # fmt: skip
        """The observed tensors ``{key: [B, T, ...]}``, shape-checked with ``prev_action`` and ``is_first``."""
        tensors = observation_tensors(self, obs)
        first = next(iter(tensors.values()))
        if first.dim() < 2:
            raise ValueError(f"observations must be [B, T, ...], got {list(first.shape)} for {next(iter(tensors))}.")
        b, t = first.shape[:2]
        if keys.PIXELS in tensors:
            check_shapes(keys.PIXELS, tensors[keys.PIXELS], [b, t, *self.image_shape], torch.uint8)
        if keys.PROPRIO in tensors:
            check_shapes(keys.PROPRIO, tensors[keys.PROPRIO], [b, t, self.proprio_dim], torch.float32)
        check_shapes(keys.PREV_ACTION, prev_action, [b, t, self.action_dim])
        check_shapes(keys.IS_FIRST, is_first, [b, t, 1], torch.bool)
        return tensors

    def _embed(self, tensors: Mapping[str, Tensor], noise: bool = False) -> tuple[dict[str, Tensor], Tensor]:
        """Observations ``{key: [B, T, ...]}`` -> (reconstruction targets, embeddings ``[B, T, E]``).

        Targets: ``PIXELS`` the preprocessed frames ``[B*T, C, H, W]``; ``PROPRIO`` the vector ``[B, T, P]``
        (``symlog(v)`` with ``proprio_symlog``, DreamerV3: encoder input and decoder target alike).
        """
        targets, parts = {}, []
        if self.encoder is not None:
            pixels = tensors[keys.PIXELS]
            b, t = pixels.shape[:2]
            frames = self._preprocess(pixels.reshape(b * t, *self.image_shape), noise)  # [B*T,C,H,W]
            targets[keys.PIXELS] = frames
            parts.append(self.encoder(frames).reshape(b, t, -1))  # [B,T,E_cnn]
        if self.proprio_encoder is not None:
            vector = tensors[keys.PROPRIO]  # [B,T,P]
            if self.proprio_symlog:
                vector = symlog(vector)
            targets[keys.PROPRIO] = vector
            parts.append(self.proprio_encoder(vector))  # [B,T,E_mlp]
        return targets, parts[0] if len(parts) == 1 else torch.cat(parts, -1)

    def _reconstruction(self, targets: Mapping[str, Tensor], feats: Tensor) -> dict[str, Tensor]:
        """Negative unit-variance Gaussian log-likelihoods (constants dropped) of the observed parts.

        ``loss/image = 0.5 * sum_pixels (x - x_hat)^2`` per frame and ``loss/proprio = 0.5 * sum_P (v - v_hat)^2``
        per step (DreamerV2 ``Decoder``: ``Normal(mean, 1)`` for images, ``DistLayer(dist='mse')`` =
        ``Normal(out, 1)`` for vectors), each averaged over ``B, T``.

        Shapes: ``feats [B, T, F]``; targets as :meth:`_embed` returns them.
        """
        b, t = feats.shape[:2]
        out = {}
        if self.decoder is not None:
            recon = self.decoder(feats.reshape(b * t, -1))  # [B*T,C,H,W]
            image = F.mse_loss(recon, targets[keys.PIXELS], reduction="sum")  # fused, no temporaries
            out["loss/image"] = 0.5 * image / (b * t)
        if self.proprio_decoder is not None:
            pred = self.proprio_decoder(feats)  # [B,T,P]
            out["loss/proprio"] = 0.5 * (pred - targets[keys.PROPRIO]).pow(2).sum(-1).mean()
        return out

    def observe(
        self, obs: TensorDict | Tensor, prev_action: Tensor, is_first: Tensor, state: TensorDict | None = None
    ) -> TensorDict:
        """Posterior states ``[B, T]`` (sampled stochastic parts); see :class:`WorldModel`."""
        tensors = self._observations(obs, prev_action, is_first)
        _, embed = self._embed(tensors)
        return self.rssm.observe(embed, prev_action, is_first, state)

    def imagine(self, state: TensorDict, actions: Tensor | Policy, horizon: int | None = None) -> TensorDict:
        return self.rssm.imagine(state, actions, horizon)

    def decode(self, state: TensorDict) -> Tensor:
        if self.decoder is None:
            return super().decode(state)  # CapabilityError: has_decoder is False
        return self._postprocess(self.decoder(self.features(state)))

    def _postprocess(self, images: Tensor) -> Tensor:
        """Decoder mean in ``[-0.5, 0.5]`` -> image in ``[0, 1]`` (``x + 0.5`` clamped; PlaNet and DreamerV2)."""
        return (images + 0.5).clamp(0.0, 1.0)

    def decode_proprio(self, state: TensorDict) -> Tensor:
        """Predicted observation vector ``[..., P]`` (mean of its decoder); models observing ``proprio`` or ``both``."""
        if self.proprio_decoder is None:
            raise CapabilityError(f"{type(self).__name__} does not observe keys.PROPRIO (env.observation: pixels).")
        pred = self.proprio_decoder(self.features(state))
        return symexp(pred) if self.proprio_symlog else pred

    def _pixels_only(self, what: str) -> None:
        if self.observation != "pixels":
            raise CapabilityError(
                f"{type(self).__name__} observes {list(self.observation_keys)} (env.observation: {self.observation}), "
                f"so it cannot {what} from images alone; goal images need a model with env.observation: pixels."
            )

    @property
    def embed_dim(self) -> int:
        """E, size of the encoder embedding of one image (pixels-only models)."""
        if not self.has_embedding:
            return super().embed_dim
        return self.encoder.output_dim

    def embed(self, pixels: Tensor) -> Tensor:
        """Encoder embeddings of images (LEXA's e_g for goal images).

        Shapes: uint8 ``[..., C, H, W]`` -> ``[..., E]``.
        """
        if not self.has_embedding:
            return super().embed(pixels)
        lead = pixels.shape[:-3]
        check_shapes("pixels", pixels, [*lead, *self.image_shape], torch.uint8)
        return self._embed({keys.PIXELS: pixels.reshape(-1, 1, *self.image_shape)})[1].reshape(*lead, -1)

    def features_from_embed(self, embed: Tensor, sample: bool = True, hold: int = 1) -> Tensor:
        """Features of the posterior from the initial state, a zero action and image embeddings ``[N, E]``
        (LEXA ``get_init_feat_embed``); ``sample=False`` takes the posterior mean / mode instead of a
        sample, as LEXA's achiever does (``sample=False`` is its default). Shapes: ``[N, E]`` -> ``[N, F]``.

        ``hold`` = K > 1 (not in LEXA) filters the same embedding K times with zero actions and returns
        the K-th posterior: the state after watching the image held still. With K = 1 the ``deter``
        part is one GRU step from the zero state, the same vector for every goal; after K steps it
        carries the goal's pose at rest, as an imagined state's ``deter`` carries its own.

        Raises:
            ValueError: ``hold`` < 1.
        """
        if not self.has_embedding:
            return super().features_from_embed(embed, sample, hold)
        if hold < 1:
            raise ValueError(f"hold must be >= 1 filtering steps, got {hold}.")
        n = embed.shape[0]
        zeros = torch.zeros(n, hold, self.action_dim, device=embed.device, dtype=embed.dtype)
        first = torch.zeros(n, hold, 1, dtype=torch.bool, device=embed.device)
        first[:, 0] = True
        held = embed[:, None].expand(n, hold, embed.shape[-1])
        return self.features(self.rssm.observe(held, zeros, first, sample=sample))[:, -1]

    def embed_goal(self, pixels: Tensor) -> Tensor:
        """Features of the posterior of the goal image from the initial state (LEXA's goal embedding).

        Raises:
            CapabilityError: the model observes the observation vector (goal images are pixels only).
        """
        self._pixels_only("embed a goal")
        check_shapes("goal pixels", pixels, [None, *self.image_shape], torch.uint8)
        return self.features_from_embed(self.embed(pixels))

    def reward(self, state: TensorDict) -> Tensor:
        """Mean of the reward head, ``[..., 1]``."""
        return self.reward_head(self.features(state))


__all__ = ["RSSMWorldModel", "OBSERVATIONS", "symlog", "symexp"]
