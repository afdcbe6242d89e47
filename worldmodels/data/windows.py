"""The one window sampler of the toolkit: ``[B, T]`` windows inside episodes, uniform over starts.

Episodes lie in one flat row storage (episode ``e`` is rows ``starts[e] .. starts[e] + lengths[e] - 1``).
A window is ``T`` consecutive rows of one episode, so it never crosses an episode boundary;
``is_first`` is then True only at window position 0 and only when the window starts its episode.
Every valid (episode, start) pair is equally likely, i.e. windows are uniform over time steps
(DreamerV2's replay); an episode with fewer than ``T`` rows is never drawn.

Both episode stores draw through :func:`sample_windows`: the online replay
(:class:`worldmodels.data.replay_storage.EpisodeWindowSampler`) and the offline dataset
(:meth:`worldmodels.data.datasets.OfflineSequenceDataset.sample`).
"""

from __future__ import annotations

import torch

__all__ = ["sample_windows"]


def sample_windows(lengths, starts, batch_size: int, sequence_length: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Draw ``batch_size`` windows of ``sequence_length`` rows, uniform over all valid (episode, start) pairs.

    Args:
        lengths: rows per episode, int ``[E]`` (tensor or sequence).
        starts: flat index of each episode's first row, int ``[E]``.
        batch_size: windows B, >= 1.
        sequence_length: rows per window T, >= 1.
        generator: RNG of the draw; None = torch's global RNG (what the episode stores use, so a
            training checkpoint that restores the RNG state restores the batches).

    Returns:
        ``(index, episode)``: int64 ``[B*T]`` flat row indices (window ``b`` is
        ``index[b*T : (b+1)*T]``) and int64 ``[B]`` the position in ``lengths`` of each window's episode.

    Raises:
        ValueError: B or T below 1, no episodes, or no episode of at least T rows.
    """
    if batch_size < 1 or sequence_length < 1:
        raise ValueError(f"need batch_size >= 1 and sequence_length >= 1, got {batch_size} and {sequence_length}.")
    lengths = torch.as_tensor(lengths, dtype=torch.int64)  # [E]
    starts = torch.as_tensor(starts, dtype=torch.int64)  # [E]
    if lengths.numel() == 0:
        raise ValueError("cannot sample from an empty episode store; add at least one complete episode first.")
    counts = (lengths - sequence_length + 1).clamp_min(0)  # [E] valid window starts per episode
    cumulative = counts.cumsum(0)  # [E]
    total = int(cumulative[-1])
    if total == 0:
        raise ValueError(
            f"cannot sample windows of {sequence_length} rows: no stored episode is that long yet "
            f"({len(lengths)} episodes, longest {int(lengths.max())} rows); "
            "add longer episodes or lower sequence_length."
        )
    draw = torch.randint(total, (batch_size,), generator=generator)  # [B]
    episode = torch.searchsorted(cumulative, draw, right=True)  # [B]
    first_row = starts[episode] + draw - (cumulative - counts)[episode]  # [B]
    index = (first_row[:, None] + torch.arange(sequence_length)).reshape(-1)  # [B*T]
    return index, episode
