"""PLDM's Two Rooms protocol as one command: train (or reuse) a run, evaluate, print a table beside PLDM's numbers.

Usage:
    python benchmarks/bench_two_rooms.py CONFIG [key=value ...] [--run-dir RUN] [--episodes 100]
        [--steps 200] [--planners mppi icem cem gradient] [--same-room] [--variants good wc0 ...]
        [--device cpu]

    # one run, PLDM's protocol with the run's planner:
    python benchmarks/bench_two_rooms.py configs/pldm_two_rooms_cpu.yaml --run-dir runs/tr_good
    # the data-variant sweep (each variant trains in RUN/VARIANT with its own dataset):
    python benchmarks/bench_two_rooms.py configs/pldm_two_rooms_cpu.yaml --run-dir runs/tr --variants good wc0
    # the planner axis on one trained run:
    python benchmarks/bench_two_rooms.py configs/pldm_two_rooms_cpu.yaml --run-dir runs/tr_good \
        --planners mppi icem cem gradient

Training goes through ``worldmodels.methods.train``: a run directory that already holds a checkpoint
is resumed (its own ``config.yaml``; CONFIG and the training overrides are then not applied, and
only ``offline.updates`` / ``train.max_minutes`` overrides extend it), a finished one is reused as it
is. Evaluation overrides (``planner=``, the planner sections ``mppi.*``/``cem.*``/``icem.*``/
``gradient.*`` and ``offline.eval_shrink_horizon``) apply to the evaluation of a reused run too, so
one trained run can be evaluated under many planner settings, e.g. ``mppi.samples=512``;
``--planning-from-config`` takes all of them from CONFIG (a run trained before CONFIG's planner changed). The bench sets ``offline.eval_episodes=0`` before the user's overrides, so training does not run
its own final evaluation; the evaluation here is ``worldmodels.evaluation.two_rooms.evaluate_goal_reaching``.

What the numbers mean (one table row per variant x pair set x planner):
    success     fraction of ``--episodes`` start/goal pairs reached within ``--steps`` steps, success
                ``mean((p - g)^2) < 1`` px^2 from the true position; pairs drawn by the env's sampler
                from seed 42 (start and goal in different rooms), as PLDM's 100 eval envs
    95% CI      Wilson score interval of that fraction
    random      uniform random actions from the same pairs, with the planner's action-norm cap (chance level)
    direct / bend / detour
                success per difficulty bin, ``rate (count)``; bin by the shortest path through the door
                over the straight-line distance r: direct r < 1.1 <= bend < 1.5 <= detour
    seq/plan    action sequences imagined per state per ``plan`` call (``planners.builder.sequences_per_plan``:
                model evaluations per executed action, the compute axis); H the planner's horizon,
                marked ``s`` when it shrinks to ``min(steps_left, H)`` (``offline.eval_shrink_horizon``)
    updates     gradient updates of the evaluated checkpoint
    eval s      wall seconds of the evaluation (all pairs batched)
    PLDM paper  PLDM workshop Table 2 for that data variant (good 0.860 +- 0.028; no door-passing
                trajectories 0.568); "—" where the paper has no number. The paper trains on 3M
                transitions on a GPU; a CPU config is far smaller, so the column is a target, not a match.
    same-room   (``--same-room``) pairs with start and goal in one room (``sample_same_room_pairs``)

Every row re-seeds torch with ``--seed`` first, so a row does not depend on the rows before it.

Results are written as JSON to ``RUN/bench_two_rooms.json`` (each variant's rows in its own run
directory, and the whole table in RUN with ``--variants``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from planners.builder import PLANNERS, sequences_per_plan
from worldmodels.core.config import RunConfig, load_config, with_overrides
from worldmodels.core.files import atomic_write_json
from worldmodels.evaluation.two_rooms import DIFFICULTY_BINS, evaluate_goal_reaching, sample_same_room_pairs
from worldmodels.methods import load_trained, train
from worldmodels.training.budget import BUDGET_KEYS, BudgetSpent
from worldmodels.training.run_dir import has_checkpoint, load_checkpoint

PAPER = {"good": "0.860 ± 0.028", "wc0": "0.568"}
"""PLDM workshop Table 2, Two Rooms success, by data variant (methods.md 2.5)."""

VARIANTS: dict[str, list[str]] = {
    "good": [],  # the config's own data (PLDM good-quality trajectories)
    "wc0": ["offline.door_passing_fraction=0.0"],  # PLDM wc0: no trajectory passes the door
    "rand01": ["offline.random_fraction=0.01"],  # PLDM noise0d01
    "rand16": ["offline.random_fraction=0.16"],  # PLDM noise0d16
    "n500": ["offline.n_trajectories=500"],  # a smaller dataset (PLDM's ds_* sweep)
}
"""Data variants: ``offline.*`` overrides applied after the config's own; only good and wc0 have a paper number."""

