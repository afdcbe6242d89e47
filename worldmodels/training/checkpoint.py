"""Atomic save/load of run state: models, optimisers, counters and RNG states.

A checkpoint is written to a temporary file in the same directory, flushed and fsynced, then
``os.replace``d over the target, so a crash (even kill -9) leaves either the old or the new
file, never a torn one. :func:`save_rotating` also reads the new file back before it replaces the
old one, and keeps the old one as ``previous.pt``, so one unreadable file (a disk fault, a
truncation by hand) costs one checkpoint interval, not the run. The replay buffer is not inside
the checkpoint: it lives on disk in the run directory and reopens by itself (see ``worldmodels/data/replay.py``).
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.core.files import atomic_write, temporary_path


def save_atomic(payload: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (temp file + fsync + os.replace; :func:`atomic_write`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(payload, file))


class UnreadableCheckpoint(ValueError):
    """A checkpoint file exists but cannot be loaded (empty, truncated, garbled, not a checkpoint)."""


def save_rotating(payload: Any, path: str | Path, previous: str | Path) -> None:
    """Save ``payload`` to ``path`` atomically, keeping the file it replaces as ``previous``.

    The new file is loaded back before anything is replaced, and the old ``path`` becomes
    ``previous`` only when it is intact (an unreadable one is dropped, so a good ``previous`` stays).
    ``path`` exists throughout (``previous`` is a hard link to it), so readers never miss it; where
    hard links fail it is renamed, and a crash before the new file lands leaves only ``previous``,
    which loaders fall back to.
    """
    path, previous = Path(path), Path(previous)
    path.parent.mkdir(parents=True, exist_ok=True)

    def verify_and_rotate(temporary: Path) -> None:
        load(temporary)
        if path.exists() and is_intact(path):
            keep_as(path, previous)

    atomic_write(path, lambda file: torch.save(payload, file), before_replace=verify_and_rotate)


def keep_as(path: Path, previous: Path) -> None:
    """Make ``previous`` the file now at ``path``: a hard link renamed into place, else a rename."""
    link = temporary_path(previous)
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(link, previous)


def is_intact(path: str | Path) -> bool:
    """Whether ``path`` is a complete ``torch.save`` archive (every member's CRC checks), without unpickling."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_atomic`.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnreadableCheckpoint: the file is empty, truncated, garbled or holds no checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}; was the run started and did it finish one episode?")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch, pickle and zipfile raise many kinds for a damaged file
        detail = str(err).splitlines()[0] if str(err) else "no detail"
        raise UnreadableCheckpoint(f"{str(path)!r} is not a readable checkpoint ({type(err).__name__}: {detail}).") from err
    if not isinstance(state, dict) or "model" not in state:
        raise UnreadableCheckpoint(f"{str(path)!r} holds no checkpoint (no model weights in it).")
    return state


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
