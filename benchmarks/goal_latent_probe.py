"""Does a trained model's latent distance rank states by their true distance to a goal? A probe.

    MUJOCO_GL=egl python benchmarks/goal_latent_probe.py --run-dir RUN --task-set point_mass [--starts 40]

For every goal of the set, ``--starts`` random start states of the goal env (reset places the body
uniformly, so the frames cover the arena) are embedded the way a planner embeds a goal image
(``features_from_embed``: the posterior from the initial state) and compared to the goal image's
embedding. Prints, per feature variant (a posterior *sample*, what ``embed_goal`` returns, and the
posterior *mean*; a model without a posterior, PLDM, has one: its encoder's ``embed_goal``):

* Spearman rank correlation between the latent L2 distance and the true distance, per goal, then
  the mean and range over goals (1 = the latent orders every start correctly; 0 = no relation);
* how much of the simulator state a linear map reads from the features (held-out R^2 over all
  starts; position and, where a reset sets it, velocity);
* the noise: mean L2 between two samples of the same frame's posterior, against the spread
  (standard deviation) of the latent distance over the starts. A noise as large as the spread
  drowns the signal a planner ranks candidates by.

It measures issue 16's last point_mass hypothesis (the posterior's noise against the ball's signal)
on a trained run; ``point_mass_probe.py`` measures the render without a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planners.objectives import goal_image_features as goal_features  # noqa: E402


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (no ties expected: continuous distances)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def start_frames(cfg, task_set: str, goal: int, starts: int):
    """Goal image ``[C,H,W]``, start frames ``[N,C,H,W]``, their true distances ``[N]`` to goal ``goal``
    and their simulator states ``[N, S]``."""
    from envs.goals import goal_distance
    from worldmodels.core import keys
    from worldmodels.evaluation.goal_sets import make_goal_set_env

    env = make_goal_set_env(cfg, task_set, goal)
    frames, distances, states, goal_pixels = [], [], [], None
    try:
        for i in range(starts):
            env.set_seed(cfg.seed + 50_000 + 1_000 * goal + i)
            td = env.reset()
            goal_pixels = td[keys.GOAL_PIXELS]
            frames.append(td[keys.PIXELS])
            states.append(td[keys.STATE].numpy())
            distances.append(float(goal_distance(task_set, td[keys.STATE], td[keys.GOAL_STATE], goal)))
    finally:
        env.close()
    return goal_pixels, torch.stack(frames), np.array(distances), np.stack(states)


def linear_probe_r2(features: np.ndarray, states: np.ndarray, ridge: float = 1e-3) -> float:
    """Held-out R^2 of a ridge regression from features ``[N, F]`` to states ``[N, S]``, fitted on the
    even rows and scored on the odd ones, averaged over the state entries that vary (1 = the state
    is linearly readable from the features; 0 = no better than its mean)."""
    x = np.concatenate([features, np.ones((len(features), 1))], 1).astype(np.float64)
    fit, test = slice(0, None, 2), slice(1, None, 2)
    varying = states[fit].std(0) > 1e-6
    y = states[:, varying].astype(np.float64)
    gram = x[fit].T @ x[fit]
    w = np.linalg.solve(gram + ridge * np.trace(gram) / len(gram) * np.eye(len(gram)), x[fit].T @ y[fit])
    residual = ((x[test] @ w - y[test]) ** 2).sum(0)
    total = ((y[test] - y[test].mean(0)) ** 2).sum(0)
    return float(np.mean(1 - residual / total))


@torch.inference_mode()
def probe(model, cfg, task_set: str, starts: int) -> dict:
    """The measures of the module docstring for one trained ``model`` on ``task_set``."""
    from envs.goals import goal_names, num_goals

    variants = (("sample", True), ("mean", False)) if model.has_embedding else (("mean", False),)
    out = {variant: {"spearman": [], "spread": []} for variant, _ in variants}
    if model.has_embedding:
        out["sample"]["noise"] = []
    mean_feats, all_states = [], []
    for goal in range(num_goals(task_set)):
        goal_pixels, frames, true, states = start_frames(cfg, task_set, goal, starts)
        frames, goal_pixels = frames.to(model.device), goal_pixels[None].to(model.device)
        all_states.append(states)
        for variant, sample in variants:
            feats = goal_features(model, frames, sample)
            latent = (feats - goal_features(model, goal_pixels, sample)).norm(dim=-1).cpu().numpy()
            out[variant]["spearman"].append(spearman(latent, true))
            out[variant]["spread"].append(float(latent.std()))
            if sample:
                again = goal_features(model, frames, True)
                out[variant]["noise"].append(float((feats - again).norm(dim=-1).mean()))
            else:
                mean_feats.append(feats.cpu().numpy())
    out["goals"] = goal_names(task_set)
    out["state_r2"] = linear_probe_r2(np.concatenate(mean_feats), np.concatenate(all_states))
    return out


def filtered_episodes(model, cfg, task_set: str, goal: int, episodes: int, steps: int, with_pixels: bool = False):
    """Posterior states ``[N, T]`` of ``episodes`` random-action episodes of ``steps`` agent steps
    toward goal ``goal``, filtered with their history as a planning agent's belief is, the goal
    image ``[C,H,W]`` and the true distances ``[N, T]`` of every row to the goal (``with_pixels``: then
    the episodes' frames ``[N, T, C, H, W]`` too)."""
    from envs.goals import goal_distance
    from worldmodels.core import keys
    from worldmodels.evaluation.goal_sets import make_goal_set_env

    env = make_goal_set_env(cfg, task_set, goal)
    rollouts = []
    try:
        for i in range(episodes):
            env.set_seed(cfg.seed + 60_000 + 1_000 * goal + i)
            torch.manual_seed(cfg.seed + 60_000 + 1_000 * goal + i)
            rollouts.append(env.rollout(max_steps=steps, auto_reset=True))  # random actions
    finally:
        env.close()
    batch = torch.stack(rollouts)  # [N, T]
    actions = batch[keys.ACTION]
    prev_action = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1)
    is_first = torch.zeros(*batch.shape, 1, dtype=torch.bool)
    is_first[:, 0] = True
    dev = model.device
    posterior = model.observe({keys.PIXELS: batch[keys.PIXELS].to(dev)}, prev_action.to(dev), is_first.to(dev))
    true = goal_distance(task_set, batch[keys.STATE], batch[keys.GOAL_STATE], goal)
    if with_pixels:
        return posterior, batch[keys.GOAL_PIXELS][0, 0], np.asarray(true), batch[keys.PIXELS]
    return posterior, batch[keys.GOAL_PIXELS][0, 0], np.asarray(true)


