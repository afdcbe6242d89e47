"""Two Rooms goal reaching: PLDM next to PlaNet (and DreamerV2's world model), same offline data, same MPPI.

Every method trains with ``worldmodels.training.offline.train_offline`` on ONE reward-free Two
Rooms dataset (PLDM-style good-quality trajectories, pixels rendered on the fly), then plans with
the same MPPI toward the goal image's features (``GoalDistanceObjective(l2, steps="all")``, PLDM's
objective) on the same start/goal pairs (env sampler, seed 42, start and goal in different rooms).
Success is measured from the true position (``mean((p - g)^2) < 1`` px^2). The chance level (uniform
random actions from the same pairs) is printed beside it.

Budgets are TINY CPU budgets (minutes, small networks) -- far below the paper's (3M transitions,
~100k updates, 2000 MPPI samples on a GPU). The table shows that the pipeline runs for every model
and how the models compare at equal update counts and equal planner, not the paper's numbers.

Measured (defaults: 800 updates of 32 x 9-row windows each, 2000 good trajectories of 17 rows, 20
pairs, MPPI 256 samples x 3 iterations, horizon 24; shared 2-core CPU under heavy load, 1 thread):

    method     updates  train s  success  final px  start px  crossed  random  eval s
    pldm           800      482     0.30      19.5      34.0     0.45    0.00     427
    planet         800      520     0.00      31.0      34.0     0.05    0.00     370
    dreamerv2      800      211     0.00      33.1      34.0     0.00    0.00     421

(PlaNet: deter 64, stoch 16, cnn_depth 8; DreamerV2: deter 64, 8x8 categorical, cnn_depth 8; their
features are goal-matched with the same l2 objective on ``features`` = [deter, stoch].)

Usage:
    python benchmarks/bench_pldm_two_rooms.py [--updates 600] [--episodes 20] [--methods pldm planet]
        [--out runs/bench_pldm] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from worldmodels.core.config import load_config
from worldmodels.evaluation.two_rooms import evaluate_goal_reaching
from worldmodels.methods import method_of
from worldmodels.training import checkpoint
from worldmodels.training.offline import train_offline
from worldmodels.training.run_dir import checkpoint_path

TINY_MODELS = {
    "pldm": ["model.encoder_channels=[8,16,16]", "model.encoder_blocks=1", "model.input_pool=2",
             "model.latent_dim=64", "model.predictor_hidden=64", "model.idm_hidden=64", "model.learning_rate=0.001"],
    "planet": ["model.deter_dim=64", "model.stoch_dim=16", "model.hidden_dim=64", "model.cnn_depth=8",
               "model.reward_layers=1", "model.reward_units=16"],
    "dreamerv2": ["model.deter_dim=64", "model.hidden_dim=64", "model.stoch_dim=8", "model.classes=8",
                  "model.cnn_depth=8", "model.mlp_layers=1", "model.mlp_units=16"],
}  # fmt: skip


def run_config(method: str, data_dir: Path, args) -> list[str]:
    return [
        f"method={method}", "device=cpu", "planner=mppi", "env.suite=two_rooms", "env.two_rooms_channels=2",
        "env.episode_length=200", f"offline.dataset_dir={data_dir}", f"offline.n_trajectories={args.trajectories}",
        "offline.n_steps=17", f"offline.updates={args.updates}", "offline.log_every=50",
        f"offline.checkpoint_every={args.updates}", "offline.eval_episodes=0", "replay.batch_size=32",
        "replay.sequence_length=9", f"mppi.horizon={args.horizon}", "mppi.iterations=3", f"mppi.samples={args.samples}",
        "mppi.temperature=0.005", "mppi.noise_std=1.0", "log.progress=false", "log.tensorboard=false",
        *TINY_MODELS[method],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["pldm", "planet"], choices=list(TINY_MODELS))
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--trajectories", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_pldm_two_rooms"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for method in args.methods:
        cfg = load_config(None, run_config(method, args.out / "data", args))
        run_dir = args.out / method
        started = time.time()
        if not checkpoint_path(run_dir).exists():
            train_offline(cfg, run_dir, method_of(cfg))  # every method on the same offline data
        train_s = time.time() - started
        state = checkpoint.load(checkpoint_path(run_dir))
        model = method_of(cfg).make_model(cfg, 2, (2, 64, 64))
        model.load_state_dict(state["model"])
        started = time.time()
        result = evaluate_goal_reaching(cfg, model.eval(), episodes=args.episodes, seed=42)
        rows.append({"method": method, "updates": state["counters"]["updates"], "train_s": train_s,
                     "eval_s": time.time() - started, **result})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nTwo Rooms, {args.episodes} start/goal pairs (seed 42, different rooms), 200 steps, MPPI "
          f"{args.samples} samples x 3 iterations, horizon {args.horizon}; {args.trajectories} x 16-step trajectories")
    print(f"{'method':<10} {'updates':>7} {'train s':>8} {'success':>8} {'final px':>9} {'start px':>9} "
          f"{'crossed':>8} {'random':>7} {'eval s':>7}")  # fmt: skip
    for r in rows:
        print(f"{r['method']:<10} {r['updates']:>7} {r['train_s']:>8.0f} {r['success_rate']:>8.2f} "
              f"{r['mean_final_distance']:>9.1f} {r['mean_initial_distance']:>9.1f} {r['cross_wall_rate']:>8.2f} "
              f"{r['random_success_rate']:>7.2f} {r['eval_s']:>7.0f}")  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
