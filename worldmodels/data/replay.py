"""Online replay: torchrl rollouts -> rows (the alignment rule) -> whole episodes on disk -> [B, T] windows.

Rollouts are flattened into *rows* by :func:`worldmodels.data.rows.steps_to_rows`: an episode of T
transitions becomes T+1 rows holding ``pixels`` (and every other observation key), ``action``,
``prev_action``, ``reward``, ``is_first``, ``is_last``, ``is_terminal`` and ``episode`` (a
replay-wide id). Pixels stay ``uint8`` on disk.

Design decisions:

* **Windows never cross episodes.** :meth:`SequenceReplay.sample` keeps the contract of
  :class:`worldmodels.data.episode_store.EpisodeStore` (the offline dataset keeps it too): windows
  are drawn by :func:`worldmodels.data.windows.sample_windows`, uniformly over all valid (episode,
  start) pairs, from torch's global RNG; episodes with fewer than T rows are never sampled, and
  sampling raises a clear error while no episode is long enough.
* **Whole episodes only.** ``add_rollout`` keeps an episode's steps in memory until its last step
  arrives (collectors deliver chunks; the next chunk for the same env index continues it), then
  writes the episode contiguously. Storage is a ring of whole episodes: when the next episode does
  not fit before the end, the cursor wraps to 0 (the unused tail is dropped); the episodes it
  overwrites -- always the oldest -- are evicted whole before the write. A window can therefore
  never mix two episodes' rows.
* **Durable.** Rows live in torchrl's :class:`~torchrl.data.LazyMemmapStorage` under
  ``directory/storage``; ``directory/replay.json`` (written to a temp file, fsynced and
  ``os.replace``-d) lists the live episodes. Order per episode: evictions are recorded first, then
  rows are written and the memmaps flushed, then the episode is recorded. After a crash (even
  ``kill -9``) reopening ``SequenceReplay(directory, capacity)`` restores every episode committed before
  it; an episode that was pending or half-written is dropped whole.

``directory/replay.json`` (format ``worldmodels-replay``, version 1)::

    {"format": "worldmodels-replay", "version": 1, "capacity": int, "cursor": int,
     "storage_len": int, "next_episode_id": int, "rows_added": int, "num_rows": int,
     "fields": {key: {"dtype": "uint8", "shape": [3, 64, 64]}, ...},
     "episodes": {"id": [...], "start": [...], "length": [...], "return": [...]}}   # oldest first
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.data import ReplayBuffer

from worldmodels.core import keys
from worldmodels.data.replay_storage import (
    FORMAT,
    VERSION,
    EpisodeMemmapStorage,
    EpisodeTable,
    EpisodeWindowSampler,
    EpisodeWriter,
)
from worldmodels.data.rows import observation_keys, steps_to_rows

__all__ = ["SequenceReplay"]


# ----------------------------------------------------------------------------- the replay


class SequenceReplay:
    """Disk-backed replay of whole episodes sampled as ``[B, T]`` windows (torchrl ReplayBuffer).

    Args:
        directory: where rows (``storage/``, torchrl memmaps) and ``replay.json`` live; an existing
            replay there is reopened.
        capacity: maximum number of stored rows (PlaNet/DreamerV2 keep all data: 1e6).
        device: device of sampled batches (storage stays on CPU disk).
        durable: fsync after each committed episode (survives power loss; kill -9 needs no fsync).

    Example::

        replay = SequenceReplay("runs/x/replay", capacity=100_000)
        replay.add_rollout(env.rollout(1000))        # or collector chunks, [T] or [N, T]
        batch = replay.sample(50, 50)                # TensorDict [50, 50] on `replay.device`
    """

    def __init__(self, directory, capacity: int, device="cpu", durable: bool = True):
        if capacity < 2:
            raise ValueError(f"need capacity >= 2 rows, got {capacity}.")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        self.table = EpisodeTable(capacity)
        storage_dir = self.directory / "storage"
        meta_path = self.directory / "replay.json"
        meta = _read_metadata(meta_path, capacity)
        if meta is not None:
            self.table.load_json(meta)
        if not self.table.ids:  # nothing committed: leftovers of an interrupted first write go
            shutil.rmtree(storage_dir, ignore_errors=True)
            self.table.cursor = 0
        self.storage = EpisodeMemmapStorage(capacity, scratch_dir=storage_dir, auto_cleanup=False)
        if self.table.ids:
            self.storage.reopen(meta["storage_len"])
        self.writer = EpisodeWriter(self.table, meta_path, durable=durable)
        self.sampler = EpisodeWindowSampler(self.table)
        self.buffer = ReplayBuffer(storage=self.storage, sampler=self.sampler, writer=self.writer)
        self._pending: dict[int, list[TensorDict]] = {}  # env index -> steps of its unfinished episode
        self._obs_keys: list[str] | None = None
        self.dropped_steps = 0
        """steps discarded because they continued an episode whose start this replay never saw"""

    @classmethod
    def from_config(cls, config, directory, device="cpu", **kwargs) -> "SequenceReplay":
        """Build from a :class:`worldmodels.core.config.ReplayConfig` (its capacity; B and T are per sample)."""
        return cls(directory, config.capacity, device=device, **kwargs)

    # ------------------------------------------------------------------ adding
    def add_episode(self, rows: TensorDict) -> int:
        """Commit one whole episode already in row format (``[L]``, alignment rule); returns its id."""
        self.buffer.extend(rows.to("cpu"))
        return self.table.ids[-1]

    def add_rollout(self, rollout: TensorDict) -> int:
        """Add torchrl steps (``env.rollout`` / collector output, ``[T]`` or ``[N, T]``).

        Episodes that end in this rollout (``("next", "done")``, else ``("next", "is_last")``) are
        committed; an unfinished trailing episode stays pending in memory and is continued by the
        next call's chunk for the same env index (row ``n`` of ``[N, T]``). A step whose root
        ``is_first`` is set while an episode is pending commits the pending one as truncated.

        Returns:
            number of episodes committed by this call.
        """
        if rollout.batch_dims not in (1, 2):
            raise ValueError(f"add_rollout expects a [T] or [N, T] rollout, got batch size {tuple(rollout.shape)}.")
        if keys.NEXT not in rollout.keys():
            raise ValueError("add_rollout expects torchrl steps with a 'next' entry; use add_episode for rows.")
        if ("collector", "mask") in rollout.keys(include_nested=True):
            raise ValueError("padded collector output (split_trajs=True) is not supported; use split_trajs=False.")
        if self._obs_keys is None:
            self._obs_keys = observation_keys(rollout)
        rollout = rollout.to("cpu")
        trajectories = [rollout] if rollout.batch_dims == 1 else rollout.unbind(0)
        return sum(self._add_steps(env_index, steps) for env_index, steps in enumerate(trajectories))

    def _add_steps(self, env_index: int, steps: TensorDict) -> int:
        nxt = steps.get(keys.NEXT)
        done_key = keys.DONE if keys.DONE in nxt.keys() else keys.IS_LAST
        if done_key not in nxt.keys():
            raise ValueError("rollout has neither ('next', 'done') nor ('next', 'is_last'); cannot find episode ends.")
        done = nxt.get(done_key).reshape(-1).bool()  # [T]
        starts = torch.zeros_like(done)
        starts[1:] = done[:-1]
        if keys.IS_FIRST in steps.keys():
            starts |= steps.get(keys.IS_FIRST).reshape(-1).bool()
        elif env_index not in self._pending:
            starts[0] = True
        cuts = set(starts.nonzero().flatten().tolist()) | set((done.nonzero().flatten() + 1).tolist())
        bounds = sorted({0, len(done)} | cuts)  # segments [a, b): each inside one episode
        select = [*self._obs_keys, keys.ACTION, (keys.NEXT, keys.REWARD), (keys.NEXT, done_key)]
        select += [(keys.NEXT, k) for k in self._obs_keys + [keys.TERMINATED, keys.IS_TERMINAL] if k in nxt.keys()]
        committed = 0
        for a, b in zip(bounds[:-1], bounds[1:]):
            if starts[a]:
                committed += self._commit_pending(env_index)  # cut short by a reset: truncated
                self._pending[env_index] = []
            elif env_index not in self._pending:
                self.dropped_steps += b - a
                continue
            self._pending[env_index].append(steps[a:b].select(*select, strict=False).clone())
            if done[b - 1]:
                committed += self._commit_pending(env_index)
        return committed

    def _commit_pending(self, env_index: int) -> int:
        pending = self._pending.pop(env_index, None)
        if not pending:
            return 0
        self.add_episode(steps_to_rows(torch.cat(pending), self._obs_keys))
        return 1

    @property
    def num_pending_steps(self) -> int:
        """Steps held in memory for unfinished episodes (lost if the process dies)."""
        return sum(sum(chunk.shape[0] for chunk in chunks) for chunks in self._pending.values())

    # ------------------------------------------------------------------ reading
    def sample(self, batch_size: int, sequence_length: int) -> TensorDict:
        """Sample ``batch_size`` windows of ``sequence_length`` consecutive rows, each inside one episode.

        Uniform over all valid (episode, start) pairs, from torch's global RNG (the contract of
        :class:`worldmodels.data.episode_store.EpisodeStore`).

        Returns:
            TensorDict ``[B, T]`` on :attr:`device` with every stored key (``episode`` included).
        """
        self.sampler.window_shape = (batch_size, sequence_length)
        data = self.buffer.sample(batch_size * sequence_length)
        return data.reshape(batch_size, sequence_length).to(self.device)

    def episode(self, position: int) -> TensorDict:
        """Rows ``[L]`` of the live episode at ``position`` (0 = oldest, -1 = newest), on CPU."""
        start, length = self.table.starts[position], self.table.lengths[position]
        return self.storage.get(torch.arange(start, start + length))

    @property
    def num_episodes(self) -> int:
        """Committed (live) episodes."""
        return len(self.table.ids)

    @property
    def num_rows(self) -> int:
        """Committed (live) rows."""
        return sum(self.table.lengths)

    @property
    def episodes_added(self) -> int:
        """Episodes ever committed, evicted ones included (a counter for schedules)."""
        return self.table.next_id

    @property
    def rows_added(self) -> int:
        """Rows ever committed, evicted ones included; env steps = rows_added - episodes_added."""
        return self.table.rows_added

    def episode_ids(self) -> list[int]:
        return list(self.table.ids)

    def episode_lengths(self) -> torch.Tensor:
        """Rows per live episode, oldest first, int64 ``[E]``."""
        return torch.tensor(self.table.lengths, dtype=torch.int64)

    def episode_returns(self) -> torch.Tensor:
        """Summed reward per live episode, oldest first, float32 ``[E]``."""
        return torch.tensor(self.table.returns, dtype=torch.float32)

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return (f"SequenceReplay({str(self.directory)!r}, episodes={self.num_episodes}, rows={self.num_rows}, "
                f"capacity={self.table.capacity}, pending_steps={self.num_pending_steps})")


def _read_metadata(path: Path, capacity: int) -> dict | None:
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path} is not a {FORMAT} version {VERSION} file (found {meta.get('format')!r} "
                         f"version {meta.get('version')!r}); use a new replay directory.")
    if meta["capacity"] != capacity:
        raise ValueError(f"the replay in {path.parent} has capacity {meta['capacity']} rows, not {capacity}; "
                         f"reopen it with capacity={meta['capacity']} or use a new directory.")
    return meta