def planning_variants(model, posterior, goal_pixels: torch.Tensor,
                      holds: tuple[int, ...] = ()) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """``{variant: (features [..., F'], goal features [F'])}``: what a goal-distance objective could
    compare for filtered states ``posterior`` (their deterministic part carries the history, unlike a
    goal image's, which is one GRU step from the zero state). RSSM models: the sampled features and a
    goal sample (what ``embed_goal`` gives the planners), the mean features against the goal's mean,
    the stochastic part alone (posterior mean, and the prior mean at the same ``deter``, which is what
    an imagined step holds), and the deterministic part alone; per K in ``holds``, all features (posterior
    and prior mean) against the goal image held still for K filtering steps (``features_from_embed(hold=K)``:
    the goal's own ``deter``). Other models: their features."""
    from worldmodels.core import keys

    if not model.has_embedding or not hasattr(model, "rssm"):
        return {"features": (model.features(posterior), model.embed_goal(goal_pixels[None])[0])}
    embed = model.embed(goal_pixels[None])
    goal_sample = model.features_from_embed(embed, sample=True)[0]
    goal_mean = model.features_from_embed(embed, sample=False)[0]
    held = {k: model.features_from_embed(embed, sample=False, hold=k)[0] for k in holds}  # [F] per K
    d = posterior[keys.DETER].shape[-1]
    mean = model.mean_features(posterior)
    prior = posterior.select(keys.DETER).update(model.rssm.prior(posterior[keys.DETER]))
    prior_mean = model.mean_features(prior)
    return {
        "full, sample (planners today)": (model.features(posterior), goal_sample),
        "full, mean": (mean, goal_mean),
        "stoch, posterior mean": (mean[..., d:], goal_mean[d:]),
        "stoch, prior mean": (prior_mean[..., d:], goal_mean[d:]),
        "deter only": (mean[..., :d], goal_mean[:d]),
        **{f"full, mean, goal held {k}": (mean, goal) for k, goal in held.items()},
        **{f"full, prior mean, goal held {k}": (prior_mean, goal) for k, goal in held.items()},
    }


