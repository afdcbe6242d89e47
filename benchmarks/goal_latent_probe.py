"""Does a trained model's latent distance rank states by their true distance to a goal? A probe.

    MUJOCO_GL=egl python benchmarks/goal_latent_probe.py --run-dir RUN --task-set point_mass [--starts 40]

For every goal of the set, ``--starts`` random start states of the goal env (reset places the body
uniformly, so the frames cover the arena) are embedded the way a planner embeds a goal image
(``features_from_embed``: the posterior from the initial state) and compared to the goal image's
embedding. Prints, per feature variant (a posterior *sample*, what ``embed_goal`` returns, and the
posterior *mean*; a model without a posterior, PLDM, has one: its encoder's ``embed_goal``):

* Spearman rank correlation between the latent L2 distance and the true distance, per goal, then
  the mean and range over goals (1 = the latent orders every start correctly; 0 = no relation);
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


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (no ties expected: continuous distances)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def start_frames(cfg, task_set: str, goal: int, starts: int):
    """Goal image ``[C,H,W]``, start frames ``[N,C,H,W]`` and their true distances ``[N]`` to goal ``goal``."""
    from envs.goals import goal_distance
    from worldmodels.core import keys
    from worldmodels.evaluation.goal_sets import make_goal_set_env

    env = make_goal_set_env(cfg, task_set, goal)
    frames, distances, goal_pixels = [], [], None
    try:
        for i in range(starts):
            env.set_seed(cfg.seed + 50_000 + 1_000 * goal + i)
            td = env.reset()
            goal_pixels = td[keys.GOAL_PIXELS]
            frames.append(td[keys.PIXELS])
            distances.append(float(goal_distance(task_set, td[keys.STATE], td[keys.GOAL_STATE], goal)))
    finally:
        env.close()
    return goal_pixels, torch.stack(frames), np.array(distances)


def goal_features(model, pixels: torch.Tensor, sample: bool) -> torch.Tensor:
    """Features of single frames ``[N,C,H,W]`` -> ``[N,F]``: the posterior from the initial state
    (a sample or the mean) for RSSM models, ``embed_goal`` (deterministic) for the others (PLDM)."""
    if model.has_embedding:
        return model.features_from_embed(model.embed(pixels), sample=sample)
    return model.embed_goal(pixels)


@torch.inference_mode()
def probe(model, cfg, task_set: str, starts: int) -> dict:
    """The measures of the module docstring for one trained ``model`` on ``task_set``."""
    from envs.goals import goal_names, num_goals

    device = model.device
    variants = (("sample", True), ("mean", False)) if model.has_embedding else (("mean", False),)
    out = {"mean": {"spearman": [], "spread": []}}
    if model.has_embedding:
        out["sample"] = {"spearman": [], "noise": [], "spread": []}
    for goal in range(num_goals(task_set)):
        goal_pixels, frames, true = start_frames(cfg, task_set, goal, starts)
        for variant, sample in variants:
            feats = goal_features(model, frames.to(device), sample)
            goal_feat = goal_features(model, goal_pixels[None].to(device), sample)
            latent = (feats - goal_feat).norm(dim=-1).cpu().numpy()
            out[variant]["spearman"].append(spearman(latent, true))
            out[variant]["spread"].append(float(latent.std()))
            if sample:
                again = goal_features(model, frames.to(device), True)
                out[variant]["noise"].append(float((feats - again).norm(dim=-1).mean()))
    out["goals"] = goal_names(task_set)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--task-set", required=True)
    parser.add_argument("--starts", type=int, default=40, help="random start states per goal")
    parser.add_argument("--json", default=None, help="default: RUN/goal_latent_probe_TASKSET.json")
    args = parser.parse_args(argv)

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
    path = Path(args.json or Path(args.run_dir) / f"goal_latent_probe_{args.task_set}.json")
    path.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
