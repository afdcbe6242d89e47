"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every durable record of the toolkit is replaced this way (checkpoints, replay ``replay.json``,
dataset ``dataset.json`` and episode files): written to a temp file beside the target, optionally
fsynced, then ``os.replace``-d over it. The temp file has a fixed name, so one left behind by a
killed process is overwritten by the next write instead of piling up, and a writer opening its
directory removes such leftovers (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Callable


def temporary_path(path) -> Path:
    """Where :func:`atomic_write` writes ``path`` before replacing it: ``.NAME.tmp`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def atomic_write(path, write: Callable[[BinaryIO], None], fsync: bool = True,
                 before_replace: Callable[[Path], None] | None = None) -> None:  # fmt: skip
    """Write ``path`` atomically: ``write(file)`` into ``.NAME.tmp`` in the same directory, then replace.

    Args:
        path: the file to create or replace.
        write: fills the open binary temp file.
        fsync: flush the temp file to the device before the rename (survives power loss, not only
            the death of the process).
        before_replace: called with the complete temp file's path just before it replaces ``path``
            (checkpoints verify it there and rotate the old file away); raising keeps ``path``.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as file:
            write(file)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        if before_replace is not None:
            before_replace(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_json(path, data: dict, fsync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda file: file.write(json.dumps(data).encode()), fsync=fsync)


def remove_stale_temporaries(directory) -> list[Path]:
    """Delete the ``.NAME.tmp`` files a killed writer left in ``directory`` (not its subfolders).

    Only the directory's single writer may call this (a run holding its lock, a dataset writer):
    another writer's temp file in flight would be deleted under it. Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [path for path in directory.glob(".*.tmp") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
