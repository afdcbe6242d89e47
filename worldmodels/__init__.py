"""worldmodels: latent world models from pixels, and acting with them.

Public API: ``WorldModel`` (the interface), ``load_config`` and the keys module. They are loaded on
first use (PEP 562 ``__getattr__``), so that importing the package (e.g. for ``worldmodels --help``)
does not import torch.
"""

import os

# The one place MUJOCO_GL is defaulted: headless rendering must be chosen before MuJoCo loads
# (torchrl imports it too), and every module of worldmodels, planners and envs imports this
# package first (through worldmodels.core).
os.environ.setdefault("MUJOCO_GL", "egl")

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


def __getattr__(name: str):
    """Import a re-exported name on first access (torch loads only when the contract is used)."""
    if name == "keys":
        from worldmodels.core import keys

        return keys
    if name in ("WorldModel", "LossOutput", "CapabilityError", "check_world_model"):
        from worldmodels.core import interface

        return getattr(interface, name)
    if name in ("ConfigError", "RunConfig", "load_config"):
        from worldmodels.core import config

        return getattr(config, name)
    raise AttributeError(f"module 'worldmodels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
