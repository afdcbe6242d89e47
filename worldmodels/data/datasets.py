"""Offline episode datasets on disk (PLDM and other offline users): the format, its writer and reader.

On-disk format ``worldmodels-episodes``, version 1 -- a directory holding::

    dataset.json                 metadata, rewritten atomically after every episode
    episodes/ep_000000.npz       one episode per file, in row format (below), written atomically
    episodes/ep_000001.npz
    ...

``dataset.json``::

    {"format": "worldmodels-episodes", "version": 1,
     "env": {...},                     # the env config that produced the data (EnvConfig fields)
     "num_episodes": int,              # files ep_000000 .. ep_{num_episodes-1} are committed
     "num_steps": int,                 # transitions (= rows - episodes)
     "num_rows": int,                  # observations
     "pixels": "stored" | "render",    # "render": no pixels on disk; a render_fn(state) makes them
     "fields": {name: {"dtype": "float32", "shape": [S]}, ...}}   # per-row shapes

Each ``ep_XXXXXX.npz`` (uncompressed ``numpy.savez``) holds one array per field, ``[L, *shape]``,
L = T + 1 rows for T transitions, following the alignment rule of :mod:`worldmodels.core.keys`:
``pixels`` (uint8 ``[L, C, H, W]``, only when stored), ``state``, ``action`` (taken at t; zeros
on the last row), ``prev_action`` (led to t; zeros on row 0), ``reward`` ``[L, 1]`` (on arriving;
0 on row 0), ``is_first``, ``is_last``, ``is_terminal`` (bool ``[L, 1]``), and ``proprio`` when the
env provides it. Each file is written to a temp name and ``os.replace``-d, then ``dataset.json``
is replaced, so a crash never leaves a half episode: files beyond ``num_episodes`` are ignored
and overwritten by the next writer.

Large low-dimensional datasets (PLDM Two Rooms: 3M transitions, ~25 GB as 65x65 images) are
stored without pixels (``store_pixels=False``); :func:`load_dataset` then takes a
``render_fn(state [N, S]) -> uint8 [N, C, H, W]`` (e.g. ``envs.two_rooms.render_positions``)
and renders the frames of each sampled window on the fly.

:meth:`OfflineSequenceDataset.sample` keeps the contract of
:class:`worldmodels.data.episode_store.EpisodeStore`, like the online replay: holding the same
episodes, both return identical ``[B, T]`` batches under the same torch seed. Episodes are written
by :class:`EpisodeDatasetWriter`; :mod:`worldmodels.data.collect` fills datasets by acting in an env.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tensordict import TensorDict
from tqdm import tqdm

from worldmodels.core import keys
from worldmodels.core.files import atomic_write, atomic_write_json, remove_stale_temporaries
from worldmodels.data.rows import check_rows, row_fields
from worldmodels.data.windows import sample_windows

FORMAT = "worldmodels-episodes"
VERSION = 1
RenderFn = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]


def _episode_path(directory: Path, index: int) -> Path:
    return directory / "episodes" / f"ep_{index:06d}.npz"


class EpisodeDatasetWriter:
    """Write episodes (row format) into a ``worldmodels-episodes`` directory, one atomic file each.

    Args:
        directory: dataset directory; created if missing, appended to if it holds a dataset.
        env_config: the env config (a dict, e.g. ``dataclasses.asdict(EnvConfig)``) stored as ``env``.
        store_pixels: False drops ``pixels`` (frames are rendered from ``state`` at load time).
        durable: fsync each episode file and the metadata (survives power loss, not only crashes).

    Example::

        with EpisodeDatasetWriter("data/cartpole", {"domain": "cartpole"}) as writer:
            writer.add_episode(rows)            # TensorDict [L] in row format
    """

    def __init__(self, directory, env_config: dict, store_pixels: bool = True, durable: bool = True):
        self.directory = Path(directory)
        (self.directory / "episodes").mkdir(parents=True, exist_ok=True)
        self.durable = durable
        meta_path = self.directory / "dataset.json"
        remove_stale_temporaries(self.directory)
        remove_stale_temporaries(self.directory / "episodes")
        if meta_path.exists():
            self.meta = _read_metadata(self.directory)
            if self.meta["pixels"] != ("stored" if store_pixels else "render"):
                raise ValueError(
                    f"{self.directory} stores pixels={self.meta['pixels']!r}; open it with the same store_pixels."
                )
        else:
            self.meta = {"format": FORMAT, "version": VERSION, "env": dict(env_config), "num_episodes": 0,
                         "num_steps": 0, "num_rows": 0, "pixels": "stored" if store_pixels else "render", "fields": {}}

    @property
    def num_episodes(self) -> int:
        return self.meta["num_episodes"]

    def add_episode(self, rows: TensorDict) -> int:
        """Write one episode ``[L]`` in row format; returns its index. ``[N, L]`` adds N episodes."""
        if rows.batch_dims == 2:
            return [self.add_episode(episode) for episode in rows.unbind(0)][-1]
        check_rows(rows)
        if self.meta["pixels"] == "render":
            rows = rows.exclude(keys.PIXELS)
        rows = rows.exclude(keys.EPISODE).to("cpu")
        fields = row_fields(rows)
        if self.meta["fields"] and fields != self.meta["fields"]:
            raise ValueError(f"episode fields {fields} differ from the dataset's fields {self.meta['fields']}.")
        index = self.meta["num_episodes"]
        arrays = {key: value.numpy() for key, value in rows.items()}
        atomic_write(_episode_path(self.directory, index), lambda file: np.savez(file, **arrays), fsync=self.durable)
        length = rows.shape[0]
        self.meta.update(fields=fields, num_episodes=index + 1, num_rows=self.meta["num_rows"] + length,
                         num_steps=self.meta["num_steps"] + length - 1)
        atomic_write_json(self.directory / "dataset.json", self.meta, fsync=self.durable)
        return index

    def close(self) -> None:
        """Nothing is buffered (every episode is committed on ``add_episode``); kept for symmetry."""

    def __enter__(self) -> "EpisodeDatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_RECOLLECT = ("delete {directory} and make it again (`worldmodels collect`, or `worldmodels train --resume RUN_DIR` "
              "for a run's own data/, which it regenerates)")


def _read_episode(directory: Path, index: int, fields) -> dict:
    """Episode ``index``'s arrays; a missing or damaged file is one sentence naming it."""
    path = _episode_path(directory, index)
    try:
        with np.load(path) as episode:
            return {key: episode[key] for key in fields}
    except Exception as err:  # numpy and zipfile raise many kinds for a missing, truncated or garbled file
        raise ValueError(f"{path} is missing or corrupt ({type(err).__name__}), though {directory / 'dataset.json'} "
                         f"lists it; {_RECOLLECT.format(directory=directory)}") from err


