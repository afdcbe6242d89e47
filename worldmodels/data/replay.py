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
* **Repairable.** A corrupt ``replay.json`` or storage file is one sentence naming the file and
  what to do; :func:`rebuild_replay_metadata` rebuilds ``replay.json`` from intact storage files
  (their ``episode``, ``is_first`` and ``is_last`` columns delimit the episodes).

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
from worldmodels.core.files import atomic_write_json
from worldmodels.data.replay_storage import (
    FORMAT,
    VERSION,
    EpisodeMemmapStorage,
    EpisodeTable,
    EpisodeWindowSampler,
    EpisodeWriter,
)
from worldmodels.data.rows import observation_keys, row_fields, steps_to_rows

__all__ = ["SequenceReplay", "metadata_problem", "rebuild_replay_metadata"]

def repair_hint(directory: Path) -> str:
    """How to rebuild ``directory/replay.json``: ``worldmodels repair RUN_DIR`` for a run's ``replay/``."""
    if directory.name == "replay" and (directory.parent / "config.yaml").is_file():
        return f"rebuild it from the storage files with `worldmodels repair {directory.parent}`"
    return f"rebuild it from the storage files with worldmodels.data.replay.rebuild_replay_metadata({str(directory)!r})"


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
            _reopen_storage(self.storage, storage_dir, meta["storage_len"])
        self.writer = EpisodeWriter(self.table, meta_path, durable=durable)
        self.sampler = EpisodeWindowSampler(self.table)
        self.buffer = ReplayBuffer(storage=self.storage, sampler=self.sampler, writer=self.writer)
        self._pending: dict[int, list[TensorDict]] = {}  # env index -> steps of its unfinished episode
        self._obs_keys: list[str] | None = None
        self.dropped_steps = 0
        """steps discarded because they continued an episode whose start this replay never saw"""
        self._staging: TensorDict | None = None  # pinned host buffer of the last [B*T] CUDA batch
        self._staging_free = None  # CUDA event: the copy out of the staging buffer has finished

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
        if self.device.type == "cuda":
            return self._sample_staged(batch_size, sequence_length, pin=True)
        data = self.buffer.sample(batch_size * sequence_length)
        return data.reshape(batch_size, sequence_length).to(self.device)

    def _sample_staged(self, batch_size: int, sequence_length: int, pin: bool) -> TensorDict:
        """The same windows as :meth:`sample` (same RNG draws), gathered from the memmap files straight
        into a reused host buffer -- pinned when ``pin`` -- and copied to :attr:`device` asynchronously:
        no per-step allocation or pageable staging copy on the host. The buffer is reused only after
        the previous copy out of it has finished (a CUDA event). With ``pin=False`` (CPU tests) the
        buffer is fresh each call, since the batch would alias it."""
        n = batch_size * sequence_length
        index, _ = self.sampler.sample(self.storage, n)
        if self._staging is None or self._staging.batch_size[0] != n or not pin:
            self._staging = self.storage.gather(index)
            if pin:
                self._staging = self._staging.pin_memory()
        else:
            if self._staging_free is not None:
                self._staging_free.synchronize()
            self.storage.gather(index, out=self._staging)
        batch = self._staging.to(self.device, non_blocking=pin)
        if pin and self.device.type == "cuda":
            self._staging_free = torch.cuda.Event()
            self._staging_free.record()
        return batch.reshape(batch_size, sequence_length)

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
    problem = metadata_problem(path.parent)
    if problem is not None:
        raise ValueError(f"{path} is {problem}; {repair_hint(path.parent)}.")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path} is not a {FORMAT} version {VERSION} file (found {meta.get('format')!r} "
                         f"version {meta.get('version')!r}); use a new replay directory.")
    if meta["capacity"] != capacity:
        raise ValueError(f"the replay in {path.parent} has capacity {meta['capacity']} rows, not {capacity}; "
                         f"reopen it with capacity={meta['capacity']} or use a new directory.")
    return meta


METADATA_KEYS = ("capacity", "cursor", "storage_len", "next_episode_id", "rows_added", "episodes")


def metadata_problem(directory) -> str | None:
    """What is wrong with ``directory/replay.json`` (``"empty"``, ``"not valid JSON"``, ...), or None
    when it is readable or absent (a replay that committed nothing yet has none)."""
    path = Path(directory) / "replay.json"
    if not path.exists():
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return "unreadable"
    if not text.strip():
        return "empty"
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        return "not valid JSON (truncated or garbled)"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None if isinstance(meta, dict) and "format" in meta else "not replay metadata"
    missing = [key for key in METADATA_KEYS if key not in meta]
    return f"incomplete (no {', '.join(missing)})" if missing else None


