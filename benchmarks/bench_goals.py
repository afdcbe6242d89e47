"""Goal reaching from pixels: train a small model for a wall-clock budget on a DMC task, then act
toward every goal image of a goal task set (planning toward the goal's latent, or LEXA's achiever)
and print the success rate per goal, next to random actions from the same starts.

    python benchmarks/bench_goals.py configs/planet_reacher_cpu.yaml --task-set reacher --minutes 20
    python benchmarks/bench_goals.py configs/lexa_reacher_cpu.yaml --task-set reacher --run-dir runs/lexa_reacher

Success is measured from the true simulator state at the episode's last step (LEXA) and at any
step ("reached", PLDM). For LEXA runs it also prints the explorer's imagined intrinsic reward next to
that of uniform random actions from the same replay starts (``--intrinsic-batches`` batches).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from envs.goals import goal_names
from planners.lexa_behaviour import LexaBehaviour
from worldmodels.cli.commands import evaluate_goals
from worldmodels.core.config import load_config
from worldmodels.data.replay import SequenceReplay
from worldmodels.evaluation.goal_sets import run_goal_set
from worldmodels.evaluation.lexa import explorer_vs_random_on_replay
from worldmodels.methods import load_trained, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--task-set", default="point_mass")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--planner", choices=["cem", "mppi"], default=None)
    parser.add_argument("--metric", choices=["cosine", "l2"], default=None, help="latent distance (planning methods)")
    parser.add_argument("--run-dir", default=None, help="reuse a trained run instead of training")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per goal, for agent and random actions")
    parser.add_argument("--intrinsic-batches", type=int, default=5, help="LEXA: replay batches for explorer vs random")
    args = parser.parse_args()

    if args.run_dir and (Path(args.run_dir) / "checkpoints" / "latest.pt").exists():
        run_dir = Path(args.run_dir)
    else:
        cfg = load_config(args.config, args.overrides + [f"train.max_minutes={args.minutes}"])
        run_dir = train(cfg, run_dir=args.run_dir or f"runs/bench_goals_{time.strftime('%Y%m%d-%H%M%S')}")
    trained = load_trained(run_dir)
    trained.env.close()
    cfg, model, behaviour = trained.cfg, trained.model, trained.behaviour
    torch.manual_seed(0)
    agent = evaluate_goals(run_dir, args.task_set, episodes=args.episodes, planner=args.planner, metric=args.metric)
    torch.manual_seed(0)
    rand = run_goal_set(cfg, args.task_set, lambda goal_pixels: None, args.episodes)  # None: random actions
    names = goal_names(args.task_set)
    label = "achiever" if trained.method.goal_policy is not None else f"{args.planner or cfg.planner}, {args.metric or 'default'} latent distance"
    print(f"\n{cfg.method} ({label}) on {cfg.env.domain} pixels, goal set {args.task_set} "
          f"({len(names)} goals, {args.episodes} episode(s) each); distances from the true state")
    columns = ("success_rate", "reached_rate", "moved_closer_rate", "initial_distance", "min_distance", "final_distance")
    print("| goal | success (last step) | reached (any step) | ended closer | start dist | closest | final dist |")
    print("|---|---|---|---|---|---|---|")

    def row(label: str, result: dict) -> str:
        return f"| {label} | " + " | ".join(f"{result[c]:.3f}" if "distance" in c else f"{result[c]:.2f}" for c in columns) + " |"

    for g in agent["per_goal"]:
        print(row(f"{g['goal']} {g['name']}", g))
    print(row("**all (agent)**", agent))
    print(row("**all (random actions)**", rand))
    results = {"agent": agent, "random": rand}
    if isinstance(behaviour, LexaBehaviour) and args.intrinsic_batches > 0:
        replay = SequenceReplay.from_config(cfg.replay, Path(run_dir) / "replay", device=model.device)
        torch.manual_seed(0)
        results["intrinsic"] = explorer_vs_random_on_replay(model, behaviour, replay, cfg.replay.batch_size,
                                                            cfg.replay.sequence_length, args.intrinsic_batches)
        scores = results["intrinsic"]
        print(f"\nimagined intrinsic reward (log mean ensemble std, {cfg.actor_critic.horizon} steps from "
              f"{args.intrinsic_batches} replay batches): explorer {scores['explorer']:.3f}, "
              f"random actions {scores['random']:.3f}")
    (Path(run_dir) / "bench_goals.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
