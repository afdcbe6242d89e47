"""The contract both episode stores keep, so one training loop and one resume path serve both.

:class:`worldmodels.data.replay.SequenceReplay` (online, on disk, growing) and
:class:`worldmodels.data.datasets.OfflineSequenceDataset` (offline, in memory, fixed) hold whole
episodes in row format and sample ``[B, T]`` windows the same way: through
:func:`worldmodels.data.windows.sample_windows`, from torch's global RNG. Holding the same
episodes, they return identical batches under the same torch seed, and a checkpoint that
restores the RNG state restores the batch sequence.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from tensordict import TensorDict


@runtime_checkable
class EpisodeStore(Protocol):
    """Whole episodes in row format (alignment rule of :mod:`worldmodels.core.keys`), sampled as windows."""

    @property
    def device(self) -> torch.device:
        """Device of sampled batches."""

    @property
    def num_episodes(self) -> int:
        """Episodes that can be sampled."""

    @property
    def num_rows(self) -> int:
        """Rows (observations) of those episodes."""

    def episode_lengths(self) -> torch.Tensor:
        """Rows per episode, int64 ``[E]``, in store order (position 0 first)."""

    def episode(self, position: int) -> TensorDict:
        """Rows ``[L]`` of the episode at ``position``."""

    def sample(self, batch_size: int, sequence_length: int) -> TensorDict:
        """``batch_size`` windows of ``sequence_length`` consecutive rows, each inside one episode.

        Windows are uniform over all valid (episode, start) pairs and drawn from torch's global RNG.

        Returns:
            TensorDict ``[B, T]`` on :attr:`device` with every row key plus ``episode`` (int64
            ``[B, T]``, the id of each window's episode).

        Raises:
            ValueError: B or T below 1, an empty store, or no episode of at least T rows.
        """