def _reopen_storage(storage: EpisodeMemmapStorage, storage_dir: Path, length: int) -> None:
    try:
        _check_memmap_files(storage_dir)
        storage.reopen(length)
    except Exception as err:  # tensordict/numpy raise many kinds for missing, short or garbled files
        raise ValueError(
            f"the replay's storage files in {storage_dir} are unreadable ({err}); the episodes in them are lost: "
            f"move {storage_dir.parent} aside to collect a new replay, or start a new run.") from err


def _check_memmap_files(storage_dir: Path) -> None:
    """Raise unless every memmap file listed in tensordict's ``meta.json`` exists at full size
    (mapping a short file would silently extend it with zeros)."""
    meta = json.loads((storage_dir / "meta.json").read_text())
    for key, leaf in meta.items():
        if not (isinstance(leaf, dict) and "shape" in leaf and str(leaf.get("dtype", "")).startswith("torch.")):
            continue
        path = storage_dir / f"{key}.memmap"
        itemsize = torch.empty((), dtype=getattr(torch, leaf["dtype"].removeprefix("torch."))).element_size()
        expected = itemsize * int(torch.tensor(leaf["shape"]).prod())
        size = path.stat().st_size if path.is_file() else -1
        if size < expected:
            raise ValueError(f"{path.name} is {'missing' if size < 0 else f'{size} bytes, not {expected}'}")


def rebuild_replay_metadata(directory) -> str:
    """Rebuild ``directory/replay.json`` from the storage files; returns a one-line summary.

    Episodes are the runs of rows with one ``episode`` id that start with ``is_first`` and end with
    ``is_last``; rows of episodes partly overwritten by the ring are skipped. ``rows_added`` is
    exact while no episode was evicted (ids start at 0 and have no gap), else estimated from the
    mean live episode length (it only sets the env-step count logged beside metrics).

    Raises:
        ValueError: the storage files themselves are unreadable, or hold no whole episode.
    """
    directory = Path(directory)
    storage_dir = directory / "storage"
    try:
        _check_memmap_files(storage_dir)
        rows = TensorDict.load_memmap(storage_dir)
    except Exception as err:
        raise ValueError(f"cannot rebuild {directory / 'replay.json'}: the storage files in {storage_dir} are "
                         f"unreadable too ({err}); move {directory} aside and start collecting again.") from err
    table = EpisodeTable(rows.shape[0])
    spans = _episode_spans(rows)
    if not spans:
        raise ValueError(f"cannot rebuild {directory / 'replay.json'}: {storage_dir} holds no whole episode; "
                         f"move {directory} aside and start collecting again.")
    for episode_id, start, length in spans:
        table.ids.append(episode_id)
        table.starts.append(start)
        table.lengths.append(length)
        table.returns.append(float(rows.get(keys.REWARD)[start : start + length].sum()))
    table.next_id = spans[-1][0] + 1
    table.cursor = spans[-1][1] + spans[-1][2]
    exact = table.ids == list(range(table.next_id))
    table.rows_added = sum(table.lengths) if exact else round(sum(table.lengths) * table.next_id / len(table.ids))
    meta = {"format": FORMAT, "version": VERSION, **table.to_json(), "storage_len": max(s + n for _, s, n in spans),
            "num_rows": sum(table.lengths), "fields": row_fields(rows[:1])}
    atomic_write_json(directory / "replay.json", meta)
    estimate = "" if exact else f"; {table.next_id - len(table.ids)} evicted episodes, rows_added estimated"
    return f"{len(table.ids)} episodes, {meta['num_rows']} rows{estimate}"


def _episode_spans(rows: TensorDict) -> list[tuple[int, int, int]]:
    """``(episode id, start, length)`` of every whole episode in ring storage rows, oldest id first."""
    ids = rows.get(keys.EPISODE).reshape(-1).tolist()
    first = rows.get(keys.IS_FIRST).reshape(-1).bool().tolist()
    last = rows.get(keys.IS_LAST).reshape(-1).bool().tolist()
    spans, start = {}, None
    for row, episode_id in enumerate(ids):
        if first[row]:
            start = row
        elif start is not None and ids[row - 1] != episode_id:
            start = None
        if start is not None and last[row] and ids[start] == episode_id:
            spans.setdefault(episode_id, (episode_id, start, row - start + 1))
            start = None
    return sorted(spans.values())