@torch.inference_mode()
def filtered_probe(model, cfg, task_set: str, episodes: int, steps: int, warmup: int, holds: tuple[int, ...] = ()) -> dict:
    """Spearman of each :func:`planning_variants` L2 against the true distance, per goal, on the rows
    after ``warmup`` steps of filtering: ``{variant: [per-goal Spearman]}``."""
    from envs.goals import num_goals

    out: dict[str, list[float]] = {}
    for goal in range(num_goals(task_set)):
        posterior, goal_pixels, true = filtered_episodes(model, cfg, task_set, goal, episodes, steps)
        for variant, (feats, goal_feats) in planning_variants(model, posterior, goal_pixels.to(model.device), holds).items():
            latent = (feats - goal_feats).norm(dim=-1)[:, warmup:].reshape(-1).cpu().numpy()
            out.setdefault(variant, []).append(spearman(latent, true[:, warmup:].reshape(-1)))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--task-set", required=True)
    parser.add_argument("--starts", type=int, default=40, help="random start states per goal")
    parser.add_argument("--episodes", type=int, default=6,
                        help="random-action episodes per goal for the filtered (planning) rows; 0 skips them")
    parser.add_argument("--steps", type=int, default=60, help="agent steps of each filtered episode")
    parser.add_argument("--warmup", type=int, default=10, help="filtered steps before rows are compared")
    parser.add_argument("--goal-hold", default="",
                        help="comma-separated K: filtered rows against the goal image held still K steps (RSSM models)")
    parser.add_argument("--json", default=None, help="default: RUN/goal_latent_probe_TASKSET.json")
    args = parser.parse_args(argv)
    given = [k for k in args.goal_hold.split(",") if k]
    if not all(k.isdigit() and int(k) >= 1 for k in given):  # before the run is loaded
        parser.error(f"--goal-hold takes a comma-separated list of integers >= 1, got {args.goal_hold!r}.")
    holds = tuple(int(k) for k in given)

    from worldmodels.evaluation.goal_sets import check_goal_set
    from worldmodels.methods import load_trained

    run = load_trained(args.run_dir, device="cpu")
    run.env.close()
    check_goal_set(run.cfg, args.task_set)
    run.model.eval()
    result = probe(run.model, run.cfg, args.task_set, args.starts)
    print(f"{args.run_dir} on {args.task_set}: {args.starts} random starts per goal, {len(result['goals'])} goals")
    print("| features | Spearman(latent L2, true distance): mean [min, max] over goals | latent distance spread (std) | "
          "sample-to-sample noise |\n|---|---|---|---|")  # fmt: skip
    for variant in [v for v in ("sample", "mean") if v in result]:
        r = result[variant]
        noise = f"{np.mean(r['noise']):.3f}" if r.get("noise") else "0 (deterministic)"
        print(f"| posterior {variant} | {np.mean(r['spearman']):.2f} [{min(r['spearman']):.2f}, {max(r['spearman']):.2f}] | "
              f"{np.mean(r['spread']):.3f} | {noise} |")  # fmt: skip
    print(f"state linearly readable from the posterior-mean features (held-out R^2): {result['state_r2']:.2f}")
    if args.episodes > 0:
        if args.warmup >= args.steps:
            parser.error(f"--warmup must be below --steps ({args.steps}), got {args.warmup}.")
        result["filtered"] = filtered_probe(run.model, run.cfg, args.task_set, args.episodes, args.steps, args.warmup,
                                            holds)  # fmt: skip
        print(f"\nFiltered states ({args.episodes} random episodes of {args.steps} steps per goal, rows after "
              f"{args.warmup}), the belief a planner starts from, against the goal image's features:")
        print("| compared | Spearman(latent L2, true distance): mean [min, max] over goals |\n|---|---|")
        for variant, rho in result["filtered"].items():
            print(f"| {variant} | {np.mean(rho):.2f} [{min(rho):.2f}, {max(rho):.2f}] |")
    path = Path(args.json or Path(args.run_dir) / f"goal_latent_probe_{args.task_set}.json")
    path.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
