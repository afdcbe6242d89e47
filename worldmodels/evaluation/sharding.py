"""Evaluation episodes split across the ranks of a ``torchrun`` team and merged once.

A *team* is anything with ``rank``, ``world_size`` and ``gather(value) -> [value of each rank]``:
``worldmodels.training.distributed.Team`` (built by the CLI, a layer above), or None for one process.
Rank r runs items ``r, r + K, r + 2K, ...`` of the evaluation's work list; one ``gather`` merges the
ranks' records, which are put back in work-list order. Each episode's seeds (its start state, the
agent's noise) are a function of its index in the work list only (:func:`seeded`), so the merged
result is the same for every K, one process included.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch


def rank_and_size(team) -> tuple[int, int]:
    """``(rank, world_size)`` of ``team`` (``(0, 1)`` for None)."""
    return (0, 1) if team is None else (team.rank, team.world_size)


def my_share(work: Sequence, team) -> list:
    """This rank's items of ``work``: every ``world_size``-th one, starting at ``rank``."""
    rank, size = rank_and_size(team)
    return list(work[rank::size])


def merged(records: list[dict], team, order_key: str) -> list[dict]:
    """All ranks' ``records`` (one collective), sorted by ``record[order_key]`` (the work-list index)."""
    parts = [records] if team is None else team.gather(records)
    return sorted((record for part in parts for record in part), key=lambda record: record[order_key])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block the torch RNG (CPU, and the current CUDA device) starts from ``seed``; after
    it, the caller's stream continues as if the block had not run (so an evaluation during training
    leaves the training batches alone)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
