"""Offline episode datasets: round trips (stored / rendered pixels), format errors, Two Rooms datasets."""

import json
import os


import numpy as np
import pytest
import torch

from envs.two_rooms import render_positions
from envs.two_rooms_data import generate_trajectories, make_render_fn, trajectories_to_tensordict
from synthetic_episodes import expected_rows  # synthetic episodes: state (e, t), pixels (16e + t) mod 256
from worldmodels.core import keys
from worldmodels.data.datasets import EpisodeDatasetWriter, load_dataset
from worldmodels.data.replay import SequenceReplay
from worldmodels.data.two_rooms_dataset import write_two_rooms_dataset

LENGTHS = [4, 7, 5]


def write_synthetic(directory, store_pixels=True):
    with EpisodeDatasetWriter(directory, {"suite": "synthetic"}, store_pixels=store_pixels) as writer:
        for episode, n in enumerate(LENGTHS):
            writer.add_episode(expected_rows(episode, n))
    return writer


def render_synthetic(state):
    """The synthetic pixels as a function of state (e, t): value (16e + t) mod 256."""
    value = ((state[:, 0] * 16 + state[:, 1]) % 256).to(torch.uint8)
    return value[:, None, None, None].expand(-1, 3, 4, 4).numpy()  # numpy, as Two Rooms renders


