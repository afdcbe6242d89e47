"""Configs: frozen dataclasses filled from YAML, with ``key=value`` overrides, validated on load.

Each component has one dataclass; each field has a docstring literal under it with units and
the paper default. ``load_config(path, overrides)`` returns a :class:`RunConfig`; unknown keys,
wrong types and out-of-range values raise :class:`ConfigError` with one sentence that names the
key and what is allowed. The method (``method: planet``) picks the model-config class in
:data:`MODEL_CONFIGS`; everything else a method decides is in ``worldmodels/methods.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message says which key and what is allowed."""


# ----------------------------------------------------------------------------- per-domain defaults

# PlaNet, planet/scripts/tasks.py (cartpole_swingup: 8, reacher_easy: 4, cheetah_run: 4,
# cup_catch: 4, finger_spin: 2, walker_walk: 2); PlaNet/Dreamer use 2 for anything else.
# Here (not in envs.dmc) so that a config's episode length in rows is known at load.
_PLANET_ACTION_REPEAT = {"cartpole": 8, "reacher": 4, "cheetah": 4, "ball_in_cup": 4, "finger": 2, "walker": 2}
_DEFAULT_ACTION_REPEAT = 2
# Short names used by PlaNet / Dreamer task strings ("cup_catch") for dm_control domains.
_DOMAIN_ALIASES = {"cup": "ball_in_cup"}


def canonical_domain(domain: str) -> str:
    """dm_control's domain name for ``domain`` (maps PlaNet's ``cup`` to ``ball_in_cup``)."""
    return _DOMAIN_ALIASES.get(domain, domain)


def default_action_repeat(domain: str) -> int:
    """Action repeat used by PlaNet for ``domain`` (``planet/scripts/tasks.py``); 2 otherwise.

    Args:
        domain: dm_control domain name (``cup`` and ``ball_in_cup`` both accepted).

    Returns:
        env steps per agent step: cartpole 8, reacher 4, cheetah 4, ball_in_cup 4, finger 2,
        walker 2, any other domain 2.
    """
    return _PLANET_ACTION_REPEAT.get(canonical_domain(domain), _DEFAULT_ACTION_REPEAT)


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
"""The device names a config (``device``) and the CLI (``--device``) accept."""


