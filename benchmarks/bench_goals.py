"""Goal-reaching benchmark from pixels: every trained run (and planner) on every goal set, random actions
from the same start states beside them, one table (issue 16).

    python benchmarks/bench_goals.py --run-dir runs/lexa_reacher --run-dir runs/planet_reacher \
        --task-set reacher --planners cem,icem --episodes 3
    python benchmarks/bench_goals.py configs/planet_reacher_cpu.yaml --minutes 20 --task-set reacher

Per goal set and row: episodes = goals x ``--episodes`` (>= 3 per goal by default), success at the last step
(LEXA's protocol) and at any step (PLDM's), each with a 95 % Wilson interval, the mean true-state distance at
the start and at the end, and whether the success interval lies above random's ("above random"). Every
episode of a goal starts from the same state for every row (the goal envs are seeded per goal; the table
marks a row whose start distances differ from random's). Rows: LEXA runs act with their achiever (and with
any ``--planners`` on latent distance); other runs with each of ``--planners`` (default: the run's own).
For LEXA runs it also prints the explorer's imagined intrinsic reward beside that of random actions.
Writes ``--out`` (JSON with every row's summary and per-goal results).

Under ``torchrun --standalone --nproc_per_node=K benchmarks/bench_goals.py --run-dir RUN ...`` the
episodes of every row are split across the K processes (``run_goal_set``'s sharding; the same table
for every K) and rank 0 alone prints and writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import torch

from planners.builder import goal_planning_agent
from planners.lexa_behaviour import LexaBehaviour
from worldmodels.core.config import ConfigError, load_config, with_overrides
from worldmodels.data.replay import SequenceReplay
from worldmodels.evaluation.goal_sets import run_goal_set
from worldmodels.evaluation.goal_table import goal_table, summarise
from worldmodels.evaluation.lexa import explorer_vs_random_on_replay
from worldmodels.methods import load_trained, train
from worldmodels.training.distributed import Team


PLANNER_SECTIONS = ("cem", "mppi", "icem", "gradient")


def with_planner_settings(cfg, settings: list[str]):
    """``cfg`` with planner-only ``KEY=VALUE`` settings (``cem.horizon=20``), validated as at load.

    Raises:
        ConfigError: a key outside the planner sections, or a value the section refuses.
    """
    for setting in settings:
        section = setting.split("=", 1)[0].split(".", 1)[0]
        if "=" not in setting or section not in PLANNER_SECTIONS:
            raise ConfigError(f"--plan {setting!r}: give KEY=VALUE with KEY in a planner section "
                              f"({', '.join(PLANNER_SECTIONS)}), e.g. cem.horizon=20.")  # fmt: skip
    return with_overrides(cfg, settings) if settings else cfg


def agents_of(trained, planners: list[str], metric: str | None, features=("sample",), parts=("full",),
              holds=(1,)) -> dict:  # fmt: skip
    """``{label: agent_for}`` of a trained run: LEXA's achiever, and a planner on latent distance per
    name and per ``GoalDistanceObjective`` ``features`` x ``part`` x ``goal_hold`` variant (the label names
    a variant other than the default sample / full / 1)."""
    cfg, model, method = trained.cfg, trained.model, trained.method
    agents = {}
    if method.goal_policy is not None:
        agents["achiever"] = method.goal_policy(model, trained.behaviour)
    names = planners or ([] if agents else [cfg.planner])
    used = metric or method.goal_metric
    for name in names:
        for feat, part, hold in itertools.product(features, parts, holds):
            variant = "" if (feat, part) == ("sample", "full") else f" ({feat}, {part})"
            variant += "" if hold == 1 else f" (goal held {hold})"
            agents[f"{name}, {used} latent distance{variant}"] = (
                lambda goal_pixels, name=name, feat=feat, part=part, hold=hold: goal_planning_agent(
                    cfg, model, goal_pixels, used, method.goal_steps, name=name, features=feat, part=part,
                    goal_hold=hold)
            )
    return agents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=None,
                        help="train this config (for --minutes) where no trained --run-dir is given")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for the config")
    parser.add_argument("--run-dir", action="append", default=[],
                        help="a trained run (repeatable); with a config, one not trained yet is trained there")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--task-set", action="append", default=[], help="goal set (repeatable; default: each run's)")
    parser.add_argument("--planners", "--planner", default="",
                        help="comma-separated planners (cem, mppi, icem, gradient)")
    parser.add_argument("--metric", choices=["cosine", "l2"], default=None, help="latent distance of the planners")
    parser.add_argument("--features", default="sample",
                        help="comma-separated: compare latent samples and/or means (sample, mean); a row per value")
    parser.add_argument("--part", default="full",
                        help="comma-separated: compare all features and/or the stochastic part (full, stoch)")
    parser.add_argument("--goal-hold", default="1",
                        help="comma-separated: filtering steps of the goal image held still before its features are "
                             "read (1 = from the initial state); a row per value")  # fmt: skip
    parser.add_argument("--plan", action="append", default=[], metavar="KEY=VALUE",
                        help="planner setting for every planner row, e.g. cem.horizon=20 (repeatable; sections "
                             f"{', '.join(PLANNER_SECTIONS)} only); the rows' labels name them")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=3, help="episodes per goal, for every row and random actions")
    parser.add_argument("--intrinsic-batches", type=int, default=5, help="LEXA: replay batches for explorer vs random")
    parser.add_argument("--out", default=None, help="JSON results (default: bench_goals.json in the first run)")
    args = parser.parse_args()
    team = Team.from_environment()  # torchrun: the ranks share every row's episodes (a team of one otherwise)
    try:
        run_benchmark(parser, args, team)
    finally:
        team.shutdown()


def run_benchmark(parser, args, team: Team) -> None:
    runs = []
    for run_dir in args.run_dir or ([None] if args.config else []):
        if run_dir and (Path(run_dir) / "checkpoints" / "latest.pt").exists():
            runs.append(Path(run_dir))
        elif args.config:
            cfg = load_config(args.config, args.overrides + [f"train.max_minutes={args.minutes}"])
            runs.append(train(cfg, run_dir=run_dir or f"runs/bench_goals_{time.strftime('%Y%m%d-%H%M%S')}"))
        else:
            parser.error(f"{run_dir} holds no trained run (checkpoints/latest.pt); pass a config to train it.")
    if not runs:
        parser.error("pass --run-dir RUN (repeatable) or a config to train.")
    planners = [p for p in args.planners.split(",") if p]
    features, parts = [f for f in args.features.split(",") if f], [p for p in args.part.split(",") if p]
    for name, values, allowed in (("--features", features, ("sample", "mean")), ("--part", parts, ("full", "stoch"))):
        if not values or any(v not in allowed for v in values):
            parser.error(f"{name} takes a comma-separated list of {', '.join(allowed)}, got {','.join(values)!r}.")
    holds = [h for h in args.goal_hold.split(",") if h]
    if not holds or not all(h.isdigit() and int(h) >= 1 for h in holds):
        parser.error(f"--goal-hold takes a comma-separated list of integers >= 1, got {args.goal_hold!r}.")
    holds = [int(h) for h in holds]

    results: dict[str, dict] = {}  # task_set -> {"random": result, "rows": [(label, result)]}
    intrinsic = {}
    for run_dir in runs:
        trained = load_trained(run_dir)
        trained.env.close()
        try:
            trained = dataclasses.replace(trained, cfg=with_planner_settings(trained.cfg, args.plan))
        except ConfigError as err:
            parser.error(str(err))
        cfg, model = trained.cfg, trained.model
        settings = f" [{', '.join(args.plan)}]" if args.plan else ""
        if not args.task_set and cfg.env.goal_set is None:
            parser.error(f"{run_dir}'s config has no env.goal_set; pass --task-set (point_mass, reacher, ...).")
        for task_set in args.task_set or [cfg.env.goal_set]:
            entry = results.setdefault(task_set, {"rows": []})
            if "random" not in entry:  # the goal envs' seeds fix the starts; random actions once per goal set
                torch.manual_seed(0)
                entry["random"] = run_goal_set(cfg, task_set, lambda goal_pixels: None, args.episodes, team=team)
            for label, agent_for in agents_of(trained, planners, args.metric, features, parts, holds).items():
                torch.manual_seed(0)
                result = run_goal_set(cfg, task_set, agent_for, args.episodes, team=team)
                suffix = settings if label != "achiever" else ""
                entry["rows"].append((f"{cfg.method} {Path(run_dir).name}: {label}{suffix}", result))
        if isinstance(trained.behaviour, LexaBehaviour) and args.intrinsic_batches > 0 and team.is_leader:
            replay = SequenceReplay.from_config(cfg.replay, Path(run_dir) / "replay", device=model.device)
            torch.manual_seed(0)
            intrinsic[str(run_dir)] = explorer_vs_random_on_replay(
                model, trained.behaviour, replay, cfg.replay.batch_size, cfg.replay.sequence_length,
                args.intrinsic_batches)  # fmt: skip
    if not team.is_leader:
        return

    print(f"\nGoal reaching from pixels, {args.episodes} episode(s) per goal; distances from the true state")
    for task_set, entry in results.items():
        print()
        print(goal_table(task_set, entry["rows"], entry["random"]))
    for run_dir, scores in intrinsic.items():
        print(f"\n{run_dir}: imagined intrinsic reward (log mean ensemble std, {args.intrinsic_batches} replay "
              f"batches): explorer {scores['explorer']:.3f}, random actions {scores['random']:.3f}")
    out = Path(args.out) if args.out else runs[0] / "bench_goals.json"
    payload = {
        task_set: {
            "random": {"summary": summarise(entry["random"]), "result": entry["random"]},
            "rows": [{"label": label, "summary": summarise(r), "result": r} for label, r in entry["rows"]],
        }
        for task_set, entry in results.items()
    }
    payload["intrinsic"] = intrinsic
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
