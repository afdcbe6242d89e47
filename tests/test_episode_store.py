"""One sample contract: the online replay and the offline dataset holding the same episodes are
interchangeable for a training loop -- same batches under the same torch seed, same resume."""

import pytest
import torch

from synthetic_episodes import expected_rows
from worldmodels.core import keys
from worldmodels.data.datasets import EpisodeDatasetWriter, load_dataset
from worldmodels.data.episode_store import EpisodeStore
from worldmodels.data.replay import SequenceReplay

LENGTHS = [4, 9, 2, 6, 7]  # transitions; rows = LENGTHS + 1


def render_synthetic(state):
    """The synthetic pixels as a function of state (e, t): value (16e + t) mod 256."""
    value = ((state[:, 0] * 16 + state[:, 1]) % 256).to(torch.uint8)
    return value[:, None, None, None].expand(-1, 3, 4, 4).clone()


@pytest.fixture(params=["stored", "render"])
def stores(tmp_path, request):
    """``(replay, dataset)`` holding the same episodes; the dataset stores or renders its pixels."""
    replay = SequenceReplay(tmp_path / "replay", capacity=200)
    store_pixels = request.param == "stored"
    with EpisodeDatasetWriter(tmp_path / "data", {"suite": "synthetic"}, store_pixels=store_pixels) as writer:
        for episode, length in enumerate(LENGTHS):
            replay.add_episode(expected_rows(episode, length))
            writer.add_episode(expected_rows(episode, length))
    return replay, load_dataset(tmp_path / "data", render_fn=render_synthetic)


def assert_same_batch(a, b):
    assert a.shape == b.shape and set(a.keys()) == set(b.keys())
    for key in a.keys():
        assert a.get(key).dtype == b.get(key).dtype, key
        assert torch.equal(a.get(key), b.get(key)), key


def test_both_stores_keep_the_contract(stores):
    for store in stores:
        assert isinstance(store, EpisodeStore)
        assert store.device == torch.device("cpu") and store.num_episodes == len(LENGTHS)
        assert store.num_rows == sum(LENGTHS) + len(LENGTHS)
        assert store.episode_lengths().tolist() == [n + 1 for n in LENGTHS]
        batch = store.sample(6, 4)
        assert batch.shape == (6, 4) and batch.device == store.device
        assert batch[keys.EPISODE].dtype == torch.int64 and batch[keys.EPISODE].shape == (6, 4)


def test_same_episodes_and_seed_give_identical_batches(stores):
    replay, dataset = stores
    for batch_size, sequence_length in [(16, 3), (5, 10), (1, 1)]:
        torch.manual_seed(7)
        from_replay = replay.sample(batch_size, sequence_length)
        torch.manual_seed(7)
        from_dataset = dataset.sample(batch_size, sequence_length)
        assert_same_batch(from_replay, from_dataset)


def test_restoring_the_rng_state_resumes_the_same_batch_sequence_on_either_store(stores):
    """A checkpoint stores torch's RNG state; restored, the next batches are the same whichever store
    the resumed run reads from."""
    replay, dataset = stores
    torch.manual_seed(3)
    replay.sample(8, 5)  # the run before the checkpoint
    state = torch.get_rng_state()
    after_checkpoint = [replay.sample(8, 5) for _ in range(3)]
    torch.set_rng_state(state)
    resumed = [dataset.sample(8, 5) for _ in range(3)]
    for a, b in zip(after_checkpoint, resumed):
        assert_same_batch(a, b)


def test_both_stores_fail_alike_when_no_episode_is_long_enough(stores):
    messages = []
    expected = r"no stored episode is that long yet \(5 episodes, longest 10 rows\)"
    for store in stores:
        with pytest.raises(ValueError, match=expected) as error:
            store.sample(2, 11)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "lower sequence_length" in messages[0]
