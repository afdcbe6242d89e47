"""ToyModel: a tiny, deterministic, differentiable WorldModel with known optima (for tests).

The latent state is a position ``x`` in R^A (key ``keys.LATENT``):

* dynamics (``imagine``):   x_{h+1} = x_h + scale * clamp(a_h, -1, 1)
* features:                 features(s) = x            (``feature_dim == action_dim == A``)
* reward:                   r(s) = -||x - target||^2   (``target`` a buffer, default 0)
* pixels <-> position:      :meth:`ToyModel.render` draws x into an image, :meth:`ToyModel.encode`
                            reads it back exactly (up to uint8 rounding, ~0.004).
* observe (a filter):       prior  p_t = x_{t-1} + scale * prev_action_t  (x_{-1} = 0 at is_first)
                            post   x_t = (1 - gain) * p_t + gain * encode(o_t)
                            ``observation_gain=1`` (default) reads the position off the image;
                            ``gain < 1`` gives the belief memory, so is_first resets are visible.
* embed_goal(o):            encode(o) (a goal image is a position)
* decode(s):                render(x) as float in [0, 1]
* loss:                     mean ||prior_t - encode(o_t)||^2 over non-first rows (differentiable in
                            the learnable ``scale``)

Known optima (for planners): with reward ``-||x - target||^2`` summed over the horizon from a start
x_0, the unique best plan is a_0 = (target - x_0) / scale and a_h = 0 afterwards, provided
``|a_0| <= 1`` (the position reaches the target in one step and stays). Likewise for a goal
objective on the final step: any plan with sum_h a_h = (goal - x_0) / scale.

Pixel layout: the image width is cut into ``ceil(A / C)`` vertical strips; position dim ``j`` is
the brightness of channel ``j % C`` in strip ``j // C``, mapped from [0, 255] to [-1, 1]
(so a position outside [-1, 1] is clipped when rendered).

Example:
    >>> model = ToyModel(action_dim=2, image_shape=(3, 16, 16), scale=0.5)
    >>> pix = model.render(torch.tensor([[0.2, -0.4]]))            # uint8 [1, 3, 16, 16]
    >>> model.encode(pix)                                          # ~[[0.2, -0.4]]
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys
from worldmodels.core.interface import LossOutput, Policy, WorldModel, as_observations


class ToyModel(WorldModel):
    """Position world model x_{h+1} = x_h + scale * a_h; see the module docstring.

    Args:
        action_dim: A, also the latent and feature size.
        image_shape: (C, H, W) of the observed pixels; needs ``W >= ceil(A / C)``.
        scale: step size of the dynamics (learnable parameter, initial value).
        target: reward optimum, shape [A] (default zeros).
        observation_gain: weight of the encoded image in ``observe`` (1 = no memory).
        has_reward: declare a reward head (False mimics a reward-free JEPA).
        has_decoder: declare a decoder.
    """

    def __init__(
        self,
        action_dim: int = 2,
        image_shape: tuple[int, int, int] = (3, 16, 16),
        scale: float = 0.5,
        target: Tensor | None = None,
        observation_gain: float = 1.0,
        has_reward: bool = True,
        has_decoder: bool = True,
    ):
        super().__init__()
        c, h, w = image_shape
        strips = math.ceil(action_dim / c)
        if strips > w:
            raise ValueError(f"image width {w} is too small for action_dim {action_dim} with {c} channels.")
        self.action_dim = action_dim
        self.feature_dim = action_dim
        self.image_shape = tuple(image_shape)
        self.has_reward = has_reward
        self.has_decoder = has_decoder
        self.observation_gain = observation_gain
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        target = torch.zeros(action_dim) if target is None else torch.as_tensor(target, dtype=torch.float32)
        self.register_buffer("target", target.clone())
        self._strips = strips

    # ------------------------------------------------------------------ pixels <-> position
    def _strip_bounds(self) -> list[tuple[int, int]]:
        w = self.image_shape[2]
        edges = [round(i * w / self._strips) for i in range(self._strips + 1)]
        return list(zip(edges[:-1], edges[1:]))

    def encode(self, pixels: Tensor) -> Tensor:
        """uint8 ``[..., C, H, W]`` -> position ``[..., A]`` (inverse of :meth:`render`)."""
        img = pixels.to(self.target.device, torch.float32) / 255.0  # [...,C,H,W]
        means = torch.stack([img[..., lo:hi].mean(dim=(-2, -1)) for lo, hi in self._strip_bounds()], -2)
        means = means.flatten(-2)  # [..., strips*C]; index j = strip * C + channel
        return means[..., : self.action_dim] * 2 - 1

    def render(self, position: Tensor) -> Tensor:
        """Position ``[..., A]`` -> uint8 image ``[..., C, H, W]`` (clipped to [-1, 1])."""
        return (self._render_float(position) * 255).round().to(torch.uint8)

    def _render_float(self, position: Tensor) -> Tensor:
        c, h, w = self.image_shape
        lead = position.shape[:-1]
        values = torch.zeros(*lead, self._strips * c, device=position.device)
        values[..., : self.action_dim] = (position.clamp(-1, 1) + 1) / 2
        values = values.reshape(*lead, self._strips, c)
        img = torch.zeros(*lead, c, h, w, device=position.device)
        for i, (lo, hi) in enumerate(self._strip_bounds()):
            img[..., lo:hi] = values[..., i, :, None, None]
        return img

    # ------------------------------------------------------------------ WorldModel interface
    def initial_state(self, batch_size: int) -> TensorDict:
        x = torch.zeros(batch_size, self.action_dim, device=self.target.device)
        return TensorDict({keys.LATENT: x}, batch_size=[batch_size])

    def observe(self, obs, prev_action, is_first, state=None) -> TensorDict:
        pixels = as_observations(obs)[keys.PIXELS]
        b, t = pixels.shape[:2]
        x = self.initial_state(b)[keys.LATENT] if state is None else state[keys.LATENT]
        obs = self.encode(pixels)  # [B,T,A]
        gain = self.observation_gain
        out = []
        for step in range(t):
            first = is_first[:, step].to(x.device)  # [B,1]
            x = torch.where(first, torch.zeros_like(x), x)
            prior = x + self.scale * prev_action[:, step].clamp(-1, 1) * (~first)
            x = (1 - gain) * prior + gain * obs[:, step]
            out.append(x)
        return TensorDict({keys.LATENT: torch.stack(out, 1)}, batch_size=[b, t])

    def imagine(self, state: TensorDict, actions: Tensor | Policy, horizon: int | None = None) -> TensorDict:
        x = state[keys.LATENT]  # [N,A]
        if callable(actions):
            if horizon is None:
                raise ValueError("imagine with a policy needs a horizon (an int >= 1).")
            taken, xs = [], []
            for _ in range(horizon):
                a = actions(x)  # features == position
                x = x + self.scale * a.clamp(-1, 1)
                taken.append(a)
                xs.append(x)
            acts = torch.stack(taken, 1)  # [N,H,A]
            pos = torch.stack(xs, 1)  # [N,H,A]
        else:
            acts = actions
            pos = x[:, None] + self.scale * torch.cumsum(actions.clamp(-1, 1), dim=1)  # [N,H,A]
        n, h = acts.shape[:2]
        return TensorDict({keys.LATENT: pos, keys.ACTION: acts}, batch_size=[n, h])

    def features(self, state: TensorDict) -> Tensor:
        return state[keys.LATENT]

    def embed_goal(self, pixels: Tensor) -> Tensor:
        return self.encode(pixels)

    def reward(self, state: TensorDict) -> Tensor:
        if not self.has_reward:
            return super().reward(state)
        return -((state[keys.LATENT] - self.target) ** 2).sum(-1, keepdim=True)

    def decode(self, state: TensorDict) -> Tensor:
        if not self.has_decoder:
            return super().decode(state)
        return self._render_float(state[keys.LATENT])

    def loss(self, batch: TensorDict) -> LossOutput:
        post = self.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
        obs = self.encode(batch[keys.PIXELS])  # [B,T,A]
        x = post[keys.LATENT]
        prior = x[:, :-1] + self.scale * batch[keys.PREV_ACTION][:, 1:].clamp(-1, 1)  # [B,T-1,A]
        keep = (~batch[keys.IS_FIRST][:, 1:]).float()  # [B,T-1,1]
        err = ((prior - obs[:, 1:]) ** 2 * keep).sum() / keep.sum().clamp_min(1) / self.action_dim
        loss = err + 0.0 * self.scale
        metrics = TensorDict({"loss/prediction": loss.detach()}, batch_size=[])
        return LossOutput(loss, metrics, post.detach())
