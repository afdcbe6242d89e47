"""Does a small config learn on this machine? Train for a wall-clock budget, then compare the
eval return over N episodes with a random policy's on the same task, and print a table.

    python benchmarks/bench_learning.py configs/planet_cheetah_cpu.yaml --minutes 30 --episodes 5

The training run is an ordinary run directory (resumable, inspectable with ``worldmodels
imagine``); ``--run-dir`` of an existing run (e.g. one extended with ``worldmodels train --resume``)
evaluates it without training. Prints: random mean +- std, trained mean +- std, their ratio, episodes and updates done.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from envs import make_env
from worldmodels.training import checkpoint
from worldmodels.core.config import load_config
from worldmodels.data.collect import collect_episode, episode_return
from worldmodels.evaluation.returns import evaluate
from worldmodels.methods import load_trained, train
from worldmodels.training.run_dir import checkpoint_path


def random_returns(cfg, episodes: int, seed: int) -> list[float]:
    """Returns of uniformly random actions on the config's env (same action repeat and length)."""
    torch.manual_seed(seed)
    env = make_env(cfg.env, seed=seed)
    out = [episode_return(collect_episode(env)) for _ in range(episodes)]
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--episodes", type=int, default=5, help="eval episodes for both policies")
    parser.add_argument("--run-dir", default=None, help="an existing run is evaluated as it is (no training)")
    args = parser.parse_args()

    run_dir = Path(args.run_dir or f"runs/bench_learning_{Path(args.config).stem}_{time.strftime('%Y%m%d-%H%M%S')}")
    if not checkpoint_path(run_dir).exists():
        cfg = load_config(args.config, args.overrides + [f"train.max_minutes={args.minutes}"])
        train(cfg, run_dir=run_dir)

    run = load_trained(run_dir)
    cfg, env = run.cfg, run.env
    torch.manual_seed(1234)
    trained = evaluate(env, run.method.make_agent(cfg, run.model, run.behaviour, explore=False), args.episodes)["returns"]
    env.close()
    rand = random_returns(cfg, args.episodes, seed=1234)
    counters = checkpoint.load(checkpoint_path(run_dir))["counters"]
    train_minutes = counters["train_seconds"] / 60

    def fmt(values):
        return f"{statistics.fmean(values):8.1f} +- {statistics.pstdev(values):6.1f}"

    ratio = statistics.fmean(trained) / max(1e-6, statistics.fmean(rand))
    print(f"\n{cfg.method} on {cfg.env.domain}-{cfg.env.task} (action repeat {env.action_repeat}), "
          f"{train_minutes:.1f} min of training on {torch.get_num_threads()} threads")
    print(f"| policy  | return over {args.episodes} episodes |")
    print("|---|---|")
    print(f"| random  | {fmt(rand)} |")
    print(f"| trained | {fmt(trained)} |")
    print(f"ratio trained/random: {ratio:.2f}; episodes collected {counters['episodes']}, "
          f"model updates {counters['updates']}")
    summary = {"random": rand, "trained": trained, "ratio": ratio, "train_minutes": train_minutes,
               "episodes": counters["episodes"], "updates": counters["updates"], "run_dir": str(run_dir)}
    (run_dir / "bench_learning.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
