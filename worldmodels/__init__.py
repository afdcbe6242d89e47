"""worldmodels: latent world models from pixels, and acting with them.

Public API: ``WorldModel`` (the interface), ``load_config`` and the keys module.
"""

import os

# The one place MUJOCO_GL is defaulted: headless rendering must be chosen before MuJoCo loads
# (torchrl imports it too), and every module of worldmodels, planners and envs imports this
# package first (through worldmodels.core).
os.environ.setdefault("MUJOCO_GL", "egl")

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, LossOutput, WorldModel, check_world_model
from worldmodels.core.config import ConfigError, RunConfig, load_config

__all__ = [
    "keys",
    "WorldModel",
    "LossOutput",
    "CapabilityError",
    "check_world_model",
    "ConfigError",
    "RunConfig",
    "load_config",
]
__version__ = "0.1.0"