def is_device_name(name: str) -> bool:
    """Whether ``name`` is one of :data:`DEVICE_CHOICES` (``gpu``, ``cuda:x`` or ``mps`` are not)."""
    return isinstance(name, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", name) is not None


CONV_IMAGE_SIZE = 64
"""The only image side the ``conv_ha`` encoder and decoder of PlaNet, DreamerV2 and LEXA take
(``worldmodels.models.networks.IMAGE_SIZE``; a test checks they agree)."""


# ----------------------------------------------------------------------------- components


@dataclass(frozen=True)
class EnvConfig:
    suite: Literal["dmc", "two_rooms"] = "dmc"
    """which simulator: DeepMind Control (pixels rendered by MuJoCo) or PLDM's Two Rooms"""
    domain: str = "cartpole"
    """dm_control domain, e.g. cartpole, cheetah, walker, reacher, finger, cup, point_mass"""
    task: str = "swingup"
    """dm_control task of the domain, e.g. swingup, run, walk"""
    image_size: int = 64
    """rendered square image side in pixels (PlaNet/Dreamer: 64)"""
    camera: Optional[int] = None
    """camera id; None = paper default per domain (quadruped 2, others 0)"""
    action_repeat: Optional[int] = None
    """env steps per agent step, rewards summed; None = PlaNet's per-domain value
    (cartpole 8, reacher 4, cheetah 4, cup 4, finger 2, walker 2; others 2)"""
    episode_length: int = 1000
    """episode length in *env* steps (DMC standard 1000); agent steps = this / action_repeat"""
    fast_render: bool = False
    """opt-in: render without shadows and reflections (4-7x faster on software GL, but the
    images differ from the standard observation, so models trained with it see other pixels)"""
    goal_set: Optional[str] = None
    """goal-image task set (point_mass, reacher, roboyoga_walker, roboyoga_quadruped); None = task reward"""
    two_rooms_channels: int = 2
    """Two Rooms image channels: 2 = [agent, walls] as PLDM; 3 = [agent, walls, zeros] for RGB encoders"""
    num_envs: int = 1
    """environments stepped in parallel worker processes while collecting and evaluating (torchrl
    ParallelEnv; the agent acts for all of them in one call); 1 = one env in the training process"""
    observation: Literal["pixels", "proprio", "both"] = "pixels"
    """what the world model observes: pixels (PlaNet, DreamerV2 dmc_vision), proprio = the DMC observation
    vector ``keys.PROPRIO`` (DreamerV2 dmc_proprio), or both (conv + MLP embeddings concatenated, as
    DreamerV2's encoder)"""
    render: Optional[bool] = None
    """render pixels every step; None = only when the model observes them (observation pixels or both).
    A proprio run renders nothing unless this is true (needed for eval videos, open-loop and probe views)"""

    def __post_init__(self):
        if self.observation != "pixels":
            _check(self.suite == "dmc", "env.observation", self.observation,
                   "pixels for env.suite two_rooms (its observation vector is DMC's only)")  # fmt: skip
            _check(self.goal_set is None, "env.observation", self.observation,
                   "pixels with a goal_set (goal images are pixels; a proprio model cannot embed them)")  # fmt: skip
        _check(self.renders() or self.observation == "proprio", "env.render", self.render,
               "true or null when env.observation is pixels or both (the model reads them)")  # fmt: skip
        _check(self.image_size >= 16, "env.image_size", self.image_size, "an integer >= 16")
        _check(self.num_envs >= 1, "env.num_envs", self.num_envs, "an integer >= 1")
        _check(self.action_repeat is None or self.action_repeat >= 1, "env.action_repeat", self.action_repeat, ">= 1 or null")
        _check(self.episode_length >= 1, "env.episode_length", self.episode_length, ">= 1")
        _check(self.two_rooms_channels in (2, 3), "env.two_rooms_channels", self.two_rooms_channels, "2 or 3")

    def renders(self) -> bool:
        """Whether the env emits ``pixels``: :attr:`render`, or by default whether the model observes them."""
        return self.observation != "proprio" if self.render is None else self.render

    def episode_rows(self) -> int | None:
        """Rows (observations) of one whole DMC episode, ``ceil(episode_length / action_repeat) + 1``,
        with a None action repeat resolved as the env does (:func:`default_action_repeat`); None
        where the config alone does not say (Two Rooms; a goal set with its own default repeat)."""
        if self.suite != "dmc" or (self.goal_set is not None and self.action_repeat is None):
            return None
        repeat = default_action_repeat(self.domain) if self.action_repeat is None else self.action_repeat
        return math.ceil(self.episode_length / repeat) + 1


@dataclass(frozen=True)
class ReplayConfig:
    capacity: int = 1_000_000
    """maximum number of stored rows (observations); PlaNet/Dreamer keep all data (1e6)"""
    batch_size: int = 50
    """sequences per training batch B (PlaNet: 50; DreamerV2: 16)"""
    sequence_length: int = 50
    """rows per sequence T (PlaNet and DreamerV2: 50)"""

    def __post_init__(self):
        _check(self.capacity >= 1, "replay.capacity", self.capacity, ">= 1")
        _check(self.batch_size >= 1, "replay.batch_size", self.batch_size, ">= 1")
        _check(self.sequence_length >= 2, "replay.sequence_length", self.sequence_length, ">= 2")


@dataclass(frozen=True)
class PlaNetConfig:
    """PlaNet (Hafner et al. 2019); defaults from the paper and google-research/planet configs.py."""

    deter_dim: int = 200
    """GRU (deterministic) state size (PlaNet: 200)"""
    stoch_dim: int = 30
    """Gaussian stochastic state size (PlaNet: 30)"""
    hidden_dim: int = 200
    """hidden layer size inside the RSSM (PlaNet: 200)"""
    min_std: float = 0.1
    """minimum std of the stochastic state (PlaNet: 0.1)"""
    cnn_depth: int = 32
    """conv encoder/decoder base channels (PlaNet/World Models conv_ha: 32)"""
    reward_layers: int = 3
    """reward MLP hidden layers (PlaNet: 3)"""
    reward_units: int = 300
    """reward MLP units (PlaNet: 300)"""
    free_nats: float = 3.0
    """KL free nats per step and sequence (PlaNet: 3.0)"""
    kl_scale: float = 1.0
    """KL loss scale, PlaNet's divergence_scale (1.0)"""
    reward_scale: float = 10.0
    """reward log-likelihood scale (released PlaNet config: 10.0)"""
    image_bits: int = 5
    """bit depth of image quantisation with uniform dequantisation noise (PlaNet: 5)"""
    overshooting_distance: int = 0
    """latent overshooting distance D (paper: 50; released configs: 0 = off)"""
    overshooting_scale: float = 0.0
    """latent overshooting KL weight beta_{>1} (released configs: 0 = off)"""
    activation: Literal["relu", "elu"] = "relu"
    """nonlinearity (PlaNet: relu)"""
    learning_rate: float = 1e-3
    """world-model Adam learning rate (PlaNet: 1e-3)"""
    adam_eps: float = 1e-4
    """Adam epsilon (PlaNet: 1e-4)"""
    grad_clip: float = 1000.0
    """global gradient-norm clip (PlaNet: 1000)"""
    weight_decay: float = 0.0
    """decoupled weight decay per update, w <- (1 - wd) w (PlaNet: none)"""
    proprio_layers: int = 3
    """hidden layers of the MLP encoder/decoder of the observation vector (env.observation proprio/both);
    PlaNet has no vector model: ours, sized like its reward head (3)"""
    proprio_units: int = 300
    """units of the observation-vector MLP encoder/decoder (ours, like PlaNet's reward head: 300)"""
    proprio_symlog: bool = False
    """symlog the observation vector into the encoder and as the decoder's target (DreamerV3; off = raw)"""
    init: Literal["torch", "reference"] = "reference"
    """parameter initialisation: reference = the TF code's (Glorot-uniform kernels, zero biases, GRU gate
    bias 1 as TF1's GRUBlockCell; worldmodels.models.init) or PyTorch's defaults (benchmarks/bench_init.py:
    reference reaches a 16 % lower loss after 40 updates)"""

    def image_size_rule(self, size: int) -> str | None:
        """What ``env.image_size`` must be for this model, or None when ``size`` is allowed."""
        return _conv_image_size_rule(size)

    def __post_init__(self):
        _check(1 <= self.image_bits <= 8, "model.image_bits", self.image_bits, "1..8")
        _check(self.min_std > 0, "model.min_std", self.min_std, "> 0")
        _check(self.overshooting_distance >= 0, "model.overshooting_distance", self.overshooting_distance, ">= 0")
        _check(self.learning_rate > 0, "model.learning_rate", self.learning_rate, "> 0")
        _check(self.proprio_layers >= 1, "model.proprio_layers", self.proprio_layers, ">= 1")
        _check(self.proprio_units >= 1, "model.proprio_units", self.proprio_units, ">= 1")


@dataclass(frozen=True)
class DreamerConfig:
    """DreamerV2 world model (Hafner et al. 2021); defaults from danijar/dreamerv2 configs.yaml
    ``defaults`` + ``dmc_vision`` (methods.md section 2.2)."""

    deter_dim: int = 200
    """GRU (deterministic) state size (dmc_vision rssm.deter: 200; defaults: 1024)"""
    hidden_dim: int = 200
    """hidden layer size inside the RSSM (dmc_vision rssm.hidden: 200; defaults: 1024)"""
    stoch_dim: int = 32
    """number of categorical latent variables (DreamerV2 rssm.stoch: 32)"""
    classes: int = 32
    """classes per categorical variable (DreamerV2 rssm.discrete: 32); 0 = Gaussian stoch (LEXA default)"""
    min_std: float = 0.1
    """minimum std of a Gaussian stoch, used only when classes == 0 (DreamerV2 rssm.min_std: 0.1)"""
    cnn_depth: int = 48
    """conv encoder/decoder base channels (DreamerV2 encoder/decoder cnn_depth: 48; dmc_vision keeps it)"""
    mlp_layers: int = 4
    """hidden layers of the reward and discount heads (DreamerV2 reward_head.layers: 4)"""
    mlp_units: int = 400
    """units of the reward and discount heads (DreamerV2 reward_head.units: 400)"""
    activation: Literal["relu", "elu"] = "elu"
    """nonlinearity everywhere (DreamerV2: elu)"""
    pred_discount: bool = False
    """learn a continuation (discount) head from is_terminal (DreamerV2 defaults: True; dmc_vision: False)"""
    kl_balance: float = 0.8
    """KL balancing alpha: weight of the prior (dynamics) term (DreamerV2 kl.balance: 0.8)"""
    kl_free: float = 1.0
    """free nats, applied after averaging over batch and time (dmc_vision kl.free: 1.0; defaults: 0.0)"""
    kl_scale: float = 1.0
    """KL loss scale (DreamerV2 loss_scales.kl: 1.0; Atari 0.1)"""
    reward_scale: float = 1.0
    """reward log-likelihood scale (DreamerV2 loss_scales.reward: 1.0)"""
    discount_scale: float = 1.0
    """discount log-likelihood scale (DreamerV2 loss_scales.discount: 1.0)"""
    learning_rate: float = 3e-4
    """model Adam learning rate (dmc_vision model_opt.lr: 3e-4; defaults: 1e-4)"""
    adam_eps: float = 1e-5
    """model Adam epsilon (DreamerV2 model_opt.eps: 1e-5)"""
    grad_clip: float = 100.0
    """model global gradient-norm clip (DreamerV2 model_opt.clip: 100)"""
    weight_decay: float = 1e-6
    """decoupled weight decay per update, w <- (1 - wd) w (DreamerV2 model_opt.wd: 1e-6)"""
    proprio_layers: int = 4
    """hidden layers of the MLP encoder/decoder of the observation vector (env.observation proprio/both;
    DreamerV2 encoder/decoder mlp_layers: [400, 400, 400, 400])"""
    proprio_units: int = 400
    """units of the observation-vector MLP encoder/decoder (DreamerV2 mlp_layers: 400)"""
    proprio_scale: float = 1.0
    """observation-vector log-likelihood scale (DreamerV2 loss_scales.proprio: 1.0)"""
    proprio_symlog: bool = False
    """symlog the observation vector into the encoder and as the decoder's target (DreamerV3 enc symlog +
    dec symlog_mse; DreamerV2: off)"""
    init: Literal["torch", "reference"] = "reference"
    """parameter initialisation: reference = the TF/Keras code's (Glorot-uniform kernels incl. the GRU's
    Dense, zero biases; worldmodels.models.init) or PyTorch's defaults (benchmarks/bench_init.py: reference
    reaches a 13 % (pixels) / 19 % (proprio) lower loss after 40 updates)"""

    def image_size_rule(self, size: int) -> str | None:
        """What ``env.image_size`` must be for this model, or None when ``size`` is allowed."""
        return _conv_image_size_rule(size)

    def __post_init__(self):
        _check(self.stoch_dim >= 1, "model.stoch_dim", self.stoch_dim, ">= 1")
        _check(self.classes == 0 or self.classes >= 2, "model.classes", self.classes, "0 (Gaussian) or >= 2")
        _check(0.0 < self.kl_balance < 1.0, "model.kl_balance", self.kl_balance, "in (0, 1)")
        _check(self.kl_free >= 0, "model.kl_free", self.kl_free, ">= 0")
        _check(self.learning_rate > 0, "model.learning_rate", self.learning_rate, "> 0")
        _check(0 <= self.weight_decay < 1, "model.weight_decay", self.weight_decay, "in [0, 1)")
        _check(self.proprio_layers >= 1, "model.proprio_layers", self.proprio_layers, ">= 1")
        _check(self.proprio_units >= 1, "model.proprio_units", self.proprio_units, ">= 1")


@dataclass(frozen=True)
class LexaModelConfig(DreamerConfig):
    """LEXA's world model: DreamerV2's with LEXA's defaults (orybkin/lexa configs.yaml, methods.md 2.4):
    a Gaussian latent (``dyn_discrete`` 0, ``dyn_stoch`` 50), ``cnn_depth`` 32, KL balance 0.8 and free
    nats 1 (inherited), and no task reward: ``reward_scale`` must stay 0 (the reward head is never trained,
    nothing reads it). ``classes > 0`` selects the categorical DreamerV2 latent (LEXA's option)."""

    stoch_dim: int = 50
    """Gaussian stochastic state size (LEXA dyn_stoch: 50)"""
    classes: int = 0
    """0 = Gaussian latent (LEXA dyn_discrete: 0); > 0 = categorical"""
    cnn_depth: int = 32
    """conv encoder/decoder base channels (LEXA cnn_depth: 32)"""
    reward_scale: float = 0.0
    """LEXA uses no task reward: must be 0"""

    def __post_init__(self):
        super().__post_init__()
        _check(self.reward_scale == 0.0, "model.reward_scale", self.reward_scale, "0 for LEXA (it learns without task reward)")


@dataclass(frozen=True)
class PLDMConfig:
    """PLDM-style JEPA (Sobal, Zhang et al. 2025, arXiv 2502.14819): encoder + deterministic predictor
    trained by multi-step latent prediction + VICReg + inverse dynamics, no decoder, no reward.
    Loss coefficients: PLDM Two Rooms ``configs/wall/icml/seqlen90_3M.yaml`` (methods.md 3.5). The
    predictor unroll length is ``replay.sequence_length - 1`` (PLDM: 17 frames -> 16 steps)."""

    encoder_channels: tuple[int, ...] = (32, 64, 64)
    """IMPALA-style stage channels (IMPALA: 16, 32, 32; PLDM arch impala with width factor 2: 32, 64, 64)"""
    encoder_blocks: int = 2
    """residual blocks per encoder stage (IMPALA: 2)"""
    norm_groups: int = 4
    """GroupNorm groups in the encoder (must divide every stage's channels)"""
    input_pool: int = 1
    """average-pool the input image by this factor before the encoder (paper: 1; CPU configs: 2)"""
    frame_stack: int = 1
    """frames the encoder sees at once, oldest first, stacked on the channel axis (paper: 1). One frame
    hides the velocity of a second-order system (DMC point_mass); PLDM adds proprioception there, a
    stack of 2+ frames is the pixel-only way to show it (``worldmodels.models.frame_stack``)"""
    latent_dim: int = 512
    """flat latent size Z (PLDM's predictor rnnV2 is 512-512)"""
    predictor_hidden: int = 512
    """action-embedding size fed to the residual GRU predictor (PLDM rnnV2: 512)"""
    idm_hidden: int = 512
    """units of the inverse-dynamics MLP's hidden layer (PLDM idm: 512)"""
    sim_coeff: float = 1.0
    """multi-step prediction loss weight (PLDM sim_coeff: 1.0)"""
    std_coeff: float = 3.98
    """VICReg variance across the batch at t=0 (PLDM Two Rooms std_coeff: 3.98)"""
    cov_coeff: float = 6.92
    """VICReg covariance across the batch at t=0 (PLDM Two Rooms cov_coeff: 6.92)"""
    std_coeff_t: float = 0.245
    """VICReg variance across time within each trajectory (PLDM Two Rooms std_coeff_t: 0.245)"""
    cov_coeff_t: float = 0.0
    """VICReg covariance across time within each trajectory (PLDM Two Rooms cov_coeff_t: 0)"""
    sim_coeff_t: float = 0.742
    """temporal smoothness |z_{t+1} - z_t|^2 (PLDM Two Rooms sim_coeff_t: 0.742)"""
    idm_coeff: float = 1.072
    """inverse-dynamics MSE weight (PLDM Two Rooms idm.coeff: 1.072)"""
    variance_margin: float = 1.0
    """VICReg target std gamma (VICReg / PLDM: 1)"""
    learning_rate: float = 7e-4
    """Adam learning rate (PLDM Two Rooms base_lr: 7e-4)"""
    adam_eps: float = 1e-8
    """Adam epsilon (PLDM: torch's default 1e-8)"""
    weight_decay: float = 0.0
    """decoupled weight decay per update (PLDM: 0)"""
    grad_clip: float = 1000.0
    """global gradient-norm clip (PLDM does not clip; a loose bound that only guards against blow-ups)"""

    def image_size_rule(self, size: int) -> str | None:
        """What ``env.image_size`` must be for this model (the IMPALA encoder takes any size its input
        pool divides), or None when ``size`` is allowed."""
        if size % self.input_pool:
            return f"a multiple of model.input_pool ({self.input_pool}), the factor the encoder pools its input by"
        return None

    def __post_init__(self):
        _check(len(self.encoder_channels) >= 1 and all(c >= 1 for c in self.encoder_channels),
               "model.encoder_channels", self.encoder_channels, "a non-empty list of positive ints")  # fmt: skip
        _check(all(c % min(self.norm_groups, c) == 0 for c in self.encoder_channels) and self.norm_groups >= 1,
               "model.norm_groups", self.norm_groups, "a positive divisor of every encoder channel count")  # fmt: skip
        _check(self.encoder_blocks >= 0, "model.encoder_blocks", self.encoder_blocks, ">= 0")
        _check(self.input_pool >= 1, "model.input_pool", self.input_pool, ">= 1")
        _check(self.frame_stack >= 1, "model.frame_stack", self.frame_stack, ">= 1")
        _check(self.latent_dim >= 2, "model.latent_dim", self.latent_dim, ">= 2")
        for name in ("sim_coeff", "std_coeff", "cov_coeff", "std_coeff_t", "cov_coeff_t", "sim_coeff_t", "idm_coeff"):
            _check(getattr(self, name) >= 0, f"model.{name}", getattr(self, name), ">= 0")
        _check(self.learning_rate > 0, "model.learning_rate", self.learning_rate, "> 0")
        _check(self.grad_clip > 0, "model.grad_clip", self.grad_clip, "> 0")
        _check(0 <= self.weight_decay < 1, "model.weight_decay", self.weight_decay, "in [0, 1)")


@dataclass(frozen=True)
class OfflineConfig:
    """Training from a fixed reward-free dataset (``worldmodels.training.offline``; PLDM's setting).

    Two Rooms data is generated as PLDM does (``envs/two_rooms_data.py``; methods.md 3.6) and
    rendered on the fly; DMC data is uniform-random-policy episodes (``collect_random_episodes``).
    Batches use ``replay.batch_size`` x ``replay.sequence_length``."""

    dataset_dir: Optional[str] = None
    """dataset directory; generated there if it holds no dataset; None = ``{run_dir}/data``"""
    n_trajectories: int = 33334
    """Two Rooms trajectories to generate (PLDM main dataset: 3M transitions = 33334 x 90)"""
    n_steps: int = 91
    """observations per Two Rooms trajectory (PLDM: 91; 17/33/65 for the length sweep)"""
    mode: Literal["good", "random"] = "good"
    """Two Rooms data quality: heading random walk (PLDM good data) or uniform heading per step"""
    random_fraction: float = 0.0
    """fraction of good trajectories replaced by random ones (PLDM noise mixtures 0 .. 0.16)"""
    cross_wall_rate: Optional[float] = None
    """fraction of good trajectories that pass the door; None = 0.6 (PLDM good_quality_data.yaml)"""
    door_passing_fraction: Optional[float] = None
    """resample the generated data so exactly this fraction of trajectories passes the door (PLDM
    select_wc.py); 0.0 = PLDM's "no door-passing trajectories" set wc0; None = as generated"""
    dmc_episodes: int = 100
    """random-policy episodes to collect for DMC suites"""
    data_seed: int = 0
    """seed of the data generator / collector"""
    updates: int = 100_000
    """gradient updates in total"""
    log_every: int = 100
    """log mean training metrics every this many updates"""
    checkpoint_every: int = 1000
    """write checkpoints/latest.pt every this many updates (and at the end)"""
    eval_every: int = 0
    """goal-reaching evaluation (Two Rooms only) every this many updates; 0 = only at the end"""
    eval_episodes: int = 100
    """start/goal pairs per evaluation (PLDM: 100 envs); 0 = no evaluation"""
    eval_seed: int = 42
    """seed of the evaluation start/goal sampler (PLDM: 42)"""
    eval_shrink_horizon: bool = False
    """plan min(steps_left, planner horizon) steps in goal evaluations (PLDM: min(steps_left, 96))"""

    def __post_init__(self):
        _check(self.n_trajectories >= 1, "offline.n_trajectories", self.n_trajectories, ">= 1")
        _check(self.n_steps >= 2, "offline.n_steps", self.n_steps, ">= 2")
        _check(0.0 <= self.random_fraction <= 1.0, "offline.random_fraction", self.random_fraction, "in [0, 1]")
        _check(self.cross_wall_rate is None or 0.0 <= self.cross_wall_rate <= 1.0, "offline.cross_wall_rate",
               self.cross_wall_rate, "null or in [0, 1]")  # fmt: skip
        _check(self.door_passing_fraction is None or 0.0 <= self.door_passing_fraction <= 1.0,
               "offline.door_passing_fraction", self.door_passing_fraction, "null or in [0, 1]")  # fmt: skip
        _check(self.dmc_episodes >= 1, "offline.dmc_episodes", self.dmc_episodes, ">= 1")
        _check(self.updates >= 0, "offline.updates", self.updates, ">= 0")
        _check(self.log_every >= 1, "offline.log_every", self.log_every, ">= 1")
        _check(self.checkpoint_every >= 1, "offline.checkpoint_every", self.checkpoint_every, ">= 1")
        _check(self.eval_every >= 0, "offline.eval_every", self.eval_every, ">= 0")
        _check(self.eval_episodes >= 0, "offline.eval_episodes", self.eval_episodes, ">= 0")


@dataclass(frozen=True)
class ActorCriticConfig:
    """Imagination actor-critic (DreamerV2 agent.py::ActorCritic); defaults from danijar/dreamerv2
    configs.yaml ``defaults`` + ``dmc_vision`` (methods.md section 2.2)."""

    horizon: int = 15
    """imagination horizon H (DreamerV2 imag_horizon: 15)"""
    discount: float = 0.99
    """discount gamma (DreamerV2 discount: 0.99)"""
    lambda_: float = 0.95
    """lambda of the lambda-returns (DreamerV2 discount_lambda: 0.95)"""
    actor_lr: float = 8e-5
    """actor Adam learning rate (DreamerV2 actor_opt.lr: 8e-5)"""
    critic_lr: float = 8e-5
    """critic Adam learning rate (dmc_vision critic_opt.lr: 8e-5; defaults: 2e-4)"""
    adam_eps: float = 1e-5
    """Adam epsilon of both optimisers (DreamerV2 actor_opt/critic_opt eps: 1e-5)"""
    grad_clip: float = 100.0
    """global gradient-norm clip, per optimiser (DreamerV2 clip: 100)"""
    weight_decay: float = 1e-6
    """decoupled weight decay per update (DreamerV2 wd: 1e-6)"""
    actor_entropy: float = 1e-4
    """entropy bonus scale (dmc_vision actor_ent: 1e-4; defaults: 2e-3)"""
    actor_grad: Literal["dynamics", "reinforce", "both"] = "dynamics"
    """actor gradient: backprop through the model, REINFORCE, or a mix (DreamerV2 auto = dynamics for continuous actions)"""
    actor_grad_mix: float = 0.1
    """weight of the dynamics term when actor_grad is both (DreamerV2 actor_grad_mix: 0.1)"""
    target_update_every: int = 100
    """hard-copy the critic into the target critic every this many updates (DreamerV2 slow_target_update: 100, fraction 1)"""
    layers: int = 4
    """hidden layers of actor and critic (DreamerV2 actor/critic layers: 4)"""
    units: int = 400
    """units per hidden layer (DreamerV2 actor/critic units: 400)"""
    actor_dist: Literal["trunc_normal", "tanh_normal"] = "trunc_normal"
    """continuous action distribution (DreamerV2 actor.dist auto = trunc_normal for continuous actions)"""
    actor_min_std: float = 0.1
    """minimum action std (DreamerV2 actor.min_std: 0.1)"""
    exploration_noise: float = 0.0
    """extra Gaussian noise on sampled actions while collecting (DreamerV2 expl_noise: 0.0)"""

    def __post_init__(self):
        _check(self.horizon >= 2, "actor_critic.horizon", self.horizon, ">= 2")
        _check(0.0 < self.discount <= 1.0, "actor_critic.discount", self.discount, "in (0, 1]")
        _check(0.0 <= self.lambda_ <= 1.0, "actor_critic.lambda_", self.lambda_, "in [0, 1]")
        _check(self.actor_lr > 0, "actor_critic.actor_lr", self.actor_lr, "> 0")
        _check(self.critic_lr > 0, "actor_critic.critic_lr", self.critic_lr, "> 0")
        _check(0.0 <= self.actor_grad_mix <= 1.0, "actor_critic.actor_grad_mix", self.actor_grad_mix, "in [0, 1]")
        _check(self.target_update_every >= 1, "actor_critic.target_update_every", self.target_update_every, ">= 1")
        _check(self.actor_min_std > 0, "actor_critic.actor_min_std", self.actor_min_std, "> 0")


@dataclass(frozen=True)
class LexaConfig:
    """LEXA explorer + achiever (worldmodels/lexa.py, worldmodels/lexa_behaviour.py); defaults from
    orybkin/lexa configs.yaml (methods.md sections 2.4 and 3.3). Used by ``method: lexa``."""

    ensemble_members: int = 10
    """Plan2Explore ensemble size K (LEXA disag_models: 10)"""
    ensemble_layers: int = 4
    """hidden layers per ensemble member (LEXA disag_layers: 4)"""
    ensemble_units: int = 400
    """units per ensemble hidden layer (LEXA disag_units: 400)"""
    disag_log: bool = True
    """explorer reward log(mean_d std_k) (LEXA disag_log: True; DreamerV2: False)"""
    intrinsic_scale: float = 1.0
    """explorer reward scale (LEXA expl_intr_scale: 1; task reward scale 0)"""
    achiever_reward: Literal["temporal", "cosine"] = "temporal"
    """achiever reward: -D(e_hat_t, e_g) (lexa_temporal) or cos(feat_t, feat_g) (lexa_cosine)"""
    temporal_pairs: int = 256
    """positive pairs per temporal-distance loss (LEXA dd_num_positives: 256)"""
    negative_fraction: float = 0.1
    """negatives = int(fraction * pairs) = 25, goal from another replay sequence, label 1 (LEXA dd_neg_sampling_factor: 0.1)"""
    distance_lr: float = 8e-5
    """temporal-distance Adam learning rate (LEXA: value_lr 8e-5)"""
    distance_output: Literal["linear", "sigmoid"] = "linear"
    """output of D: linear regression onto the normalised steps (LEXA GC_Distance) or a sigmoid in [0, 1]
    (this toolkit before issue 16; kept to compare and to load runs trained with it: add
    ``distance_output: sigmoid`` and ``distance_batchnorm: false`` to such a run's config.yaml)"""
    distance_batchnorm: bool = True
    """BatchNorm after every hidden layer of D (LEXA GC_Distance: Dense -> act -> BatchNormalization)"""
    distance_negatives: Literal["sequence", "trajectory"] = "sequence"
    """negative pairs take their goal from an imagined rollout that starts in another *replay sequence*
    (LEXA tools.get_future_goal_idxs_neg_sampling) or merely another rollout (before issue 16: neighbouring
    starts of the same sequence are a few steps apart, so such 'negatives' can be near positives)"""
    distance_starts: int = 0
    """imagined rollouts D is trained on per update: 0 = one from every replay start state (LEXA), > 0 = a
    random subset of that size (64 before issue 16; cheaper on a CPU)"""
    goal_features: Literal["mean", "sample"] = "mean"
    """cosine goal features feat_g from the posterior mean (LEXA get_init_feat_embed(sample=False)) or a
    posterior sample (before issue 16)"""
    distance_replay: bool = False
    """also train D on the replay batch (LEXA ``dd_train_off_policy``, off in ``lexa_temporal``): each replay
    window cut into runs of H steps, a pair's state the *predicted* embedding e_hat of its posterior and its
    goal the *real* encoder embedding, the same kinds of input as the reward -D(e_hat_t, e_g), whose goal is a
    real embedding that imagined pairs never show D (LEXA's option feeds real embeddings on both sides)"""
    cosine_part: Literal["full", "stoch"] = "full"
    """features compared by the cosine reward: all of cat(deter, stoch) (LEXA) or the stochastic part only
    (the goal's deter is one GRU step from the zero state and the same for every goal; issue 16)"""
    distance_window: int = 0
    """W, the steps a temporal-distance label of 1 stands for: 0 = H, the imagination horizon (LEXA
    ``dd_seq_len``). W > H (with ``distance_replay``; not in LEXA) cuts replay windows into runs of W steps
    and labels every pair (j - i) / W, imagined ones too, so D ranks states up to W steps apart where H-step
    pairs leave it flat beyond H (issue 16)"""
    goal_hold: int = 1
    """filtering steps of a goal embedding held still with zero actions before the cosine reward reads its
    features (1 = LEXA get_init_feat_embed, one step from the zero state; K > 1 gives the goal its own deter,
    the pose at rest, so a state passing the goal at speed scores below one resting there; issue 16)"""
    ensemble_lr: float = 3e-4
    """ensemble Adam learning rate (LEXA exploration.py: the 'ensemble' optimiser uses model_lr 3e-4, grad_clip 100)"""
    explorer_every: int = 2
    """collection alternates explorer and achiever episodes (LEXA expl_every_ep: 2): episode k is an
    explorer episode when k % explorer_every == 0, else the achiever practises a goal from the replay"""
    goal_eval_every: int = 0
    """during training, every N collected episodes run the achiever on every goal of ``goal_eval_set``
    and log the success rate (0 = never; measured from state, never used for training)"""
    goal_eval_set: Optional[str] = None
    """goal task set for ``goal_eval_every`` (None = env.goal_set)"""

    def __post_init__(self):
        _check(self.ensemble_members >= 2, "lexa.ensemble_members", self.ensemble_members, ">= 2")
        _check(self.ensemble_layers >= 0, "lexa.ensemble_layers", self.ensemble_layers, ">= 0")
        _check(self.ensemble_units >= 1, "lexa.ensemble_units", self.ensemble_units, ">= 1")
        _check(self.temporal_pairs >= 1, "lexa.temporal_pairs", self.temporal_pairs, ">= 1")
        _check(0.0 <= self.negative_fraction <= 1.0, "lexa.negative_fraction", self.negative_fraction, "in [0, 1]")
        _check(self.distance_lr > 0, "lexa.distance_lr", self.distance_lr, "> 0")
        _check(self.ensemble_lr > 0, "lexa.ensemble_lr", self.ensemble_lr, "> 0")
        _check(self.explorer_every >= 1, "lexa.explorer_every", self.explorer_every, ">= 1")
        _check(self.goal_eval_every >= 0, "lexa.goal_eval_every", self.goal_eval_every, ">= 0")
        allowed = ("temporal", "cosine")
        _check(self.achiever_reward in allowed, "lexa.achiever_reward", self.achiever_reward, "'temporal' or 'cosine'")
        _check(self.distance_starts >= 0, "lexa.distance_starts", self.distance_starts, ">= 0")
        _check(self.goal_hold >= 1, "lexa.goal_hold", self.goal_hold, ">= 1")
        _check(self.distance_window >= 0, "lexa.distance_window", self.distance_window, ">= 0 (0 = the horizon H)")
        _check(self.distance_window == 0 or self.distance_replay, "lexa.distance_window", self.distance_window,
               "0 unless lexa.distance_replay is true (only replay runs hold pairs more than H steps apart)")  # fmt: skip
        for name, value, allowed in [
            ("distance_output", self.distance_output, ("linear", "sigmoid")),
            ("distance_negatives", self.distance_negatives, ("sequence", "trajectory")),
            ("goal_features", self.goal_features, ("mean", "sample")),
            ("cosine_part", self.cosine_part, ("full", "stoch")),
        ]:
            _check(value in allowed, f"lexa.{name}", value, " or ".join(repr(a) for a in allowed))


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method over action sequences (PlaNet, Hafner et al. 2019, planning.py)."""

    horizon: int = 12
    """planning horizon H (PlaNet: 12)"""
    iterations: int = 10
    """refit iterations I (PlaNet: 10)"""
    candidates: int = 1000
    """candidate action sequences per iteration J (PlaNet: 1000)"""
    top_k: int = 100
    """elites K refit per iteration (PlaNet: 100)"""
    warm_start: bool = False
    """shift the previous mean by one step instead of restarting at N(0, I) (PlaNet: False; TD-MPC style: True)"""
    min_std: float = 0.0
    """lower bound on the refit std (PlaNet: 0)"""
    exploration_noise: float = 0.3
    """Gaussian noise added to the executed action while collecting (PlaNet: 0.3; eval 0)"""
    max_norm: Optional[float] = None
    """cap on the L2 norm of each step's action vector ||a_h||_2, in the planner's [-1, 1] action units,
    applied after the per-coordinate clip (None = off; PLDM Two Rooms caps the step at ~1.8 px, i.e.
    1.8 / env.max_step = 0.735 here)"""

    def __post_init__(self):
        _check(self.horizon >= 1, "cem.horizon", self.horizon, ">= 1")
        _check(self.iterations >= 1, "cem.iterations", self.iterations, ">= 1")
        _check(1 <= self.top_k <= self.candidates, "cem.top_k", self.top_k, f"1..candidates ({self.candidates})")
        _check_max_norm(self.max_norm, "cem.max_norm")


@dataclass(frozen=True)
class MPPIConfig:
    """Model predictive path integral control (Williams et al. 2017); PLDM Two Rooms values in methods.md."""

    horizon: int = 12
    """planning horizon H"""
    iterations: int = 6
    """refinement iterations per action"""
    samples: int = 1000
    """sampled action sequences per iteration"""
    temperature: float = 0.5
    """lambda: weights are exp(return / temperature) after subtracting the max"""
    noise_std: float = 1.0
    """std of the Gaussian perturbations in [-1, 1] action units"""
    warm_start: bool = True
    """shift the previous plan by one step (PLDM, TD-MPC2: True)"""
    exploration_noise: float = 0.3
    """Gaussian noise added to the executed action while collecting (0 at eval)"""
    max_norm: Optional[float] = None
    """cap on the L2 norm of each step's action vector ||a_h||_2, in the planner's [-1, 1] action units,
    applied after the per-coordinate clip (None = off; PLDM Two Rooms caps the step at ~1.8 px, i.e.
    1.8 / env.max_step = 0.735 here)"""

    def __post_init__(self):
        _check(self.horizon >= 1, "mppi.horizon", self.horizon, ">= 1")
        _check(self.iterations >= 1, "mppi.iterations", self.iterations, ">= 1")
        _check(self.samples >= 2, "mppi.samples", self.samples, ">= 2")
        _check(self.temperature > 0, "mppi.temperature", self.temperature, "> 0")
        _check(self.noise_std > 0, "mppi.noise_std", self.noise_std, "> 0")
        _check_max_norm(self.max_norm, "mppi.max_norm")


def _check_max_norm(value: Optional[float], name: str) -> None:
    _check(value is None or value > 0, name, value, "null or > 0")


@dataclass(frozen=True)
class ICEMConfig:
    """Improved CEM (Pinneri et al. 2020, "Sample-efficient Cross-Entropy Method for Real-time Planning",
    Alg. 1). Defaults: the authors' code, martius-lab/iCEM ``settings/defaults/i-cem-blitz.json``
    (noise_beta there is per environment: 0.25 halfcheetah .. 3.0 default)."""

    horizon: int = 30
    """planning horizon h (iCEM: 30)"""
    iterations: int = 3
    """CEM iterations per step (iCEM ``opt_iterations``: 3)"""
    population: int = 40
    """N, sequences sampled in the first iteration (iCEM ``num_simulated_trajectories``: 40)"""
    population_decay: float = 1.25
    """gamma: iteration i samples max(2 K, int(N / gamma^i)) sequences (iCEM ``factor_decrease_num``: 1.25)"""
    elites: int = 10
    """K, elite set size (iCEM ``elites_size``: 10)"""
    noise_beta: float = 3.0
    """beta, colored noise exponent: power spectrum ~ 1/f^beta along time (0 = white; iCEM default: 3.0)"""
    init_std: float = 0.5
    """sigma_init, std at every step start in [-1, 1] action units (iCEM: 0.5 of the half range)"""
    momentum: float = 0.1
    """alpha: mean, std = (1 - alpha) * elite fit + alpha * previous (iCEM ``alpha``: 0.1)"""
    fraction_elites_reused: float = 0.3
    """xi: fraction of elites carried into the next iteration and (shifted) into the next step (iCEM: 0.3)"""
    keep_previous_elites: bool = True
    """add the previous iteration's best xi K elites to the population (iCEM: True)"""
    shift_elites_over_time: bool = True
    """add the last step's best xi K elites, shifted by one step, to the first iteration (iCEM: True)"""
    use_mean_actions: bool = True
    """add the mean itself to the last iteration's population (iCEM: True)"""
    warm_start: bool = True
    """start each step from the previous mean shifted by one step, last step repeated (iCEM: True)"""
    execute: Literal["best", "mean"] = "best"
    """return the best sequence of the last iteration (iCEM: best) or the refit mean"""
    exploration_noise: float = 0.3
    """Gaussian noise added to the executed action while collecting (0 at eval)"""
    max_norm: Optional[float] = None
    """cap on the L2 norm of each step's action vector ||a_h||_2, in the planner's [-1, 1] action units,
    applied after the per-coordinate clip (None = off; PLDM Two Rooms caps the step at ~1.8 px, i.e.
    1.8 / env.max_step = 0.735 here)"""

    def __post_init__(self):
        _check(self.horizon >= 1, "icem.horizon", self.horizon, ">= 1")
        _check(self.iterations >= 1, "icem.iterations", self.iterations, ">= 1")
        _check(self.elites >= 1, "icem.elites", self.elites, ">= 1")
        _check(self.population >= 2 * self.elites, "icem.population", self.population,
               f">= 2 * elites ({2 * self.elites})")  # fmt: skip
        _check(self.population_decay >= 1.0, "icem.population_decay", self.population_decay, ">= 1")
        _check(self.noise_beta >= 0, "icem.noise_beta", self.noise_beta, ">= 0")
        _check(self.init_std > 0, "icem.init_std", self.init_std, "> 0")
        _check(0.0 <= self.momentum < 1.0, "icem.momentum", self.momentum, "in [0, 1)")
        _check(0.0 <= self.fraction_elites_reused <= 1.0, "icem.fraction_elites_reused",
               self.fraction_elites_reused, "in [0, 1]")  # fmt: skip
        _check(self.execute in ("best", "mean"), "icem.execute", self.execute, "best or mean")
        _check_max_norm(self.max_norm, "icem.max_norm")


@dataclass(frozen=True)
class GradientPlannerConfig:
    """Gradient-based planning: Adam on the action sequence through ``model.imagine`` (PLDM's SGDPlanner,
    ``pldm/planning/planners/sgd_planner.py``; DINO-WM's GD planner). PLDM Two Rooms: lr 0.3, 900
    iterations, one start from zeros, actions projected (norm-capped) after every step."""

    horizon: int = 12
    """planning horizon H"""
    iterations: int = 100
    """Adam steps per plan (PLDM Two Rooms: 900)"""
    lr: float = 0.3
    """Adam learning rate in [-1, 1] action units (PLDM Two Rooms: 0.3, in its normalised units)"""
    restarts: int = 4
    """independent starts optimised together; the best-scoring sequence is kept (PLDM: 1)"""
    init_std: float = 0.5
    """restarts after the first start at clip(N(0, init_std^2)); the first starts at zeros or the warm start"""
    warm_start: bool = True
    """the first restart starts from the previous plan shifted by one step"""
    exploration_noise: float = 0.3
    """Gaussian noise added to the executed action while collecting (0 at eval)"""
    max_norm: Optional[float] = None
    """cap on the L2 norm of each step's action vector ||a_h||_2, in the planner's [-1, 1] action units,
    applied after the per-coordinate clip (None = off; PLDM Two Rooms caps the step at ~1.8 px, i.e.
    1.8 / env.max_step = 0.735 here)"""

    def __post_init__(self):
        _check(self.horizon >= 1, "gradient.horizon", self.horizon, ">= 1")
        _check(self.iterations >= 0, "gradient.iterations", self.iterations, ">= 0")
        _check(self.lr > 0, "gradient.lr", self.lr, "> 0")
        _check(self.restarts >= 1, "gradient.restarts", self.restarts, ">= 1")
        _check(self.init_std >= 0, "gradient.init_std", self.init_std, ">= 0")
        _check_max_norm(self.max_norm, "gradient.max_norm")


@dataclass(frozen=True)
class TrainConfig:
    seed_episodes: int = 5
    """random-policy episodes collected before training (PlaNet: 5)"""
    total_episodes: int = 1000
    """collected episodes (seed episodes included) after which training stops"""
    updates_per_episode: int = 100
    """model updates per collected episode, PlaNet's C (100)"""
    eval_every: int = 10
    """evaluate every this many collected episodes (0 = never)"""
    eval_episodes: int = 5
    """episodes per evaluation"""
    checkpoint_every: int = 1
    """write checkpoints/latest.pt every this many collected episodes"""
    max_minutes: float = 0.0
    """wall time of training in minutes, summed over resumes; 0 = no limit. Checked between updates
    and episodes: when it runs out the run is checkpointed, then the final evaluation runs outside
    this budget (``final_eval_episodes`` online; offline: Two Rooms goal reaching). A finished run
    is extended with ``worldmodels train --resume RUN train.max_minutes=M``"""
    final_eval_episodes: int = 5
    """episodes of the agent and of random actions (same start states) evaluated when the budget ends
    the run, logged as ``final/*`` and written to ``RUN_DIR/final_eval.json``; 0 = none"""
    compile: bool = False
    """``torch.compile`` the world model's networks (encoder, decoder, heads, LayerNorm-GRU cell; each
    compiled once in place, the RSSM's Python time loop stays eager); costs minutes of compile time
    at the first update; helps on a GPU (``benchmarks/bench_gpu.py``), rarely on a CPU"""
    precision: Literal[32, 16, "bf16"] = 32
    """world-model update precision: 32 (float32), 16 (float16 autocast + GradScaler, DreamerV2's
    ``precision: 16``; CUDA only) or bf16 (bfloat16 autocast, CPU or GPU); the behaviour learner
    stays float32"""
    cuda_graph: bool = False
    """replay the world-model update (forward, backward, clip) as one captured CUDA graph, the optimiser
    step eager (``training/cuda_graph.py``): one launch instead of thousands for the RSSM scan; CUDA,
    RSSM models, precision 32 or bf16 and one process only (refused otherwise)"""

    def __post_init__(self):
        _check(not (self.cuda_graph and self.precision == 16), "train.cuda_graph", self.cuda_graph,
               "false with train.precision=16 (its GradScaler steps on the host); use precision 32 or bf16")  # fmt: skip
        _check(self.seed_episodes >= 1, "train.seed_episodes", self.seed_episodes, ">= 1")
        _check(self.final_eval_episodes >= 0, "train.final_eval_episodes", self.final_eval_episodes, ">= 0")
        _check(self.total_episodes >= self.seed_episodes, "train.total_episodes", self.total_episodes, ">= seed_episodes")
        _check(self.updates_per_episode >= 1, "train.updates_per_episode", self.updates_per_episode, ">= 1")
        _check(self.eval_every >= 0, "train.eval_every", self.eval_every, ">= 0 (0 = never)")
        _check(self.eval_episodes >= 1 or self.eval_every == 0, "train.eval_episodes", self.eval_episodes,
               ">= 1 when train.eval_every > 0 (or set train.eval_every=0 to never evaluate)")  # fmt: skip
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", self.checkpoint_every, ">= 1 (episodes)")
        _check(self.max_minutes >= 0, "train.max_minutes", self.max_minutes, ">= 0 (0 = no limit)")


@dataclass(frozen=True)
class LogConfig:
    progress: bool = True
    """show a progress bar (tqdm) with live loss and return"""
    tensorboard: bool = True
    """write TensorBoard event files"""
    video_every: int = 0
    """write an eval video every this many evaluations (0 = never)"""
    openloop_every: int = 0
    """log an open-loop imagination video + error curve to TensorBoard every this many collected
    episodes (0 = never); uses ``openloop_context`` + ``openloop_horizon`` rows of replay episodes"""
    openloop_context: int = 5
    """frames filtered by the posterior before the open-loop rollout (Dreamer/PlaNet: 5)"""
    openloop_horizon: int = 45
    """open-loop prediction steps (Dreamer convention: 45, i.e. 50-frame sequences)"""
    openloop_sequences: int = 6
    """sequences tiled side by side in the video (DreamerV2 video_pred: 6)"""


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunConfig:
    method: str = "planet"
    """which method to train (planet, dreamerv2, lexa, pldm); picks the class of ``model`` (MODEL_CONFIGS)"""
    seed: int = 0
    """seed for torch, numpy and the environment"""
    device: str = "auto"
    """auto (GPU when present), cpu, cuda or cuda:N"""
    run_dir: Optional[str] = None
    """where the run is written; None = runs/{method}_{domain}_{task}_{seed}_{timestamp}"""
    planner: Literal["cem", "mppi", "icem", "gradient"] = "cem"
    """how the agent acts while collecting and evaluating"""
    env: EnvConfig = field(default_factory=EnvConfig)
    model: Any = field(default_factory=PlaNetConfig)
    cem: CEMConfig = field(default_factory=CEMConfig)
    mppi: MPPIConfig = field(default_factory=MPPIConfig)
    icem: ICEMConfig = field(default_factory=ICEMConfig)
    gradient: GradientPlannerConfig = field(default_factory=GradientPlannerConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    """offline (reward-free dataset) training: data generation and update schedule (worldmodels.training.offline)"""
    lexa: LexaConfig = field(default_factory=LexaConfig)
    """LEXA explorer and achiever (``method: lexa``)"""

    def __post_init__(self):
        _check(is_device_name(self.device), "device", self.device, DEVICE_CHOICES)
        _check(not (self.train.precision == 16 and self.device == "cpu"), "train.precision", self.train.precision,
               "32 or bf16 with device=cpu (float16 training needs a CUDA GPU for its GradScaler)")  # fmt: skip
        _check(self.method in MODEL_CONFIGS, "method", self.method, f"one of {', '.join(MODEL_CONFIGS)}")
        if self.env.observation != "pixels":
            _check(self.method in PROPRIO_METHODS, "env.observation", self.env.observation,
                   f"pixels for method {self.method} (the observation vector is read by {', '.join(PROPRIO_METHODS)}; "
                   "LEXA's goals and PLDM's encoder are images)")  # fmt: skip
        if not self.env.renders():
            for key, value in [("log.video_every", self.log.video_every),
                               ("log.openloop_every", self.log.openloop_every)]:  # fmt: skip
                _check(value == 0, key, value, "0 when the env renders no pixels (set env.render: true for videos)")
        rule = self.model.image_size_rule(self.env.image_size)
        _check(rule is None, "env.image_size", self.env.image_size, f"{rule} (method {self.method})")
        self._check_episode_rows()
        stack = getattr(self.model, "frame_stack", 1)
        _check(self.replay.sequence_length >= stack + 1, "replay.sequence_length", self.replay.sequence_length,
               f">= model.frame_stack + 1 = {stack + 1} (the first frame_stack - 1 rows of a window are history)")  # fmt: skip
        if self.lexa.distance_replay:  # only LEXA reads it; other methods keep the default False
            _check(self.replay.sequence_length >= self.actor_critic.horizon, "replay.sequence_length",
                   self.replay.sequence_length, f">= actor_critic.horizon = {self.actor_critic.horizon} with "
                   "lexa.distance_replay (D's replay pairs lie in runs of H steps, as its imagined ones)")  # fmt: skip
            window = self.lexa.distance_window
            if window:
                _check(self.actor_critic.horizon <= window <= self.replay.sequence_length, "lexa.distance_window",
                       window, f"in [actor_critic.horizon, replay.sequence_length] = [{self.actor_critic.horizon}, "
                       f"{self.replay.sequence_length}] (imagined labels stay below 1; a replay run fits a window)")  # fmt: skip
        if self.lexa.goal_eval_every and not (self.lexa.goal_eval_set or self.env.goal_set):
            raise ConfigError(
                "lexa.goal_eval_every > 0 needs a goal task set: set lexa.goal_eval_set or env.goal_set "
                "(point_mass, reacher, roboyoga_walker, roboyoga_quadruped)."
            )


    def _check_episode_rows(self) -> None:
        """Training windows fit in one episode, and the replay holds at least one episode."""
        if self.env.suite == "two_rooms":
            _check(self.replay.sequence_length <= self.offline.n_steps, "replay.sequence_length",
                   self.replay.sequence_length, f"<= offline.n_steps ({self.offline.n_steps}), the observations "
                   "of one Two Rooms trajectory")  # fmt: skip
            return
        rows = self.env.episode_rows()
        if rows is None:
            return
        episode = f"the rows of one episode, ceil(env.episode_length / action_repeat) + 1 = {rows}"
        _check(self.replay.sequence_length <= rows, "replay.sequence_length", self.replay.sequence_length,
               f"<= {episode} (windows never cross episodes)")  # fmt: skip
        _check(self.replay.capacity >= rows, "replay.capacity", self.replay.capacity, f">= {episode}")


MODEL_CONFIGS: dict[str, type] = {
    "planet": PlaNetConfig,
    "dreamerv2": DreamerConfig,
    "lexa": LexaModelConfig,
    "pldm": PLDMConfig,
}
"""The model-config dataclass of each ``method:`` (the rest of a method is ``worldmodels.methods.METHODS``)."""


PROPRIO_METHODS = ("planet", "dreamerv2")
"""Methods whose world model can observe the DMC observation vector (``env.observation: proprio | both``)."""


def model_config_class(method: str) -> type:
    """The model-config dataclass for a method name; ConfigError naming the allowed methods otherwise."""
    if method not in MODEL_CONFIGS:
        raise ConfigError(f"Unknown method {method!r} for 'method'; allowed: {', '.join(MODEL_CONFIGS)}.")
    return MODEL_CONFIGS[method]


# ----------------------------------------------------------------------------- loading


def _conv_image_size_rule(size: int) -> str | None:
    """The conv_ha encoder and decoder take :data:`CONV_IMAGE_SIZE` only."""
    if size != CONV_IMAGE_SIZE:
        return f"{CONV_IMAGE_SIZE}, the only size the conv encoder and decoder take"
    return None


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"Invalid value {value!r} for '{key}': must be {allowed}.")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (tuple, list):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Validate/convert one YAML value against a type annotation; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
    elif tp is type(None):
        if value is None:
            return None
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp)[:1]
            return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, prefix=key + ".")
        if dataclasses.is_dataclass(value):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"Wrong type for '{key}': got {value!r} ({type(value).__name__}), expected {_type_name(tp)}.")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (nested) dict, validating every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping of keys to values, got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown config key '{prefix}{key}'. Valid keys here: {', '.join(names)}.{hint}"
            )
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        tp = hints[name]
        if cls is RunConfig and name == "model":
            tp = model_config_class(data.get("method", RunConfig.method))
        kwargs[name] = _coerce(data[name], tp, prefix + name)
    if cls is RunConfig and "model" not in kwargs:
        kwargs["model"] = model_config_class(kwargs.get("method", RunConfig.method))()
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as err:  # pragma: no cover - only on programming errors
        raise ConfigError(f"Could not build {cls.__name__}: {err}") from err


def to_dict(cfg: Any) -> dict:
    """Dataclass -> plain nested dict (tuples become lists) suitable for YAML."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply dotted ``key=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like key=value, e.g. train.total_episodes=20.")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override '{key}': '{part}' is a value, not a section.")
        node[parts[-1]] = value
    return data


def with_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """A copy of ``cfg`` with dotted ``key=value`` overrides applied and validated as at load."""
    return from_dict(RunConfig, apply_overrides(to_dict(cfg), list(overrides)))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML file (or defaults when ``path`` is None), apply overrides, validate.

    Raises:
        ConfigError: missing/unreadable file, unknown key, wrong type or bad range.
    """
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {str(p)!r} does not exist; see the configs/ folder for examples.")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"Config file {str(p)!r} is not valid YAML: {err}") from err
    apply_overrides(data, list(overrides or []))
    return from_dict(RunConfig, data)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (the run directory's ``config.yaml``)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
