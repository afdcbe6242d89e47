"""Output paths checked before any work starts: one sentence instead of an errno after the work.

A command that writes a video, a dataset or a folder of images calls these first, so that an
unwritable path (``/sys/x``, a read-only folder, an existing file where a folder is wanted) is
refused before an env, a model or an episode is made.
"""

from __future__ import annotations

import os
from pathlib import Path


def writable_directory(path: str | Path, what: str) -> Path:
    """Create directory ``path`` (and its parents) if needed and check it can be written.

    Raises:
        ValueError: one sentence naming ``what`` and ``path`` when it is an existing file or
            cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is an existing file, not a directory; pass a directory path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"{what} {str(path)!r} cannot be created ({err.strerror or err}); pass a directory you can write to."
        ) from err
    _probe(path / f".worldmodels-write-test-{os.getpid()}", what, path)
    return path


def writable_file(path: str | Path, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """Check that file ``path`` can be written (creating its folder), without leaving a file behind.

    Args:
        what: how the message names the file, e.g. ``"--video"``.
        suffixes: allowed file endings (e.g. ``(".mp4", ".gif")``); empty = any.

    Raises:
        ValueError: one sentence naming ``what`` and ``path`` (wrong ending, a directory, or not writable).
    """
    path = Path(path)
    if suffixes and path.suffix not in suffixes:
        raise ValueError(f"{what} {str(path)!r} must end in {' or '.join(suffixes)}.")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory; pass a file name, e.g. {path / ('out' + (suffixes or ('',))[0])}.")
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be written: {str(path.parent)!r} is a file, not a directory.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} cannot be written ({err.strerror or err}); pass a path you can write to.") from err
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ValueError(f"{what} {str(path)!r} cannot be written (permission denied); pass a path you can write to.")
        return path
    _probe(path, what, path)
    return path


def _probe(probe: Path, what: str, shown: Path) -> None:
    """Create and delete ``probe`` (os.access is not enough: root on a read-only mount passes it)."""
    try:
        with open(probe, "xb"):
            pass
    except FileExistsError:
        return
    except OSError as err:
        raise ValueError(f"{what} {str(shown)!r} cannot be written ({err.strerror or err}); pass a path you can write to.") from err
    probe.unlink(missing_ok=True)