def _read_metadata(directory: Path) -> dict:
    path = Path(directory) / "dataset.json"
    if not path.exists():
        raise FileNotFoundError(f"no episode dataset at {directory}: {path.name} not found.")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        remedy = _RECOLLECT.format(directory=directory)
        raise ValueError(f"{path} is corrupt (not valid JSON: {type(err).__name__}); {remedy}") from err
    if not isinstance(meta, dict) or any(key not in meta for key in ("fields", "num_rows", "num_episodes")):
        if isinstance(meta, dict) and meta.get("format", FORMAT) != FORMAT:
            raise ValueError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}.")
        raise ValueError(f"{path} is corrupt (not a complete dataset manifest); "
                         f"{_RECOLLECT.format(directory=directory)}")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}.")
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{path} has format version {meta.get('version')!r}; this worldmodels reads version {VERSION}."
        )
    return meta


class OfflineSequenceDataset:
    """An episode dataset held in memory as flat rows; samples ``[B, T]`` windows inside episodes.

    Build with :func:`load_dataset`. Keeps the contract of
    :class:`worldmodels.data.episode_store.EpisodeStore`, like
    :class:`worldmodels.data.replay.SequenceReplay`; pixels come from disk or, for ``pixels:
    render`` datasets, from ``render_fn(state)`` for the sampled rows only.

    Args:
        meta: the ``dataset.json`` contents (``env``, ``pixels``, ``num_steps`` are read).
        rows: every episode's rows back to back, TensorDict ``[R]`` on CPU.
        lengths: rows per episode, int64 ``[E]`` (summing to R).
        render_fn: ``state [N, S] -> uint8 [N, C, H, W]`` for ``pixels: render`` datasets.
        device: device of sampled batches (rows stay on CPU).
    """

    def __init__(self, meta: dict, rows: TensorDict, lengths: torch.Tensor, render_fn: RenderFn | None = None,
                 device="cpu"):  # fmt: skip
        self.meta, self.rows, self.render_fn = meta, rows, render_fn
        self.lengths = lengths  # [E] rows per episode
        self.starts = torch.cumsum(lengths, 0) - lengths  # [E] first row of each episode
        self.device = torch.device(device)

    @property
    def env_config(self) -> dict:
        return dict(self.meta["env"])

    @property
    def pixels_stored(self) -> bool:
        return self.meta["pixels"] == "stored"

    @property
    def num_episodes(self) -> int:
        return len(self.lengths)

    @property
    def num_rows(self) -> int:
        return self.rows.shape[0]

    @property
    def num_steps(self) -> int:
        return self.meta["num_steps"]

    def episode_lengths(self) -> torch.Tensor:
        """Rows per episode, int64 ``[E]``."""
        return self.lengths.clone()

    def _with_pixels(self, rows: TensorDict, pixels: bool) -> TensorDict:
        """Add rendered pixels to flat rows ``[N]`` when needed; raise if they cannot be had."""
        if not pixels or self.pixels_stored:
            return rows
        if self.render_fn is None:
            raise ValueError("this dataset stores no pixels (pixels: render); pass render_fn to load_dataset.")
        frames = torch.as_tensor(np.asarray(self.render_fn(rows.get(keys.STATE))))  # [N,C,H,W]
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[0] != rows.shape[0]:
            raise ValueError(f"render_fn must return uint8 [N, C, H, W] for N={rows.shape[0]} states, got "
                             f"{frames.dtype} {tuple(frames.shape)}.")
        return rows.set(keys.PIXELS, frames)

    def episode(self, position: int, pixels: bool = True) -> TensorDict:
        """Rows ``[L]`` of episode ``position`` on CPU (pixels rendered if not stored and ``pixels``)."""
        start, length = int(self.starts[position]), int(self.lengths[position])
        return self._with_pixels(self.rows[start : start + length].clone(), pixels)

    def sample(self, batch_size: int, sequence_length: int) -> TensorDict:
        """Sample ``batch_size`` windows of ``sequence_length`` consecutive rows, each inside one episode.

        Uniform over all valid (episode, start) pairs, from torch's global RNG (the contract of
        :class:`worldmodels.data.episode_store.EpisodeStore`).

        Returns:
            TensorDict ``[B, T]`` on :attr:`device`: every stored key, ``pixels`` (rendered for
            ``pixels: render`` datasets) and ``episode`` (int64, the episode's position).
        """
        index, episode = sample_windows(self.lengths, self.starts, batch_size, sequence_length)  # [B*T], [B]
        flat = self.rows.apply(lambda x: torch.index_select(x, 0, index), batch_size=[index.numel()])
        flat = self._with_pixels(flat, pixels=True)
        flat.set(keys.EPISODE, episode.repeat_interleave(sequence_length))
        return flat.reshape(batch_size, sequence_length).to(self.device)

    def fill_replay(self, replay, progress: bool = False) -> int:
        """Add every episode to a :class:`~worldmodels.data.replay.SequenceReplay` (rendering pixels if
        needed); returns the number added."""
        for index in tqdm(range(self.num_episodes), desc="fill replay", disable=not progress):
            replay.add_episode(self.episode(index))
        return self.num_episodes


