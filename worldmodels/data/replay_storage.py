"""Episode-ring storage for :mod:`worldmodels.data.replay`: torchrl Storage, Writer and Sampler parts.

* :class:`EpisodeMemmapStorage` -- torchrl ``LazyMemmapStorage`` that can reopen its memmap files,
  gathers rows with ``index_select`` and fsyncs.
* :class:`EpisodeTable` -- the live episodes of the ring (oldest first) and where the next goes.
* :class:`EpisodeWriter` -- a torchrl ``Writer`` storing one whole episode per ``extend`` and
  committing it durably (evictions recorded, rows written + flushed, episode recorded).
* :class:`EpisodeWindowSampler` -- a torchrl ``Sampler`` drawing ``[B, T]`` windows inside episodes.

Rows follow the alignment rule of :mod:`worldmodels.core.keys` (:func:`worldmodels.data.rows.check_rows`
validates them); windows are drawn by :func:`worldmodels.data.windows.sample_windows`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.data import LazyMemmapStorage
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.writers import Writer

from worldmodels.core import keys
from worldmodels.core.files import atomic_write_json
from worldmodels.data.rows import check_rows, row_fields
from worldmodels.data.windows import sample_windows

FORMAT = "worldmodels-replay"
VERSION = 1


class EpisodeMemmapStorage(LazyMemmapStorage):
    """``LazyMemmapStorage`` that reopens its files, reads windows with ``index_select`` and fsyncs.

    ``index_select`` gathers a flat index much faster than advanced indexing on memmaps.
    """

    def reopen(self, length: int) -> None:
        """Map the memmap files already in ``scratch_dir`` (no copy) holding ``length`` written rows."""
        self._storage = TensorDict.load_memmap(self.scratch_dir)
        self.initialized = True
        self._len = length

    def get(self, index):
        if isinstance(index, torch.Tensor) and index.ndim == 1 and self.initialized:
            return self.gather(index)
        return super().get(index)

    def gather(self, index: torch.Tensor, out: TensorDict | None = None) -> TensorDict:
        """Rows at the flat ``index [N]``, read from the memmap files by ``index_select``; written into
        ``out`` (a TensorDict ``[N]`` with the stored keys, e.g. a pinned staging buffer) when given."""
        if out is None:
            return self._storage.apply(
                lambda x: torch.index_select(x.as_subclass(torch.Tensor), 0, index), batch_size=[index.numel()]
            )
        for key, source in self._storage.items(include_nested=True, leaves_only=True):
            torch.index_select(source.as_subclass(torch.Tensor), 0, index, out=out.get(key))
        return out

    def fields(self) -> dict:
        """``{key: {"dtype", "shape"}}`` of one stored row (empty before the first write)."""
        if not self.initialized:
            return {}
        if getattr(self, "_fields", None) is None:
            self._fields = row_fields(self._storage[:1])
        return self._fields

    def flush(self) -> None:
        """fsync every memmap file so written rows survive a power loss (kill -9 needs no flush)."""
        for tensor in self._storage.values(include_nested=True, leaves_only=True):
            fd = os.open(tensor.filename, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class EpisodeTable:
    """The live episodes of a ring storage, oldest first: ids, starts, lengths, returns."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.cursor = 0
        self.next_id = 0
        self.rows_added = 0
        self.ids: list[int] = []
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.returns: list[float] = []

    def place(self, length: int) -> int:
        """Choose where an episode of ``length`` rows goes; evict (oldest first) what it overwrites."""
        if length > self.capacity:
            raise ValueError(f"an episode of {length} rows does not fit in a replay of capacity {self.capacity} rows.")
        wrap = self.cursor + length > self.capacity
        start = 0 if wrap else self.cursor
        while self.ids and (
            (wrap and self.starts[0] >= self.cursor)  # the unused tail holds the oldest episodes
            or (self.starts[0] < start + length and start < self.starts[0] + self.lengths[0])  # overlap
        ):
            for column in (self.ids, self.starts, self.lengths, self.returns):
                column.pop(0)
        return start

    def add(self, start: int, length: int, episode_return: float) -> int:
        episode_id = self.next_id
        self.ids.append(episode_id)
        self.starts.append(start)
        self.lengths.append(length)
        self.returns.append(episode_return)
        self.next_id += 1
        self.rows_added += length
        self.cursor = start + length
        return episode_id

    def to_json(self) -> dict:
        return {"capacity": self.capacity, "cursor": self.cursor, "next_episode_id": self.next_id,
                "rows_added": self.rows_added,
                "episodes": {"id": self.ids, "start": self.starts, "length": self.lengths, "return": self.returns}}

    def load_json(self, meta: dict) -> None:
        self.cursor, self.next_id, self.rows_added = meta["cursor"], meta["next_episode_id"], meta["rows_added"]
        episodes = meta["episodes"]
        self.ids, self.starts = list(episodes["id"]), list(episodes["start"])
        self.lengths, self.returns = list(episodes["length"]), list(episodes["return"])


