"""A run's budget: which limit stops it, how far along it is, what is measured when it ends, how to extend it.

A run stops at whichever limit it reaches first: its count (``train.total_episodes`` online,
``offline.updates`` offline) or its wall time ``train.max_minutes`` (summed over all restarts).
The progress bar follows the limit that will actually stop the run: when the time budget binds
it counts minutes (exact: the clock is the stop condition), otherwise episodes or updates with
an ETA from the rate observed since this start. A projected count of episodes that fit in the
time left was rejected because it wobbles with every slow episode.

When the budget ends the run, the loop runs a final evaluation (outside the time budget) and
writes its summary to ``RUN_DIR/final_eval.json``, which ``worldmodels train`` prints.
``worldmodels train --resume RUN key=value`` extends a finished run; only :data:`BUDGET_KEYS`
may change, because every other key would make the checkpoint and the config disagree.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from worldmodels.core.config import ConfigError, load_config, save_config
from worldmodels.core.files import atomic_write_json

BUDGET_KEYS = ("train.total_episodes", "train.max_minutes", "offline.updates")
"""the config keys ``--resume RUN key=value`` may change"""

FINAL_EVAL = "final_eval.json"


class BudgetSpent(Exception):
    """A resumed run has nothing left to do: its budget is spent and its final evaluation is done."""


def budget_left(done: int, total: int, elapsed: float, max_seconds: float, seconds_per_unit: float | None):
    """Which limit stops the run first and how far along it is.

    Returns:
        ``(fraction done, seconds left or None while the rate is unknown, "minutes" | "count")``;
        the time budget binds when it is set and the count would take longer at the observed rate
        (or the rate is not known yet).
    """
    count_seconds = None if seconds_per_unit is None else max(0, total - done) * seconds_per_unit
    if max_seconds > 0 and (count_seconds is None or elapsed + count_seconds > max_seconds):
        return min(1.0, elapsed / max_seconds), max(0.0, max_seconds - elapsed), "minutes"
    return min(1.0, done / max(1, total)), count_seconds, "count"


class _StatusBar(tqdm):
    """A tqdm bar whose format may name ``{status}``: the budget line and the live entries."""

    status = ""

    @property
    def format_dict(self):
        return {**super().format_dict, "status": self.status}


class BudgetBar:
    """The progress bar and wall clock of one (re)start of a run, following the binding budget.

    ``done``/``total`` count episodes or updates (``unit``); ``spent_seconds`` is the training time
    of earlier starts; the rate is measured from when ``done`` reaches ``rate_after`` in this start
    (the online loop passes its seed episodes, which cost no updates and would flatter the rate).
    """

    def __init__(self, done: int, total: int, unit: str, max_minutes: float, spent_seconds: float, desc: str,
                 enabled: bool, rate_after: int = 0):  # fmt: skip
        self.done, self.total, self.unit = done, total, unit
        self.max_seconds = 60 * max_minutes
        self.started = time.time() - spent_seconds
        self.rate_after = max(done, rate_after)
        self.rate_origin = time.time() if done >= rate_after else None
        self.entries: dict[str, str] = {}
        self.bar = _StatusBar(total=1000, desc=desc, disable=not enabled, dynamic_ncols=True,
                              bar_format="{desc}: {percentage:3.0f}%|{bar}| {status}")  # fmt: skip

    def elapsed(self) -> float:
        return time.time() - self.started

    def out_of_time(self) -> bool:
        return self.max_seconds > 0 and self.elapsed() > self.max_seconds

    def seconds_per_unit(self) -> float | None:
        counted = self.done - self.rate_after
        if self.rate_origin is None or counted <= 0:
            return None
        return (time.time() - self.rate_origin) / counted

    def text(self) -> str:
        """e.g. ``12.0/30 min (time budget), 12/200 ep, 18:00 left`` or ``12/200 ep, 1:30:00 left``."""
        fraction, left, binding = budget_left(self.done, self.total, self.elapsed(), self.max_seconds,
                                              self.seconds_per_unit())  # fmt: skip
        count = f"{self.done}/{self.total} {self.unit}"
        eta = "? left" if left is None else f"{tqdm.format_interval(left)} left"
        if binding == "minutes":
            return f"{self.elapsed() / 60:.1f}/{self.max_seconds / 60:g} min (time budget), {count}, {eta}"
        return f"{count}, {eta}"

    def fraction(self) -> float:
        return budget_left(self.done, self.total, self.elapsed(), self.max_seconds, self.seconds_per_unit())[0]

    def advance(self, units: int = 1) -> None:
        """``units`` more episodes or updates are done."""
        self.done += units
        if self.rate_origin is None and self.done >= self.rate_after:
            self.rate_origin = time.time()
        self._draw(refresh=False)

    def show(self, **entries: str) -> None:
        """Set or replace bar entries (each shown as its text, e.g. ``eval="eval 9.5±1.2 (n=2)"``)."""
        self.entries.update(entries)
        self._draw(refresh=True)

    def _draw(self, refresh: bool) -> None:
        self.bar.status = ", ".join([self.text(), *self.entries.values()])
        step = int(1000 * self.fraction()) - self.bar.n
        if step > 0:
            self.bar.update(step)
        elif refresh:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def spent_message(run_dir: Path, key: str, cfg) -> str:
    """One sentence: the budget ``key`` (one of :data:`BUDGET_KEYS`) is spent, and the command that extends it."""
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    spent = {"train.max_minutes": f"{value:g} minutes of training", "train.total_episodes": f"{value} episodes",
             "offline.updates": f"{value} updates"}[key]  # fmt: skip
    return (f"The run in {run_dir} has spent its budget ({spent}) and its final evaluation is in "
            f"{Path(run_dir) / FINAL_EVAL}; extend it with: worldmodels train --resume {run_dir} {key}={2 * value:g}")


def extend_budget(run_dir: str | Path, overrides: list[str]) -> None:
    """Apply budget overrides (``train.total_episodes=400``) to a run's ``config.yaml``; any other key is refused."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or key not in BUDGET_KEYS:
            raise ConfigError(f"--resume RUN accepts only budget overrides KEY=VALUE with KEY one of "
                              f"{', '.join(BUDGET_KEYS)}; {item!r} is not one.")  # fmt: skip
    path = Path(run_dir) / "config.yaml"
    save_config(load_config(path, list(overrides)), path)


def write_final_eval(run_dir: Path, result: dict, updates: int, episodes: int) -> None:
    """Store the final evaluation with the position it measured (``run_updates``, ``run_episodes``), so a
    resume knows whether it is current."""
    atomic_write_json(Path(run_dir) / FINAL_EVAL, {**result, "run_updates": updates, "run_episodes": episodes})


def read_final_eval(run_dir: str | Path) -> dict | None:
    """The run's last final evaluation, or None when it has none (or it is unreadable)."""
    path = Path(run_dir) / FINAL_EVAL
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def final_eval_current(run_dir: Path, updates: int, episodes: int) -> bool:
    record = read_final_eval(run_dir)
    return record is not None and record.get("run_updates") == updates and record.get("run_episodes") == episodes
