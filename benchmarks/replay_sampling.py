"""Replay speed: sample [B, T] windows of 64x64 pixels from a disk-backed SequenceReplay.

Usage: python benchmarks/replay_sampling.py [--rows 100000] [--batch 50] [--length 50]
Prints median / p90 milliseconds per ``sample(B, T)`` (data in the OS page cache, as in training),
and per committed 1000-step episode for ``add_episode`` with and without fsync.
"""

import argparse
import statistics
import tempfile
import time

import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.data.replay import SequenceReplay


def episode_rows(length: int, image_size: int, action_dim: int = 6) -> TensorDict:
    action = torch.rand(length, action_dim) * 2 - 1
    action[-1] = 0
    prev_action = torch.cat([torch.zeros(1, action_dim), action[:-1]])
    flags = torch.zeros(length, 1, dtype=torch.bool)
    return TensorDict({
        keys.PIXELS: torch.randint(0, 256, (length, 3, image_size, image_size), dtype=torch.uint8),
        keys.STATE: torch.randn(length, 18), keys.ACTION: action, keys.PREV_ACTION: prev_action,
        keys.REWARD: torch.cat([torch.zeros(1, 1), torch.rand(length - 1, 1)]),
        keys.IS_FIRST: flags.clone().index_fill_(0, torch.tensor([0]), True),
        keys.IS_LAST: flags.clone().index_fill_(0, torch.tensor([length - 1]), True),
        keys.IS_TERMINAL: flags.clone(),
    }, [length])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    episode_length = 501  # PlaNet: 1000 env steps / action repeat 2 + 1
    with tempfile.TemporaryDirectory() as directory:
        for durable in (False, True):
            replay = SequenceReplay(f"{directory}/{durable}", args.rows, durable=durable)
            rows = episode_rows(episode_length, args.image_size)
            times = []
            for _ in range(args.rows // episode_length):
                start = time.perf_counter()
                replay.add_episode(rows)
                times.append(time.perf_counter() - start)
            print(f"add_episode ({episode_length} rows, durable={durable}): median {statistics.median(times) * 1e3:.1f} ms")
        replay.sample(args.batch, args.length)  # warm up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            batch = replay.sample(args.batch, args.length)
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"sample(B, T) [{args.batch}, {args.length}] of {tuple(batch[keys.PIXELS].shape[2:])} uint8 pixels from "
              f"{replay.num_rows} rows: median {statistics.median(times) * 1e3:.1f} ms, "
              f"p90 {times[int(0.9 * len(times))] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
