"""Collection throughput: agent steps per second with ``env.num_envs = N`` (torchrl ParallelEnv), not a test.

Each row collects whole episodes with ``worldmodels.data.collect.collect_episode`` on
``envs.parallel.make_batched_env`` -- the path the online loop takes -- acting with

* ``random``  -- uniform random actions (the env and worker plumbing alone);
* ``planet``  -- a tiny PlaNet with a CEM ``PlanningAgent`` planning for all N envs in one call per step
                 (``--planner-candidates`` / ``--planner-iterations`` set its cost),

and reports agent steps per second summed over the N envs (episodes x steps per episode x N / wall
time, the ParallelEnv start-up excluded), and the speed-up over N = 1.

Usage (this machine: 2 cores, so N = 1, 2):
    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/bench_collect.py --envs 1 2
On a bigger machine (one core per env worker plus one for the agent), e.g.:
    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/bench_collect.py --envs 1 2 4 8 16 --episodes 2 --fast-render
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from envs.parallel import make_batched_env
from planners.builder import planning_agent
from worldmodels.core import keys
from worldmodels.core.config import load_config
from worldmodels.data.collect import collect_episode
from worldmodels.models.planet import PlaNet


def steps_per_second(cfg, num_envs: int, agent_kind: str, episodes: int) -> float:
    env_cfg = dataclasses.replace(cfg.env, num_envs=num_envs)
    env = make_batched_env(env_cfg, seed=cfg.seed)
    try:
        agent = None
        if agent_kind == "planet":
            shape = tuple(env.observation_spec[keys.PIXELS].shape[-3:])
            model = PlaNet(cfg.model, action_dim=env.action_spec.shape[-1], image_shape=shape)
            agent = planning_agent(cfg, model, explore=True)
        collect_episode(env, agent)  # warm-up (worker start-up, first render)
        started, steps = time.perf_counter(), 0
        for _ in range(episodes):
            rollout = collect_episode(env, agent)
            steps += rollout.numel()  # N x T agent steps
        return steps / (time.perf_counter() - started)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--episodes", type=int, default=2, help="timed episodes per env and row")
    parser.add_argument("--episode-length", type=int, default=200, help="env steps per episode")
    parser.add_argument("--agents", nargs="+", default=["random", "planet"], choices=["random", "planet"])
    parser.add_argument("--planner-candidates", type=int, default=100)
    parser.add_argument("--planner-iterations", type=int, default=3)
    parser.add_argument("--fast-render", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(None, [
        "env.domain=cartpole", "env.task=swingup", f"env.episode_length={args.episode_length}",
        "replay.sequence_length=2", f"env.fast_render={str(args.fast_render).lower()}", "model.deter_dim=32", "model.stoch_dim=8",
        "model.hidden_dim=32", "model.cnn_depth=8", "cem.horizon=6", f"cem.candidates={args.planner_candidates}",
        f"cem.top_k={max(1, args.planner_candidates // 10)}", f"cem.iterations={args.planner_iterations}", "device=cpu",
    ])  # fmt: skip
    print(f"cartpole-swingup 64x64, action repeat {cfg.env.action_repeat or 8}, {args.episode_length} env steps "
          f"per episode, {args.episodes} timed episodes per env")  # fmt: skip
    print(f"{'agent':<8} {'N envs':>6} {'agent steps/s':>14} {'vs N=1':>7}")
    for agent_kind in args.agents:
        base = None
        for n in args.envs:
            rate = steps_per_second(cfg, n, agent_kind, args.episodes)
            base = base or rate
            print(f"{agent_kind:<8} {n:>6} {rate:>14.1f} {rate / base:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