EVAL_SECTIONS = (*PLANNERS, "planner", "offline.eval_shrink_horizon")
"""Override keys (or their first part) that change the evaluation, not the training."""


def is_eval_override(item: str) -> bool:
    """Whether ``key=value`` sets a planner or evaluation setting (see :data:`EVAL_SECTIONS`)."""
    key = item.split("=", 1)[0].strip()
    return key in EVAL_SECTIONS or key.split(".", 1)[0] in EVAL_SECTIONS


BENCH_DEFAULTS = ["offline.eval_episodes=0"]  # the bench evaluates; training skips its final evaluation
RESULTS = "bench_two_rooms.json"


def variant_of(cfg: RunConfig) -> str:
    """The :data:`VARIANTS` name whose data a reused run's config matches (good / wc0), else ``custom``."""
    off = cfg.offline
    plain = off.mode == "good" and off.random_fraction == 0.0 and off.cross_wall_rate is None
    if plain and off.door_passing_fraction is None:
        return "good"
    return "wc0" if plain and off.door_passing_fraction == 0.0 else "custom"


def train_or_reuse(config: str | None, overrides: list[str], run_dir: Path, variant: list[str] = ()) -> None:
    """Train a new run in ``run_dir`` (``overrides`` then the ``variant``'s); resume one that holds a
    checkpoint (budget overrides extend it; the variant's were applied when it was made)."""
    if has_checkpoint(run_dir):
        budget = [o for o in overrides if o.split("=", 1)[0].strip() in BUDGET_KEYS]
        ignored = [o for o in overrides if o not in budget and not is_eval_override(o)]
        if ignored:
            print(f"reusing {run_dir} with its own config.yaml; not applied: {' '.join(ignored)}", flush=True)
        try:
            train(run_dir=run_dir, resume=True, overrides=budget)
        except BudgetSpent:
            pass  # finished: reuse as it is
        return
    train(load_config(config, [*BENCH_DEFAULTS, *overrides, *variant]), run_dir)


def planning_from(source: RunConfig, cfg: RunConfig) -> RunConfig:
    """``cfg`` with the planning settings of ``source``: ``planner``, every planner section and
    ``offline.eval_shrink_horizon`` (evaluate a run trained under an older config with today's planner)."""
    offline = dataclasses.replace(cfg.offline, eval_shrink_horizon=source.offline.eval_shrink_horizon)
    sections = {name: getattr(source, name) for name in PLANNERS}
    return dataclasses.replace(cfg, planner=source.planner, offline=offline, **sections)


def evaluate_row(cfg: RunConfig, model, planner: str, pairs: str, args) -> dict:
    """One table row: ``evaluate_goal_reaching`` with ``planner`` (its settings from the run config)."""
    cfg = dataclasses.replace(cfg, planner=planner)
    starts = goals = None
    if pairs == "same-room":
        starts, goals = sample_same_room_pairs(args.episodes, args.seed, cfg.env.image_size)
    planner_cfg = getattr(cfg, planner)
    started = time.time()
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(args.seed)
        result = evaluate_goal_reaching(cfg, model, episodes=args.episodes, seed=args.seed, steps=args.steps,
                                        starts=starts, goals=goals, cost_steps=args.cost_steps)  # fmt: skip
    return {"planner": planner, "pairs": pairs, "seed": args.seed, "steps": args.steps, "cost_steps": args.cost_steps,
            "shrink_horizon": cfg.offline.eval_shrink_horizon, "horizon": planner_cfg.horizon,
            "sequences_per_plan": sequences_per_plan(planner, planner_cfg), "eval_s": time.time() - started,
            **result}  # fmt: skip


def bench_run(config: str | None, overrides: list[str], run_dir: Path, variant: str | None, args) -> list[dict]:
    """Train or reuse ``run_dir`` (data ``variant``, a :data:`VARIANTS` name; None = read from the run's
    config), evaluate it with every planner (and pair set); the rows also go to ``run_dir``'s JSON."""
    data = [] if variant is None else [*VARIANTS[variant], f"offline.dataset_dir={run_dir / 'data'}"]
    train_or_reuse(config, overrides, run_dir, data)
    updates = int(load_checkpoint(run_dir)["counters"]["updates"])
    trained = load_trained(run_dir, args.device)
    cfg, model = trained.cfg, trained.model
    if args.planning_from_config:
        cfg = planning_from(load_config(config, overrides), cfg)
    cfg = with_overrides(cfg, [o for o in overrides if is_eval_override(o)])
    trained.env.close()
    variant = variant or variant_of(cfg)
    planners = args.planners or [cfg.planner]
    pair_sets = ["cross-room", "same-room"] if args.same_room else ["cross-room"]
    rows = []
    for pairs in pair_sets:
        for planner in planners:
            row = evaluate_row(cfg, model, planner, pairs, args)
            row.update(variant=variant, run_dir=str(run_dir), updates=updates,
                       paper=PAPER.get(variant) if pairs == "cross-room" else None)  # fmt: skip
            rows.append(row)
            atomic_write_json(run_dir / RESULTS, rows)  # after every row: an interrupted sweep keeps its rows
            print(f"{variant} {pairs} {planner}: success {row['success_rate']:.2f} "
                  f"[{row['success_ci95_low']:.2f}, {row['success_ci95_high']:.2f}] over {row['episodes']} pairs, "
                  f"random {row['random_success_rate']:.2f} ({row['eval_s']:.0f} s)", flush=True)  # fmt: skip
    return rows


