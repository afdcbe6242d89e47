"""Synthetic episodes with recognisable rows, shared by the data tests.

Episode e, step t: state (e, t), pixels (16e + t) mod 256, action (e + t/100, -t/100), reward on
arriving at t+1: (e + t + 1) / 2.
"""

import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.data.rows import steps_to_rows


def synthetic_steps(lengths, first_episode=0, image_size=4):
    """torchrl steps ``[S]`` of consecutive episodes (collector-style auto-reset), exactly as
    ``env.rollout`` lays them out. Episode e, step t: state (e, t), pixels (16e + t) mod 256,
    action (e + t/100, -t/100), reward on arriving at t+1: (e + t + 1) / 2."""
    episode = torch.cat([torch.full((n,), first_episode + i, dtype=torch.float32) for i, n in enumerate(lengths)])
    step = torch.cat([torch.arange(n, dtype=torch.float32) for n in lengths])  # [S]
    last = torch.cat([torch.arange(n) == n - 1 for n in lengths])[:, None]  # [S,1]

    def pixels(t):
        value = ((episode * 16 + t) % 256).to(torch.uint8)
        return value[:, None, None, None].expand(-1, 3, image_size, image_size).clone()

    size = [len(step)]
    return TensorDict(
        {
            keys.STATE: torch.stack([episode, step], -1),
            keys.PIXELS: pixels(step),
            keys.ACTION: torch.stack([episode + step / 100, -step / 100], -1),
            keys.IS_FIRST: (step == 0)[:, None],
            keys.DONE: torch.zeros(size + [1], dtype=torch.bool),
            keys.NEXT: TensorDict(
                {
                    keys.STATE: torch.stack([episode, step + 1], -1),
                    keys.PIXELS: pixels(step + 1),
                    keys.REWARD: ((episode + step + 1) / 2)[:, None],
                    keys.DONE: last,
                    keys.TERMINATED: torch.zeros(size + [1], dtype=torch.bool),
                    keys.TRUNCATED: last,
                },
                size,
            ),
        },
        size,
    )


def expected_rows(episode, length, image_size=4):
    return steps_to_rows(synthetic_steps([length], episode, image_size))


def assert_same_rows(actual, expected):
    for key in expected.keys():
        assert torch.equal(actual.get(key), expected.get(key)), key
