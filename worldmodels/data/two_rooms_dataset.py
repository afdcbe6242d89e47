"""PLDM's offline Two Rooms data as a ``worldmodels-episodes`` dataset (positions and actions, no pixels).

The trajectories come from :func:`envs.two_rooms_data.generate_trajectories`; frames are rendered
at load time by :func:`envs.two_rooms_data.make_render_fn`. Beside the dataset,
``two_rooms_generator.json`` records the generator's arguments.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from envs.two_rooms import TwoRoomsLayout
from envs.two_rooms_data import generate_trajectories, trajectories_to_tensordict
from worldmodels.core.config import EnvConfig
from worldmodels.data.datasets import EpisodeDatasetWriter

GENERATOR_FILE = "two_rooms_generator.json"


def write_two_rooms_dataset(directory, n_trajectories: int, n_steps: int = 91, image_size: int = 64,
                            channels: int = 2, seed: int = 0, durable: bool = False, **generator_kwargs) -> int:  # fmt: skip
    """Generate PLDM-style trajectories and write them as a ``worldmodels-episodes`` dataset.

    Pixels are not stored (``pixels: render``): load with
    ``load_dataset(directory, render_fn=make_render_fn(image_size, channels))``. One trajectory is
    one episode (``is_last`` on its last row, never terminal). The generator's arguments are saved
    beside the data in ``two_rooms_generator.json``.

    Args:
        directory: dataset directory (created; appended to if it already holds a dataset).
        n_trajectories, n_steps, seed, **generator_kwargs: see ``envs.two_rooms_data.generate_trajectories``.
        image_size, channels: the env the data is for (stored as the dataset's env config).
        durable: fsync every episode file (slow for many small episodes).

    Returns:
        the number of episodes in the dataset afterwards.
    """
    layout = TwoRoomsLayout(image_size=int(image_size))
    trajectories = generate_trajectories(n_trajectories, n_steps=n_steps, layout=layout, seed=seed, **generator_kwargs)
    env_config = dataclasses.asdict(EnvConfig(suite="two_rooms", image_size=image_size, episode_length=200,
                                              two_rooms_channels=channels))  # fmt: skip
    rows = trajectories_to_tensordict(trajectories)  # [N, T]
    with EpisodeDatasetWriter(directory, env_config, store_pixels=False, durable=durable) as writer:
        for episode in rows.unbind(0):
            writer.add_episode(episode)
        count = writer.num_episodes
    params = dict(n_trajectories=n_trajectories, n_steps=n_steps, image_size=image_size, channels=channels,
                  seed=seed, **generator_kwargs)  # fmt: skip
    (Path(directory) / GENERATOR_FILE).write_text(json.dumps(params, indent=1, default=str))
    return count
