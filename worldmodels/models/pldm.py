"""PLDM-style JEPA world model: latent dynamics without reconstruction, for reward-free offline data.

PLDM (Sobal, Zhang et al. 2025, "Learning from Reward-Free Offline Data: A Case for Planning with
Latent Dynamics Models", arXiv 2502.14819; ``pldm/models/jepa.py``; methods.md 2.5 and 3.5):

* encoder ``z_t = Enc(o_t)`` (IMPALA-style CNN, GroupNorm, final LayerNorm; flat latent ``[Z]``,
  see :mod:`worldmodels.models.pldm_networks`), applied to each frame independently -- or, with
  ``model.frame_stack = k > 1``, to the last ``k`` frames ``o_{t-k+1..t}`` stacked on the channel
  axis (:mod:`worldmodels.models.frame_stack`; not in PLDM, which adds proprioception where one
  frame hides the velocity);
* predictor ``z^_{t+1} = Pred(z^_t, a_t)`` (residual GRU with LayerNorm, deterministic), unrolled
  from ``z^_0 = z_0`` over the ``T - 1`` steps of a ``[B, T]`` window; no EMA target (momentum 0);
* no decoder and no reward head (``decode``/``reward`` raise :class:`CapabilityError`).

Loss (mean reductions as ``F.mse_loss``; the projector is the identity)::

    L = sim_coeff   * mean_{t>=1} |z_t - z^_t|^2                      (multi-step prediction)
      + std_coeff   * var(z_0 over the batch)  + cov_coeff   * cov(z_0 over the batch)
      + std_coeff_t * var(z_{1:T} over time)   + cov_coeff_t * cov(z_{1:T} over time)
      + sim_coeff_t * mean_t |z_{t+1} - z_t|^2                        (temporal smoothness)
      + idm_coeff   * mean_t |IDM([z_t, z_{t+1}]) - a_t|^2            (inverse dynamics)

with ``var``/``cov`` the VICReg terms of :mod:`worldmodels.models.vicreg`. Actions follow the alignment
rule of :mod:`worldmodels.core.keys`: row ``t``'s ``ACTION`` is the action taken at ``o_t``, leading to
``o_{t+1}``, so the unroll uses ``ACTION[:, :-1]``. With ``frame_stack = k`` a ``[B, T]`` window's first
``k-1`` rows are only history: the loss runs on the ``T-k+1`` stacked rows after them.

Example:
    >>> model = PLDM(PLDMConfig(), action_dim=2, image_shape=(2, 64, 64))
    >>> out = model.loss(batch)                 # batch [B, T] with PIXELS, ACTION
    >>> goal = model.embed_goal(goal_pixels)    # [B, Z]; plan with GoalDistanceObjective(l2, steps="all")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor

from worldmodels.core import keys
from worldmodels.core.interface import LossOutput, Policy, WorldModel, check_shapes, observation_tensors
from worldmodels.core.config import PLDMConfig
from worldmodels.models.frame_stack import repeat_frame, stack_frames
from worldmodels.models.networks import MLP
from worldmodels.models.pldm_networks import ImpalaEncoder, ResidualGRUPredictor
from worldmodels.models.vicreg import feature_std, vicreg_covariance, vicreg_variance


def preprocess(pixels: Tensor) -> Tensor:
    """uint8 ``[..., C, H, W]`` -> float in ``[0, 1]`` (the one pixel conversion of this model)."""
    return pixels.float() / 255.0


class PLDM(WorldModel):
    """PLDM-style JEPA implementing :class:`~worldmodels.core.interface.WorldModel` (state key ``keys.LATENT``).

    Args:
        config: :class:`~worldmodels.core.config.PLDMConfig` (sizes and loss coefficients).
        action_dim: A.
        image_shape: ``(C, H, W)`` of one observation (Two Rooms: ``(2, 64, 64)``); the encoder sees
            ``(k*C, H, W)`` with ``config.frame_stack = k``.
    """

    has_decoder = False
    has_reward = False

    def __init__(self, config: PLDMConfig, action_dim: int, image_shape: tuple[int, int, int] = (2, 64, 64)):
        super().__init__()
        self.config = config
        self.action_dim = int(action_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.feature_dim = config.latent_dim
        self.frame_stack = config.frame_stack
        c, h, w = self.image_shape
        self.encoder = ImpalaEncoder((self.frame_stack * c, h, w), config.encoder_channels, config.encoder_blocks,
                                     config.norm_groups, config.latent_dim, config.input_pool)  # fmt: skip
        self.predictor = ResidualGRUPredictor(config.latent_dim, self.action_dim, config.predictor_hidden)
        self.inverse_dynamics = MLP(2 * config.latent_dim, self.action_dim, config.idm_hidden, 1, "relu")

    # ------------------------------------------------------------------ interface

    def initial_state(self, batch_size: int) -> TensorDict:
        """Zeros ``[B, Z]`` (never used to predict: every observation is encoded on its own), plus
        zero frames ``FRAMES [B, k-1, C, H, W]`` with ``frame_stack = k > 1``."""
        latent = torch.zeros(batch_size, self.feature_dim, device=self.device)
        state = {keys.LATENT: latent}
        if self.frame_stack > 1:
            shape = (batch_size, self.frame_stack - 1, *self.image_shape)
            state[keys.FRAMES] = torch.zeros(shape, dtype=torch.uint8, device=self.device)
        return TensorDict(state, batch_size=[batch_size])

    def encode(self, stacks: Tensor) -> Tensor:
        """``z = Enc(o_{t-k+1..t})``. Shapes: uint8 ``[..., k, C, H, W]`` -> ``[..., Z]``."""
        stacks = stacks.to(self.device)
        return self.encoder(preprocess(stacks.flatten(-4, -3)))  # [..., k*C, H, W]

    def observe(self, obs: TensorDict | Tensor, prev_action: Tensor, is_first: Tensor,
                state: TensorDict | None = None) -> TensorDict:  # fmt: skip
        """Encode each row's frame (with ``frame_stack = k``: its last ``k`` frames, never across an
        ``is_first``; the ``k-1`` frames before row 0 come from ``state[FRAMES]``, and without a state
        row 0 starts an episode). ``prev_action`` is only validated.

        Shapes: obs[PIXELS] (or a bare pixel tensor) uint8 ``[B,T,C,H,W]``, prev_action ``[B,T,A]``,
        is_first ``[B,T,1]``, state ``[B]`` -> ``[B,T]`` with ``LATENT [B,T,Z]`` (and
        ``FRAMES [B,T,k-1,C,H,W]``, the history the next call needs).
        """
        pixels = observation_tensors(self, obs)[keys.PIXELS]
        check_shapes("pixels", pixels, [None, None, *self.image_shape], torch.uint8)
        b, t = pixels.shape[:2]
        check_shapes("prev_action", prev_action, [b, t, self.action_dim])
        check_shapes("is_first", is_first, [b, t, 1])
        history = None
        if state is not None and keys.FRAMES in state.keys():
            history = state.get(keys.FRAMES).to(pixels.device)
        stacks = stack_frames(pixels, is_first.to(pixels.device), self.frame_stack, history)  # [B,T,k,C,H,W]
        out = {keys.LATENT: self.encode(stacks)}  # [B,T,Z]
        if self.frame_stack > 1:
            out[keys.FRAMES] = stacks[:, :, 1:].to(self.device)
        return TensorDict(out, batch_size=[b, t])

    def step(self, latent: Tensor, action: Tensor) -> Tensor:
        """One predictor step ``z_{t+1} = Pred(z_t, a_t)``. Shapes: ``[N, Z], [N, A] -> [N, Z]``."""
        return self.predictor(latent, action)

    def imagine(self, state: TensorDict, actions: Tensor | Policy, horizon: int | None = None) -> TensorDict:
        """Predictor scan from ``state [N]``: row h holds ``ACTION`` a_h and the latent it leads to.

        Shapes: state ``[N]`` (``LATENT [N, Z]``); actions ``[N, H, A]`` or a policy
        ``features [N, Z] -> [N, A]`` with ``horizon`` -> TensorDict ``[N, H]``.
        """
        latent = state.get(keys.LATENT)
        n = latent.shape[0]
        if callable(actions) and not isinstance(actions, Tensor):
            if horizon is None or horizon < 1:
                raise ValueError(f"imagine with a policy needs horizon >= 1, got {horizon}.")
            policy, steps = actions, int(horizon)
        else:
            check_shapes("actions", actions, [n, None, self.action_dim])
            if horizon is not None and horizon != actions.shape[1]:
                raise ValueError(f"horizon {horizon} does not match the action sequence length {actions.shape[1]}.")
            policy, steps = None, actions.shape[1]
        latents, taken = [], []
        for h in range(steps):
            action = policy(latent) if policy is not None else actions[:, h]  # [N,A]
            latent = self.step(latent, action)  # [N,Z]
            latents.append(latent)
            taken.append(action)
        out = {keys.LATENT: torch.stack(latents, 1), keys.ACTION: torch.stack(taken, 1)}  # [N,H,Z], [N,H,A]
        return TensorDict(out, batch_size=[n, steps])

    def features(self, state: TensorDict) -> Tensor:
        """The latent itself. Shapes: ``[..., Z]``."""
        return state.get(keys.LATENT)

    def embed_goal(self, pixels: Tensor) -> Tensor:
        """``Enc(o_goal)`` (with ``frame_stack = k``: of the goal frame repeated ``k`` times, the goal
        held still). Shapes: uint8 ``[B, C, H, W]`` -> ``[B, Z]``."""
        check_shapes("goal pixels", pixels, [None, *self.image_shape], torch.uint8)
        return self.encode(repeat_frame(pixels, self.frame_stack))

    # ------------------------------------------------------------------ loss

    def unroll(self, z0: Tensor, actions: Tensor) -> Tensor:
        """Open-loop predictions ``z^_1 .. z^_H`` from ``z^_0 = z0``. Shapes: ``[B, Z], [B, H, A] -> [B, H, Z]``."""
        preds, latent = [], z0
        for action in actions.unbind(1):
            latent = self.step(latent, action)
            preds.append(latent)
        return torch.stack(preds, 1)

    def loss(self, batch: TensorDict) -> LossOutput:
        """PLDM loss on a ``[B, T]`` window (see the module docstring). Needs PIXELS and ACTION.

        Raises:
            ValueError: fewer than 2 sequences or ``frame_stack + 1`` rows, a window that crosses an
                episode start, or ``T - (frame_stack - 1) < 3`` while a time-VICReg coefficient is non-zero.
        """
        cfg = self.config
        pixels, actions = batch.get(keys.PIXELS), batch.get(keys.ACTION).to(self.device)
        check_shapes("batch pixels", pixels, [None, None, *self.image_shape], torch.uint8)
        b, t = pixels.shape[:2]
        check_shapes("batch action", actions, [b, t, self.action_dim])
        if b < 2 or t < 2:
            raise ValueError(f"PLDM's loss needs at least 2 sequences of 2 rows (VICReg over the batch), got [{b}, {t}].")
        if keys.IS_FIRST in batch.keys() and bool(batch.get(keys.IS_FIRST)[:, 1:].any()):
            raise ValueError("PLDM's loss got a window crossing an episode start (is_first after row 0); "
                             "sample windows inside episodes.")  # fmt: skip
        k = self.frame_stack
        if t < k + 1:
            raise ValueError(f"PLDM's loss with frame_stack {k} needs windows of at least {k + 1} rows "
                             f"(k-1 of history and 2 to predict), got {t}.")  # fmt: skip
        time_terms = cfg.std_coeff_t > 0 or cfg.cov_coeff_t > 0
        if time_terms and t - (k - 1) < 3:
            raise ValueError(f"the VICReg-over-time terms need T - (frame_stack - 1) >= 3 rows, got T = {t} with "
                             f"frame_stack {k}; set std_coeff_t=cov_coeff_t=0 or lengthen replay.sequence_length.")  # fmt: skip
        # every row as observe sees the window alone (row 0 an episode start); rows >= k-1 hold k real
        # frames and are what the loss trains on: T' = T-k+1 rows, their actions, their latents
        starts = torch.zeros(b, t, 1, dtype=torch.bool, device=pixels.device)
        z_all = self.encode(stack_frames(pixels, starts, k))  # [B,T,Z]
        z, actions = z_all[:, k - 1 :], actions[:, k - 1 :]  # [B,T',Z], [B,T',A]
        preds = self.unroll(z[:, 0], actions[:, :-1])  # [B,T'-1,Z]
        zero = z.new_zeros(())
        terms = {
            "sim": F.mse_loss(preds, z[:, 1:]),
            "var": vicreg_variance(z[:, 0], cfg.variance_margin),
            "cov": vicreg_covariance(z[:, 0]),
            "var_t": vicreg_variance(z[:, 1:], cfg.variance_margin) if time_terms else zero,
            "cov_t": vicreg_covariance(z[:, 1:]) if time_terms else zero,
            "time_sim": F.mse_loss(z[:, 1:], z[:, :-1]),
            "idm": F.mse_loss(self.inverse_dynamics(torch.cat([z[:, :-1], z[:, 1:]], -1)), actions[:, :-1]),
        }
        coeffs = {"sim": cfg.sim_coeff, "var": cfg.std_coeff, "cov": cfg.cov_coeff, "var_t": cfg.std_coeff_t,
                  "cov_t": cfg.cov_coeff_t, "time_sim": cfg.sim_coeff_t, "idm": cfg.idm_coeff}  # fmt: skip
        total = sum(coeffs[name] * value for name, value in terms.items())
        with torch.no_grad():
            std = feature_std(z[:, 0])  # [Z] per-dim std over the batch at t=0
            metrics = {f"loss/{name}": value.detach() for name, value in terms.items()}
            metrics.update({"repr/std_min": std.min(), "repr/std_mean": std.mean(),
                            "pred/error_last": F.mse_loss(preds[:, -1], z[:, -1])})  # fmt: skip
        posterior = TensorDict({keys.LATENT: z_all.detach()}, batch_size=[b, t])
        return LossOutput(total, TensorDict(metrics, batch_size=[]), posterior)
