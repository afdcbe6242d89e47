"""A run directory and its checkpoint: where a run lives, what is saved, how it resumes.

    RUN_DIR/config.yaml               the resolved config (a resumed run reads it back)
    RUN_DIR/checkpoints/latest.pt     model, optimiser, behaviour, counters, RNG states (atomic, verified)
    RUN_DIR/checkpoints/previous.pt   the checkpoint before it (the fallback when latest.pt is unreadable)
    RUN_DIR/checkpoints/latest.json   latest.pt's counters (say what a fallback lost)
    RUN_DIR/replay/ or RUN_DIR/data/  the online replay or the offline dataset (on disk by themselves)
    RUN_DIR/metrics.jsonl, tensorboard/, videos/
    RUN_DIR/.lock                     flock-ed by the one process training the run (PID and host inside)

The online and the offline loop write the same checkpoint payload and resume through the same
:func:`restore_state`, so ``eval``/``plan``/``imagine`` load either kind of run the same way.

Durability: :func:`open_for_writing` holds the run's lock for the whole run (the OS drops it when
the process dies, kill -9 included) and removes temp files a killed writer left; every checkpoint
is read back before it replaces the last one, which is kept as ``previous.pt``; loading falls back
to it with a warning; :func:`restore_state` cuts ``metrics.jsonl`` back to the resumed checkpoint,
so resumed rows are not duplicated; :func:`repair_run` rebuilds ``config.yaml`` and ``replay.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import yaml

from worldmodels.core.config import DEVICE_CHOICES, ConfigError, RunConfig, from_dict, is_device_name, to_dict
from worldmodels.core.files import atomic_write, atomic_write_json, remove_stale_temporaries
from worldmodels.data.replay import metadata_problem, rebuild_replay_metadata
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
    metrics_bytes: int = -1
    """size of ``metrics.jsonl`` when the checkpoint was written (a resume cuts it back to this); -1 = unknown"""

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


def previous_checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints" / "previous.pt"


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run wrote a checkpoint (``latest.pt``, or ``previous.pt`` alone after a crash mid-rotation)."""
    return checkpoint_path(run_dir).exists() or previous_checkpoint_path(run_dir).exists()


