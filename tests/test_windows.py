"""The one window sampler: windows never cross episodes, are uniform over valid starts, fail clearly."""

from collections import Counter
from unittest import mock

import pytest
import torch

from worldmodels.data.windows import sample_windows

# A ring-like layout: episodes are not stored in order and not back to back.
LENGTHS = torch.tensor([3, 1, 5, 2, 4])
STARTS = torch.tensor([10, 0, 20, 13, 30])


def windows_of(index, episode, sequence_length):
    """``[(episode, offset in its episode)]`` per window, checking each window's rows on the way."""
    rows = index.reshape(-1, sequence_length)  # [B,T]
    pairs = []
    for window, e in zip(rows.tolist(), episode.tolist()):
        first, last = int(STARTS[e]), int(STARTS[e] + LENGTHS[e] - 1)
        assert window == list(range(window[0], window[0] + sequence_length)), "a window is not contiguous"
        assert first <= window[0] and window[-1] <= last, f"window {window} leaves episode {e} (rows {first}..{last})"
        pairs.append((e, window[0] - first))
    return pairs


def valid_pairs(sequence_length):
    return {(e, offset) for e, n in enumerate(LENGTHS.tolist()) for offset in range(n - sequence_length + 1)}


@pytest.mark.parametrize("sequence_length", [1, 2, 3, 4, 5])
def test_windows_never_cross_an_episode_boundary(sequence_length):
    generator = torch.Generator().manual_seed(sequence_length)
    index, episode = sample_windows(LENGTHS, STARTS, 500, sequence_length, generator)
    assert index.shape == (500 * sequence_length,) and episode.shape == (500,)
    assert index.dtype == episode.dtype == torch.int64
    pairs = windows_of(index, episode, sequence_length)
    assert set(pairs) == valid_pairs(sequence_length)  # every valid start occurs, nothing else


@pytest.mark.parametrize("sequence_length", [1, 2, 4])
def test_each_draw_maps_to_exactly_one_valid_window(sequence_length):
    """Exact counts: feeding the draws 0 .. total-1 yields every valid (episode, start) once."""
    total = len(valid_pairs(sequence_length))
    with mock.patch.object(torch, "randint", lambda high, size, generator=None: torch.arange(high)):
        index, episode = sample_windows(LENGTHS, STARTS, total, sequence_length)
    pairs = windows_of(index, episode, sequence_length)
    assert sorted(pairs) == sorted(valid_pairs(sequence_length))


def test_windows_are_uniform_over_valid_starts_not_over_episodes():
    """Chi-square over (episode, start) pairs: lengths 3, 1, 5, 2, 4 at T = 2 have 2, 0, 4, 1, 3 starts.

    Uniform over episodes first would give episode 3 (one start) a quarter of the windows instead
    of a tenth; the statistic would then be in the thousands."""
    sequence_length, draws = 2, 20_000
    index, episode = sample_windows(LENGTHS, STARTS, draws, sequence_length, torch.Generator().manual_seed(0))
    counts = Counter(windows_of(index, episode, sequence_length))
    expected = draws / len(valid_pairs(sequence_length))
    chi_square = sum((counts[pair] - expected) ** 2 / expected for pair in valid_pairs(sequence_length))
    assert chi_square < 27.9, chi_square  # 9 degrees of freedom, p = 0.001
    per_episode = torch.bincount(episode, minlength=5).float() / draws
    torch.testing.assert_close(per_episode, torch.tensor([2, 0, 4, 1, 3]) / 10.0, atol=0.01, rtol=0)


def test_default_draws_from_the_global_rng():
    torch.manual_seed(5)
    first = sample_windows(LENGTHS, STARTS, 64, 3)
    torch.manual_seed(5)
    again = sample_windows(LENGTHS, STARTS, 64, 3)
    seeded = sample_windows(LENGTHS, STARTS, 64, 3, torch.Generator().manual_seed(5))
    for a, b, c in zip(first, again, seeded):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_errors_say_what_is_missing_and_what_to_do():
    with pytest.raises(ValueError, match="empty episode store; add at least one complete episode"):
        sample_windows(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), 4, 2)
    with pytest.raises(ValueError, match=r"windows of 6 rows: .* \(5 episodes, longest 5 rows\); add longer episodes "
                                         r"or lower sequence_length"):
        sample_windows(LENGTHS, STARTS, 4, 6)
    for batch_size, sequence_length in [(0, 2), (4, 0), (-1, 2)]:
        with pytest.raises(ValueError, match="batch_size >= 1 and sequence_length >= 1"):
            sample_windows(LENGTHS, STARTS, batch_size, sequence_length)


def test_lists_work_as_well_as_tensors():
    index, episode = sample_windows([4, 2], [0, 4], 8, 2, torch.Generator().manual_seed(0))
    assert index.reshape(8, 2)[:, 1].sub(index.reshape(8, 2)[:, 0]).eq(1).all() and episode.max() <= 1