def test_round_trip_with_stored_pixels(tmp_path):
    write_synthetic(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["num_episodes"] == 3 and meta["num_steps"] == sum(LENGTHS) and meta["pixels"] == "stored"
    assert meta["fields"][keys.PIXELS] == {"dtype": "uint8", "shape": [3, 4, 4]}
    assert sorted(os.listdir(tmp_path / "episodes")) == ["ep_000000.npz", "ep_000001.npz", "ep_000002.npz"]
    dataset = load_dataset(tmp_path)
    assert dataset.num_episodes == 3 and dataset.env_config == {"suite": "synthetic"}
    for episode, n in enumerate(LENGTHS):
        expected = expected_rows(episode, n)
        actual = dataset.episode(episode)
        assert set(actual.keys()) == set(expected.keys())
        for key in expected.keys():
            assert torch.equal(actual[key], expected[key]), key
    assert dataset.num_rows == sum(LENGTHS) + 3 and dataset.episode_lengths().tolist() == [n + 1 for n in LENGTHS]
    torch.manual_seed(0)
    batch = dataset.sample(32, 5)
    assert batch.shape == (32, 5) and batch[keys.PIXELS].dtype == torch.uint8 and batch.device == dataset.device
    assert (batch[keys.STATE][..., 0] == batch[keys.STATE][:, :1, 0]).all()  # inside one episode
    assert (batch[keys.STATE][..., 1].diff(dim=1) == 1).all()  # contiguous
    assert (batch[keys.IS_FIRST][..., 0] == (batch[keys.STATE][..., 1] == 0)).all()
    assert (batch[keys.EPISODE] == batch[keys.STATE][..., 0].long()).all()  # the episode's position
    assert 0 not in dataset.sample(32, 6)[keys.STATE][:, 0, 0].tolist()  # episode 0 has 5 rows: too short
    replay = SequenceReplay(tmp_path / "replay", capacity=100)
    assert dataset.fill_replay(replay) == 3 and replay.num_rows == sum(LENGTHS) + 3


def test_round_trip_rendering_pixels_on_the_fly(tmp_path):
    write_synthetic(tmp_path, store_pixels=False)
    with np.load(tmp_path / "episodes" / "ep_000001.npz") as episode:
        assert keys.PIXELS not in episode.files and episode[keys.STATE].shape == (8, 2)
    dataset = load_dataset(tmp_path, render_fn=render_synthetic)
    assert not dataset.pixels_stored
    batch = dataset.sample(16, 4)
    flat_state = batch[keys.STATE].reshape(-1, 2)
    assert torch.equal(batch[keys.PIXELS].reshape(-1, 3, 4, 4), torch.from_numpy(render_synthetic(flat_state)))
    assert torch.equal(dataset.episode(2)[keys.PIXELS], expected_rows(2, LENGTHS[2])[keys.PIXELS])
    without = load_dataset(tmp_path)
    assert keys.PIXELS not in without.episode(0, pixels=False).keys()
    with pytest.raises(ValueError, match="stores no pixels"):
        without.sample(2, 3)


def test_two_rooms_state_only_dataset_renders_pldm_frames(tmp_path):
    rows = trajectories_to_tensordict(generate_trajectories(6, n_steps=9, seed=0))  # [6, 9] rows, no pixels
    with EpisodeDatasetWriter(tmp_path, {"suite": "two_rooms"}, store_pixels=False) as writer:
        writer.add_episode(rows)
    dataset = load_dataset(tmp_path, render_fn=render_positions)
    assert dataset.num_episodes == 6 and dataset.num_steps == 6 * 8
    batch = dataset.sample(8, 9)  # whole trajectories
    assert batch[keys.PIXELS].shape == (8, 9, 2, 64, 64) and batch[keys.PIXELS].dtype == torch.uint8
    assert torch.equal(batch[keys.PIXELS][3, 4], render_positions(batch[keys.STATE][3, 4]))


def test_format_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no episode dataset"):
        load_dataset(tmp_path / "missing")
    write_synthetic(tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps(dict(meta, version=99)))
    with pytest.raises(ValueError, match="version 99"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps(dict(meta, format="something-else")))
    with pytest.raises(ValueError, match="expected 'worldmodels-episodes'"):
        load_dataset(tmp_path)


def test_uncommitted_files_are_ignored_and_appending_continues(tmp_path):
    write_synthetic(tmp_path)
    (tmp_path / "episodes" / "ep_000003.npz").write_bytes(b"half an episode")  # crash before dataset.json
    assert load_dataset(tmp_path).num_episodes == 3
    writer = EpisodeDatasetWriter(tmp_path, {"suite": "synthetic"})
    assert writer.add_episode(expected_rows(3, 6)) == 3
    dataset = load_dataset(tmp_path)
    assert dataset.num_episodes == 4 and torch.equal(dataset.episode(3)[keys.STATE], expected_rows(3, 6)[keys.STATE])
    with pytest.raises(ValueError, match="same store_pixels"):
        EpisodeDatasetWriter(tmp_path, {}, store_pixels=False)
    with pytest.raises(ValueError, match="differ from the dataset's fields"):
        writer.add_episode(expected_rows(4, 3, image_size=8))


def test_write_two_rooms_dataset_and_render_on_load(tmp_path):
    count = write_two_rooms_dataset(tmp_path / "tr", 6, n_steps=12, channels=3, seed=0, mode="random")
    assert count == 6
    generator_args = json.loads((tmp_path / "tr" / "two_rooms_generator.json").read_text())
    assert generator_args == {"n_trajectories": 6, "n_steps": 12, "image_size": 64, "channels": 3, "seed": 0,
                              "mode": "random"}  # fmt: skip
    dataset = load_dataset(tmp_path / "tr", render_fn=make_render_fn(64, 3))
    assert dataset.num_steps == 6 * 11 and not dataset.pixels_stored
    assert dataset.env_config["suite"] == "two_rooms" and dataset.env_config["two_rooms_channels"] == 3
    torch.manual_seed(0)
    batch = dataset.sample(4, 5)
    assert batch[keys.PIXELS].shape == (4, 5, 3, 64, 64)
    assert torch.equal(batch[keys.PIXELS], render_positions(batch[keys.STATE], channels=3))
    episode = dataset.episode(2, pixels=False)
    expected = generate_trajectories(6, n_steps=12, mode="random", seed=0)
    np.testing.assert_array_equal(episode[keys.STATE].numpy(), expected.positions[2])
