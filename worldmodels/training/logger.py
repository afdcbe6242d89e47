"""One logger for a run: ``metrics.jsonl`` (one JSON object per line) and TensorBoard scalars.

Metric names follow ``phase/group/name`` (``train/loss/kl``, ``eval/episode/return``). Every
record carries the step it was logged at (environment steps, i.e. agent steps x action repeat)
so curves from resumed runs line up.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Mapping


class Logger:
    """Append-only metrics log + optional TensorBoard writer.

    Example:
        >>> log = Logger(run_dir, tensorboard=False)
        >>> log.scalars({"train/loss/total": 1.5}, step=1000)
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    @property
    def writer(self):
        """The TensorBoard SummaryWriter, or None when disabled."""
        return self._tb

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log scalar metrics at ``step`` (non-finite values are written as null in JSON)."""
        clean = {}
        for name, value in values.items():
            v = float(value)
            clean[name] = v if math.isfinite(v) else None
            if self._tb is not None and math.isfinite(v):
                self._tb.add_scalar(name, v, step)
        self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), **clean}) + "\n")

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All records of a run's ``metrics.jsonl`` (skips a torn last line after a crash)."""
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