def resolve_run_dir(cfg: RunConfig, run_dir: str | Path | None) -> Path:
    """The directory a new run writes to: ``run_dir``, else ``cfg.run_dir``, else a fresh timestamped one."""
    return Path(run_dir or cfg.run_dir or default_run_dir(cfg))


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The run's ``config.yaml``; an empty, garbled or invalid one is one sentence naming the remedy."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{str(Path(run_dir))!r} is not a run directory (no config.yaml).")
    remedy = f"rebuild it from the run's checkpoint with `worldmodels repair {run_dir}`."
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{str(path)!r} is corrupt (not YAML: {type(err).__name__}); {remedy}") from err
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{str(path)!r} is corrupt (empty or not a mapping of config keys); {remedy}")
    try:
        return from_dict(RunConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{str(path)!r} is not a valid run config ({err}); {remedy}") from err


def write_run_config(cfg: RunConfig, run_dir: Path) -> None:
    """Write ``config.yaml`` atomically (a crash never leaves a torn config)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    atomic_write(Path(run_dir) / "config.yaml", lambda file: file.write(text.encode()))


def prepare(cfg: RunConfig | None, run_dir: str | Path | None, resume: bool) -> tuple[RunConfig, Path]:
    """Resolve the run directory and config (a resumed run reads its own ``config.yaml``)."""
    if resume:
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no config.yaml); cannot resume.")
        return read_run_config(run_dir), run_dir
    run_dir = resolve_run_dir(cfg, run_dir)
    if has_checkpoint(run_dir):
        raise FileExistsError(f"{str(run_dir)!r} already holds a run; use --resume {run_dir} to continue it.")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(cfg, run_dir)
    return cfg, run_dir


# ----------------------------------------------------------------------------- one writer


class RunDirectoryBusy(FileExistsError):
    """Another live process holds the run directory's lock (it is training that run)."""


def lock_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / ".lock"


@contextlib.contextmanager
def writer_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``RUN_DIR/.lock`` (PID and host written in it) while the body runs.

    The OS releases the lock when the process dies, however it dies, so a lock is never stale.
    Readers (``eval``, ``plan``, ``imagine``) never take it. Local file systems only: ``flock`` on
    some network file systems does not exclude other hosts.

    Raises:
        RunDirectoryBusy: another process holds it; the message names its PID and host.
    """
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirectoryBusy(_busy_message(run_dir, path)) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield
    finally:
        os.close(fd)


def _busy_message(run_dir, path: Path) -> str:
    fields = path.read_text().split() if path.is_file() else []
    holder = f"process {fields[0]} on host {fields[1]}" if len(fields) == 2 else "another process"
    return (f"{str(run_dir)!r} is being trained by {holder} (it holds {path}); wait for it to finish or stop it, "
            f"then run this again (eval, plan and imagine can read the run meanwhile).")


@contextlib.contextmanager
def open_for_writing(run_dir: str | Path) -> Iterator[Path]:
    """Take the run's writer lock, then remove temp files a killed writer left; yields the directory."""
    run_dir = Path(run_dir)
    with writer_lock(run_dir):
        for folder in (run_dir, run_dir / "checkpoints", run_dir / "replay"):
            remove_stale_temporaries(folder)
        yield run_dir


# ----------------------------------------------------------------------------- checkpoints


def metrics_size(run_dir: Path) -> int:
    path = Path(run_dir) / "metrics.jsonl"
    return path.stat().st_size if path.is_file() else 0


def save_state(run_dir: Path, cfg: RunConfig, model, optimizer, behaviour, counters: Counters) -> None:
    """Checkpoint model, optimiser, behaviour learner, counters and RNG states (verified, rotated;
    :func:`worldmodels.training.checkpoint.save_rotating`), and ``latest.json`` beside it."""
    counters.metrics_bytes = metrics_size(run_dir)
    payload = {
        "config": to_dict(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "behaviour": behaviour.state_dict() if behaviour is not None else None,
        "counters": counters.to_dict(),
        "rng": checkpoint.rng_state(),
    }
    checkpoint.save_rotating(payload, checkpoint_path(run_dir), previous_checkpoint_path(run_dir))
    atomic_write_json(checkpoint_path(run_dir).with_suffix(".json"), {"counters": counters.to_dict()})


class CheckpointFallback(UserWarning):
    """``latest.pt`` was unreadable or missing; ``previous.pt`` was used instead."""


def load_checkpoint(run_dir: str | Path, map_location="cpu") -> dict:
    """The run's newest readable checkpoint: ``latest.pt``, else ``previous.pt`` with a
    :class:`CheckpointFallback` warning saying what was lost.

    Raises:
        FileNotFoundError: the run has no checkpoint.
        checkpoint.UnreadableCheckpoint: neither file is readable (one sentence naming both).
    """
    latest, previous = checkpoint_path(run_dir), previous_checkpoint_path(run_dir)
    if not latest.exists() and not previous.exists():
        return checkpoint.load(latest)  # the FileNotFoundError with its advice
    try:
        return checkpoint.load(latest, map_location=map_location)
    except (FileNotFoundError, checkpoint.UnreadableCheckpoint) as err:
        problem = "is missing" if isinstance(err, FileNotFoundError) else "is unreadable"
    try:
        state = checkpoint.load(previous, map_location=map_location)
    except (FileNotFoundError, checkpoint.UnreadableCheckpoint):
        raise checkpoint.UnreadableCheckpoint(
            f"no readable checkpoint in {str(latest.parent)!r}: {latest.name} {problem} and {previous.name} is "
            f"{'missing' if not previous.exists() else 'unreadable'}; the weights are lost, so start a new run "
            f"(its replay/ can be copied into the new run directory to reuse the episodes).") from None
    lost = _what_was_lost(run_dir, Counters.from_dict(state["counters"]))
    warnings.warn(f"{latest} {problem}; using {previous.name} instead, {lost}.", CheckpointFallback, stacklevel=2)
    return state


def _what_was_lost(run_dir, previous: Counters) -> str:
    """``N updates and M episodes older`` from ``latest.json``, or the previous checkpoint's own counters."""
    try:
        latest = Counters.from_dict(json.loads(checkpoint_path(run_dir).with_suffix(".json").read_text())["counters"])
    except (OSError, ValueError, KeyError, TypeError):
        latest = None
    at = f"{_count(previous.updates, 'update')} and {_count(previous.episodes, 'episode')}"
    if latest is None or latest.updates < previous.updates:
        return f"written at {at}"
    return (f"{_count(latest.updates - previous.updates, 'update')} and "
            f"{_count(latest.episodes - previous.episodes, 'episode')} older (at {at})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def trim_metrics(run_dir: Path, size: int) -> None:
    """Cut ``metrics.jsonl`` back to ``size`` bytes: the rows logged after a checkpoint go, since the
    resumed run logs those steps again. Truncated in place (one system call, so a crash leaves the old
    or the new length), because the loop's logger may already hold the file open for appending."""
    path = Path(run_dir) / "metrics.jsonl"
    if 0 <= size < metrics_size(run_dir):
        os.truncate(path, size)


UPDATE_KEY = "train/loss/total"
"""logged by every update; rows from the first one on are logged again by a run resumed without a checkpoint"""


def first_update_offset(run_dir: Path) -> int:
    """Byte offset of the first ``metrics.jsonl`` row holding update losses (the file's size if none):
    what a resume without any checkpoint keeps (the seed episodes' returns, which are not collected again)."""
    path, offset = Path(run_dir) / "metrics.jsonl", 0
    if not path.is_file():
        return 0
    with open(path, "rb") as file:
        for line in file:
            if f'"{UPDATE_KEY}"'.encode() in line:
                return offset
            offset += len(line)
    return offset


def restore_state(run_dir: Path, model, optimizer, behaviour, device) -> Counters:
    """Load the newest readable checkpoint (:func:`load_checkpoint`) into ``model``, ``optimizer`` and
    ``behaviour``, restore the RNG states, cut ``metrics.jsonl`` back to it, and return the counters;
    a run without a checkpoint yet starts at zero, its metrics cut back to before the first update."""
    if not has_checkpoint(run_dir):
        trim_metrics(run_dir, first_update_offset(run_dir))
        return Counters()
    state = load_checkpoint(run_dir, map_location=device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if behaviour is not None and state.get("behaviour") is not None:
        behaviour.load_state_dict(state["behaviour"])
    checkpoint.set_rng_state(state["rng"])
    counters = Counters.from_dict(state["counters"])
    trim_metrics(run_dir, counters.metrics_bytes)
    return counters


def load_weights(run_dir: str | Path, model, behaviour, device) -> None:
    """Load a checkpoint's model and behaviour weights for acting (``eval``/``plan``/``imagine``)."""
    state = load_checkpoint(run_dir, map_location=device)
    model.load_state_dict(state["model"])
    model.eval()
    if behaviour is not None:
        behaviour.load_state_dict(state["behaviour"])


# ----------------------------------------------------------------------------- repair


def repair_run(run_dir: str | Path) -> list[str]:
    """Rebuild what can be rebuilt in a damaged run directory, holding its lock; returns what was done.

    * ``config.yaml`` unreadable -> rewritten from the newest readable checkpoint (which holds the config);
    * ``replay/replay.json`` unreadable -> rebuilt from the replay's storage files
      (:func:`worldmodels.data.replay.rebuild_replay_metadata`).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a directory; pass a run directory.")
    done = []
    with open_for_writing(run_dir):
        done += _repair_config(run_dir)
        done += _repair_replay(run_dir / "replay")
    return done or ["nothing to repair: config.yaml, the checkpoint and the replay metadata are readable"]


def _repair_config(run_dir: Path) -> list[str]:
    try:
        read_run_config(run_dir)
        return []
    except (ConfigError, FileNotFoundError):
        pass
    if not has_checkpoint(run_dir):
        return [f"cannot rebuild {run_dir / 'config.yaml'}: the run has no checkpoint holding its config; "
                f"copy the config the run was started with there"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointFallback)
        state = load_checkpoint(run_dir)
    write_run_config(from_dict(RunConfig, state["config"]), run_dir)
    return [f"rewrote {run_dir / 'config.yaml'} from the run's checkpoint"]


def _repair_replay(directory: Path) -> list[str]:
    if not (directory / "storage").is_dir() or metadata_problem(directory) is None:
        return []
    summary = rebuild_replay_metadata(directory)
    return [f"rebuilt {directory / 'replay.json'} from the storage files: {summary}"]