class EpisodeWriter(Writer):
    """torchrl Writer that stores one whole episode per ``extend`` call and commits it durably.

    Args:
        table: the shared :class:`EpisodeTable`.
        metadata_path: where the table is written atomically (temp file + ``os.replace``).
        durable: fsync memmaps and metadata (survives power loss, not just process death).
    """

    def __init__(self, table: EpisodeTable, metadata_path: Path, durable: bool = True):
        super().__init__()
        self.table, self.metadata_path, self.durable = table, Path(metadata_path), durable

    def add(self, data):
        raise ValueError("EpisodeWriter stores whole episodes; use extend(rows) with rows [L].")

    def extend(self, rows: TensorDict) -> torch.Tensor:
        check_rows(rows)
        length = rows.shape[0]
        rows = rows.clone(False).set(keys.EPISODE, torch.full((length,), self.table.next_id, dtype=torch.int64))
        stored = self._storage.fields()
        if stored and row_fields(rows) != stored:
            raise ValueError(f"episode fields {row_fields(rows)} differ from the stored fields {stored}.")
        num_before = len(self.table.ids)
        start = self.table.place(length)
        if len(self.table.ids) != num_before:  # evictions hit disk before their rows are overwritten
            self.save_metadata()
        index = torch.arange(start, start + length)
        self._storage.set(slice(start, start + length), rows)
        if self.durable:
            self._storage.flush()
        self.table.add(start, length, float(rows.get(keys.REWARD).sum()))
        self.save_metadata()
        return index

    def save_metadata(self) -> None:
        meta = {"format": FORMAT, "version": VERSION, **self.table.to_json(),
                "storage_len": len(self._storage), "num_rows": sum(self.table.lengths),
                "fields": self._storage.fields()}
        atomic_write_json(self.metadata_path, meta, fsync=self.durable)

    def _empty(self, empty_write_count: bool = True) -> None:
        raise ValueError("SequenceReplay cannot be emptied in place; use a new directory.")

    def dumps(self, path):  # the storage directory *is* the checkpoint
        return None

    def loads(self, path):
        return None

    def state_dict(self) -> dict:
        return self.table.to_json()

    def load_state_dict(self, state_dict: dict) -> None:
        self.table.load_json(state_dict)


class EpisodeWindowSampler(Sampler):
    """torchrl Sampler drawing ``[B, T]`` windows uniformly over all (episode, start) pairs.

    ``sample(storage, batch_size)`` returns a flat index of ``batch_size = B * T`` rows: B windows
    of T consecutive rows, each inside one live episode, drawn by
    :func:`worldmodels.data.windows.sample_windows` from torch's global RNG (so training
    checkpoints can restore it). ``window_shape = (B, T)`` is set before each draw by
    :meth:`worldmodels.data.replay.SequenceReplay.sample`.
    """

    def __init__(self, table: EpisodeTable):
        self.table = table
        self.window_shape = (1, 1)

    def sample(self, storage, batch_size: int):
        windows, length = self.window_shape
        if batch_size != windows * length:
            raise ValueError(f"sampling {batch_size} rows, but window_shape {self.window_shape} "
                             f"asks for {windows * length}.")
        index, episode = sample_windows(self.table.lengths, self.table.starts, windows, length)
        return index, {"episode_position": episode}

    def _empty(self):
        return None

    def dumps(self, path):
        return None

    def loads(self, path):
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        return None

