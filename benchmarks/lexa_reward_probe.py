"""Does a trained LEXA run's temporal reward point toward real goals? A probe of the reward itself.

    MUJOCO_GL=egl python benchmarks/lexa_reward_probe.py --run-dir RUN [--task-set reacher] [--episodes 4]

For every goal of the set, ``--episodes`` random-action episodes are filtered by the run's world model
(the belief the achiever acts from, :func:`goal_latent_probe.filtered_episodes`). On the rows after
``--warmup`` it reads:

* the achiever's reward toward the goal *image*, r_t = -D(e_hat(feat_t), e_g), and its Spearman
  correlation with minus the true distance, per goal (1 = the reward orders the states as the simulator
  does; what the achiever climbs at evaluation);
* D on pairs inside these episodes, a frame's predicted embedding against a *real* later frame's encoder
  embedding, k = 0 .. H-1 steps ahead (D's positives, label k / H), and against frames of other goals'
  episodes (negatives, label 1): the mean D per kind and the Spearman of D against k. Imagined pairs
  (what D trains on by default) have a predicted embedding on both sides; a real goal is what the reward
  compares with, so this says whether D reads real goals on its own scale (``lexa.distance_replay``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.goal_latent_probe import filtered_episodes, spearman  # noqa: E402


@torch.inference_mode()
def reward_probe(behaviour, model, cfg, task_set: str, episodes: int, steps: int, warmup: int) -> dict:
    """The measures of the module docstring: per-goal Spearman of the reward with -distance, and D's mean
    reading per kind of pair (``same``, k ahead, ``negative``) with its Spearman against k."""
    from envs.goals import goal_names, num_goals
    from planners.lexa_networks import replay_windows

    temporal, horizon = behaviour.temporal, behaviour.horizon
    rho, predicted_runs, real_runs = [], [], []
    for goal in range(num_goals(task_set)):
        posterior, goal_pixels, true, pixels = filtered_episodes(model, cfg, task_set, goal, episodes, steps, True)
        features = model.features(posterior)[:, warmup:]  # [N, T', F]
        goal_embed = model.embed(goal_pixels[None].to(model.device))  # [1, E]
        reward = temporal.reward(features, goal_embed[:, None])[..., 0]  # [N, T']
        rho.append(spearman(reward.reshape(-1).cpu().numpy(), -true[:, warmup:].reshape(-1)))
        real = model.embed(pixels.to(model.device))[:, warmup:]  # [N, T', E]
        predicted_runs.append(replay_windows(temporal.predict_embed(features), horizon)[0])
        real_runs.append(replay_windows(real, horizon)[0])
    predicted, real = torch.cat(predicted_runs), torch.cat(real_runs)  # [R, H, E], runs of all goals
    by_k = [temporal.distance(predicted[:, 0], real[:, k])[:, 0] for k in range(horizon)]  # [R] each
    runs = predicted.shape[0]
    shift = torch.roll(torch.arange(runs), runs // 2)  # a run of another goal's episodes (goals in blocks)
    negative = temporal.distance(predicted[:, 0], real[shift, 0])[:, 0]
    ks = np.repeat(np.arange(horizon), runs)
    d = torch.cat(by_k).cpu().numpy()
    return {
        "goals": goal_names(task_set),
        "reward_spearman": rho,
        "distance_by_k": [float(x.mean()) for x in by_k],
        "distance_negative": float(negative.mean()),
        "distance_spearman_k": spearman(d, ks.astype(float)),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--task-set", default=None, help="default: the run's env.goal_set")
    parser.add_argument("--episodes", type=int, default=4, help="random-action episodes per goal")
    parser.add_argument("--steps", type=int, default=60, help="agent steps of each episode")
    parser.add_argument("--warmup", type=int, default=10, help="filtered steps before rows are read")
    parser.add_argument("--json", default=None, help="default: RUN/lexa_reward_probe_TASKSET.json")
    args = parser.parse_args(argv)

    from worldmodels.evaluation.goal_sets import check_goal_set
    from worldmodels.methods import load_trained

    run = load_trained(args.run_dir, device="cpu")
    run.env.close()
    if getattr(run.behaviour, "temporal", None) is None:
        parser.error(f"{args.run_dir} is not a LEXA run with the temporal reward (lexa.achiever_reward=temporal).")
    task_set = args.task_set or run.cfg.env.goal_set
    check_goal_set(run.cfg, task_set)
    if not 0 <= args.warmup <= args.steps - run.behaviour.horizon:
        parser.error(f"--warmup must lie in [0, --steps - H] = [0, {args.steps - run.behaviour.horizon}], got {args.warmup}.")
    run.model.eval()
    run.behaviour.eval()
    result = reward_probe(run.behaviour, run.model, run.cfg, task_set, args.episodes, args.steps, args.warmup)
    rho = result["reward_spearman"]
    print(f"{args.run_dir} on {task_set}: {args.episodes} random episodes x {args.steps} steps per goal, rows after {args.warmup}")
    print(f"Spearman(reward -D(e_hat_t, e_goal image), -true distance): mean {np.mean(rho):.2f} "
          f"[{min(rho):.2f}, {max(rho):.2f}] over {len(rho)} goals")
    by_k = result["distance_by_k"]
    print(f"D(e_hat_t, real e_t+k) on {result['runs']} runs of H = {len(by_k)}: k=0 {by_k[0]:.2f}, "
          f"k={len(by_k) // 2} {by_k[len(by_k) // 2]:.2f}, k={len(by_k) - 1} {by_k[-1]:.2f} "
          f"(labels 0, {len(by_k) // 2 / len(by_k):.2f}, {(len(by_k) - 1) / len(by_k):.2f}); another goal's "
          f"episode {result['distance_negative']:.2f} (label 1); Spearman(D, k) {result['distance_spearman_k']:.2f}")
    path = Path(args.json or Path(args.run_dir) / f"lexa_reward_probe_{task_set}.json")
    path.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