def _rate(rate: float, n: int) -> str:
    return f"{'—' if np.isnan(rate) else f'{rate:.2f}'} ({n})"


def table(rows: list[dict]) -> list[str]:
    """The printed table: two lines saying the protocol, the header, one line per row."""
    bins = [name for name, _, _ in DIFFICULTY_BINS]
    thresholds = ", ".join(f"{name} r < {high:g}" if low <= 1 else f"{name} r >= {low:g}" if high == float("inf")
                           else f"{name} {low:g} <= r < {high:g}" for name, low, high in DIFFICULTY_BINS)  # fmt: skip
    first = rows[0]
    lines = [f"Two Rooms goal reaching (PLDM protocol): pairs seed {first['seed']}, {first['episodes']} per set, "
             f"{first['steps']} steps, success mean((p-g)^2) < 1 px^2; cost summed over {first.get('cost_steps', 'all')} "
             "imagined steps; H = planner horizon (s: min(steps_left, H))",
             f"difficulty r = door path / straight line: {thresholds}; bins show rate (count)",
             f"{'variant':<8} {'updates':>7} {'pairs':<10} {'planner':<8} {'seq/plan':>8} {'H':>4} {'success':>7} "
             f"{'95% CI':>12} {'random':>6} " + " ".join(f"{b:>9}" for b in bins)
             + f" {'eval s':>7} {'PLDM paper':>13}"]  # fmt: skip
    for r in rows:
        ci = f"[{r['success_ci95_low']:.2f}, {r['success_ci95_high']:.2f}]"
        horizon = f"{r['horizon']}{'s' if r['shrink_horizon'] else ''}"
        cells = " ".join(f"{_rate(r[f'success_rate_{b}'], r[f'episodes_{b}']):>9}" for b in bins)
        lines.append(f"{r['variant']:<8} {r['updates']:>7} {r['pairs']:<10} {r['planner']:<8} "
                     f"{r['sequences_per_plan']:>8} {horizon:>4} {r['success_rate']:>7.2f} {ci:>12} "
                     f"{r['random_success_rate']:>6.2f} {cells} {r['eval_s']:>7.1f} {r['paper'] or '—':>13}")
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="run config YAML (ignored for a run directory that holds a checkpoint)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench_two_rooms"),
                        help="the run (reused if it holds a checkpoint); with --variants the parent of RUN/VARIANT")
    parser.add_argument("--episodes", type=int, default=100, help="start/goal pairs per set (PLDM: 100)")
    parser.add_argument("--steps", type=int, default=200, help="episode length (PLDM: 200)")
    parser.add_argument("--seed", type=int, default=42, help="pair sampler seed (PLDM: 42)")
    parser.add_argument("--planners", "--planner", nargs="+", choices=list(PLANNERS),
                        default=None, help="planners to evaluate (default: the run's cfg.planner)")  # fmt: skip
    parser.add_argument("--same-room", action="store_true", help="also evaluate a same-room pair set")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="data variants, each trained in RUN/VARIANT")  # fmt: skip
    parser.add_argument("--device", default=None, help="evaluation device (default: the run's)")
    parser.add_argument("--planning-from-config", action="store_true",
                        help="evaluate a reused run with CONFIG's planner settings instead of its own")
    parser.add_argument("--cost-steps", choices=["all", "last_k"], default="all",
                        help="imagined steps the latent cost sums: all (PLDM's MPPI running cost) or the last 3")
    return parser.parse_intermixed_args(argv)  # overrides may come after options too


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    rows: list[dict] = []
    if args.variants is None:
        rows = bench_run(args.config, args.overrides, args.run_dir, None, args)
    else:
        for name in args.variants:
            rows += bench_run(args.config, args.overrides, args.run_dir / name, name, args)
        args.run_dir.mkdir(parents=True, exist_ok=True)
        (args.run_dir / RESULTS).write_text(json.dumps(rows, indent=1))
    print("\n" + "\n".join(table(rows)), flush=True)
    return rows


if __name__ == "__main__":
    main()