def load_dataset(directory, render_fn: RenderFn | None = None, device="cpu") -> OfflineSequenceDataset:
    """Load a ``worldmodels-episodes`` directory into memory (pixels only if stored).

    Args:
        directory: the dataset directory.
        render_fn: ``state [N, S] -> uint8 [N, C, H, W]``; needed to get pixels from a
            ``pixels: render`` dataset (e.g. ``envs.two_rooms.render_positions``).
        device: device of sampled batches (the rows stay in CPU memory).

    Raises:
        FileNotFoundError: no ``dataset.json`` in ``directory``.
        ValueError: unknown format or version, or a corrupt manifest or episode file (naming it and the remedy).
    """
    directory = Path(directory)
    meta = _read_metadata(directory)
    fields, num_rows = meta["fields"], meta["num_rows"]
    rows = TensorDict(
        {k: torch.empty([num_rows, *f["shape"]], dtype=getattr(torch, f["dtype"])) for k, f in fields.items()},
        batch_size=[num_rows],
    )  # preallocated [R, ...]: no second copy while loading
    lengths, cursor = [], 0
    for index in range(meta["num_episodes"]):
        episode = _read_episode(directory, index, fields)
        length = episode[keys.IS_FIRST].shape[0]
        for key in fields:
            rows.get(key)[cursor : cursor + length] = torch.from_numpy(episode[key])
        lengths.append(length)
        cursor += length
    return OfflineSequenceDataset(meta, rows, torch.tensor(lengths, dtype=torch.int64), render_fn, device)
