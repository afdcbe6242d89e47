"""Atomic save/load of run state: models, optimisers, counters and RNG states.

A checkpoint is written to a temporary file in the same directory, flushed and fsynced, then
``os.replace``d over the target, so a crash (even kill -9) leaves either the old or the new
file, never a torn one. The replay buffer is not inside the checkpoint: it lives on disk in the
run directory and reopens by itself (see ``worldmodels/data/replay.py``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.core.files import atomic_write


def save_atomic(payload: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (temp file + fsync + os.replace; :func:`atomic_write`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(payload, file))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_atomic`; clear error if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}; was the run started and did it finish one episode?")
    return torch.load(path, map_location=map_location, weights_only=False)


def rng_state() -> dict:
    """Every RNG the loop draws from: python, numpy, torch CPU and (if present) CUDA."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the RNG states captured by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
