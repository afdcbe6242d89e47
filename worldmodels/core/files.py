"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every durable record of the toolkit is replaced this way (checkpoints, replay ``replay.json``,
dataset ``dataset.json`` and episode files): written to a temp file beside the target, optionally
fsynced, then ``os.replace``-d over it. The temp file has a fixed name, so one left behind by a
killed process is overwritten by the next write instead of piling up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path, write: Callable[[BinaryIO], None], fsync: bool = True) -> None:
    """Write ``path`` atomically: ``write(file)`` into ``.NAME.tmp`` in the same directory, then replace.

    Args:
        path: the file to create or replace.
        write: fills the open binary temp file.
        fsync: flush the temp file to the device before the rename (survives power loss, not only
            the death of the process).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_json(path, data: dict, fsync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda file: file.write(json.dumps(data).encode()), fsync=fsync)
