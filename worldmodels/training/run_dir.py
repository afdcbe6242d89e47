"""A run directory and its checkpoint: where a run lives, what is saved, how it resumes.

    RUN_DIR/config.yaml               the resolved config (a resumed run reads it back)
    RUN_DIR/checkpoints/latest.pt     model, optimiser, behaviour, counters, RNG states (atomic)
    RUN_DIR/replay/ or RUN_DIR/data/  the online replay or the offline dataset (on disk by themselves)
    RUN_DIR/metrics.jsonl, tensorboard/, videos/

The online and the offline loop write the same checkpoint payload and resume through the same
:func:`restore_state`, so ``eval``/``plan``/``imagine`` load either kind of run the same way.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from worldmodels.core.config import ConfigError, RunConfig, load_config, save_config, to_dict
from worldmodels.core.config import DEVICE_CHOICES, is_device_name
from worldmodels.training import checkpoint


@dataclass
class Counters:
    """The loop's durable position besides what the replay itself holds on disk."""

    updates: int = 0
    """world-model updates done"""
    train_seconds: float = 0.0
    """wall time spent in the loop, over all (re)starts"""
    evals: int = 0
    """evaluations done (picks which ones write a video)"""
    last_eval: int = -1
    """episode (online) or update (offline) at which the last evaluation ran; -1 = none yet"""
    episodes: int = 0
    """episodes in the replay when the checkpoint was written (informational; the replay is the truth)"""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Counters":
        """Read counters of any checkpoint, including those written before this class existed
        (``last_eval_episode`` / ``last_eval_update`` were the online / offline names of ``last_eval``)."""
        values = dict(values)
        for old in ("last_eval_episode", "last_eval_update"):
            if old in values:
                values.setdefault("last_eval", values.pop(old))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; any other name than :data:`DEVICE_CHOICES`, ``cuda``
    without a GPU and ``cuda:N`` past the last GPU are one-sentence ConfigErrors."""
    if not is_device_name(name):
        raise ConfigError(f"Unknown device {name!r}: must be {DEVICE_CHOICES}.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} was requested but no CUDA GPU is available; use device=auto or cpu.")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r}: there are only {torch.cuda.device_count()} GPU(s), cuda:0 .. "
                          f"cuda:{torch.cuda.device_count() - 1}.")  # fmt: skip
    return device


def default_run_dir(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    task = f"{cfg.env.domain}_{cfg.env.task}" if cfg.env.suite == "dmc" else cfg.env.suite
    return Path("runs") / f"{cfg.method}_{task}_{cfg.seed}_{stamp}"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "latest.pt"


def prepare(cfg: RunConfig | None, run_dir: str | Path | None, resume: bool) -> tuple[RunConfig, Path]:
    """Resolve the run directory and config (a resumed run reads its own ``config.yaml``)."""
    if resume:
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no config.yaml); cannot resume.")
        return load_config(run_dir / "config.yaml"), run_dir
    run_dir = Path(run_dir or cfg.run_dir or default_run_dir(cfg))
    if checkpoint_path(run_dir).exists():
        raise FileExistsError(f"{str(run_dir)!r} already holds a run; use --resume {run_dir} to continue it.")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    return cfg, run_dir


def save_state(run_dir: Path, cfg: RunConfig, model, optimizer, behaviour, counters: Counters) -> None:
    """Atomically checkpoint model, optimiser, behaviour learner, counters and RNG states."""
    payload = {
        "config": to_dict(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "behaviour": behaviour.state_dict() if behaviour is not None else None,
        "counters": counters.to_dict(),
        "rng": checkpoint.rng_state(),
    }
    checkpoint.save_atomic(payload, checkpoint_path(run_dir))


def restore_state(run_dir: Path, model, optimizer, behaviour, device) -> Counters:
    """Load the last checkpoint into ``model``, ``optimizer`` and ``behaviour``, restore the RNG
    states, and return the counters; a run without a checkpoint yet starts at zero."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return Counters()
    state = checkpoint.load(path, map_location=device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if behaviour is not None and state.get("behaviour") is not None:
        behaviour.load_state_dict(state["behaviour"])
    checkpoint.set_rng_state(state["rng"])
    return Counters.from_dict(state["counters"])


def load_weights(run_dir: str | Path, model, behaviour, device) -> None:
    """Load a checkpoint's model and behaviour weights for acting (``eval``/``plan``/``imagine``)."""
    state = checkpoint.load(checkpoint_path(run_dir), map_location=device)
    model.load_state_dict(state["model"])
    model.eval()
    if behaviour is not None:
        behaviour.load_state_dict(state["behaviour"])
