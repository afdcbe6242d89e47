"""Learning curve vs the papers': train a config for N env steps (resumable), draw our eval return
over the reference band (mean and min-max over seeds) as a PNG, and print a table at each reference step.

    python benchmarks/bench_curve.py configs/dreamerv2_cartpole_cpu.yaml --env-steps 60000 \
        --eval-every 10000 --episodes 5 --run-dir runs/curve_dv2_balance
    # later, the same command with a larger --env-steps continues the run from its checkpoint
    python benchmarks/bench_curve.py configs/dreamerv2_cartpole_cpu.yaml --env-steps 90000 \
        --run-dir runs/curve_dv2_balance

Env steps are counted as the papers count them: agent steps x action repeat (one DMC episode of
1000 env steps is 500 agent steps at action repeat 2). The budget is whole episodes: ``--env-steps``
and ``--eval-every`` are rounded up / to the nearest multiple of the episode's env steps. The time
budget is off (``train.max_minutes=0``) unless ``--minutes`` is given.

The curve is read from the run's ``metrics.jsonl`` (``eval/episode/return`` and ``_std``), written by
the online loop's in-training evaluation: ``train.eval_episodes`` (= ``--episodes``) episodes every
``train.eval_every`` episodes, acting without exploration noise (the policy's mode / the planner's
mean, as DreamerV2's ``eval_every: 1e4`` with ``eval_eps: 1``, whose score files are the reference),
so nothing is re-evaluated here. The reference score files hold one episode per eval point and
seed; ours averages ``--episodes`` episodes of one seed.

Reference curves (``benchmarks/reference_curves/*.json``, each naming its source): DreamerV2
dmc_vision (default for pixel configs), DreamerV3 dmc_proprio / dmc_vision, PlaNet Table 1 (one
point at 1M steps). The table row at each reference step shows our eval nearest to it (within
half an eval interval; "-" when the run has none there), the band, and where ours lies
(``inside``, ``above``, ``below``).

Writes ``RUN/curve.png`` and ``RUN/bench_curve.json`` (the table).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference_curves"
REFERENCES = ("dreamerv2_dmc_vision", "dreamerv3_dmc_proprio", "dreamerv3_dmc_vision", "planet_table1")
DEFAULT_REFERENCE = {"planet": "planet_table1"}
"""the reference for a method when ``--reference`` is not given; any other method: dreamerv2_dmc_vision"""
TASK_ALIASES = {"ball_in_cup": "cup"}
"""dm_control domain -> the score files' short name (``dmc_cup_catch``)"""


def load_reference(name: str) -> dict:
    """One reference file: ``{"source", "tasks": {task: {"env_steps", "mean", "min", "max", "seeds"}}, ...}``."""
    path = REFERENCE_DIR / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"Unknown reference {name!r}: choose one of {', '.join(REFERENCES)}.")
    return json.loads(path.read_text())


def task_name(domain: str, task: str) -> str:
    """The score files' task key for a DMC config: ``cartpole_balance``, ``cup_catch``."""
    return f"{TASK_ALIASES.get(domain, domain)}_{task}"


def read_curve(run_dir: str | Path) -> list[dict]:
    """Our evaluations from ``metrics.jsonl``: ``[{"step", "mean", "std"}]`` sorted by env step (the last
    record wins where a resumed run logged a step twice)."""
    from worldmodels.training.logger import read_metrics

    points = {}
    for record in read_metrics(run_dir):
        if record.get("eval/episode/return") is not None:
            points[int(record["step"])] = {"step": int(record["step"]), "mean": record["eval/episode/return"],
                                           "std": record.get("eval/episode/return_std") or 0.0}  # fmt: skip
    return [points[s] for s in sorted(points)]


def read_random(run_dir: str | Path) -> dict | None:
    """The run's random-action baseline ``{"mean", "std"}`` (``eval/random/return``, logged once by the
    online loop beside its in-training evaluation), or None when it has none."""
    from worldmodels.training.logger import read_metrics

    for record in read_metrics(run_dir):
        if record.get("eval/random/return") is not None:
            return {"mean": record["eval/random/return"], "std": record.get("eval/random/return_std") or 0.0}
    return None


def nearest(points: list[dict], step: int, tolerance: float) -> dict | None:
    """The point ``{"step", ...}`` closest to ``step``, or None when none lies within ``tolerance`` env steps."""
    near = min(points, key=lambda p: abs(p["step"] - step), default=None)
    return near if near is not None and abs(near["step"] - step) <= tolerance else None


def compare(curve: list[dict], reference: dict, tolerance: float) -> list[dict]:
    """One row per reference step: our eval nearest to it within ``tolerance`` env steps (or None), the
    band, and ``inside`` / ``above`` / ``below`` (against the mean where the reference has no min-max)."""
    rows = []
    for i, step in enumerate(reference["env_steps"]):
        mean, low, high = reference["mean"][i], reference["min"][i], reference["max"][i]
        near = nearest(curve, step, tolerance)
        where = None
        if near is not None:
            low_, high_ = (mean, mean) if low is None or high is None else (low, high)
            where = "above" if near["mean"] > high_ else "below" if near["mean"] < low_ else "inside"
        ours = {"our_step": None, "our_mean": None, "our_std": None}
        if near is not None:
            ours = {"our_step": near["step"], "our_mean": near["mean"], "our_std": near["std"]}
        rows.append({"ref_step": step, "ref_mean": mean, "ref_min": low, "ref_max": high, **ours, "where": where})
    return rows


def format_table(rows: list[dict]) -> str:
    """The comparison as a markdown table."""

    def band(r):
        if r["ref_min"] is None:
            return f"{r['ref_mean']:.0f}"
        return f"{r['ref_mean']:.0f} [{r['ref_min']:.0f}-{r['ref_max']:.0f}]"

    lines = ["| env steps | reference mean [min-max] | ours (at step) | vs band |", "|---|---|---|---|"]
    for r in rows:
        ours = "-" if r["our_mean"] is None else f"{r['our_mean']:.1f} ± {r['our_std']:.1f} ({r['our_step']})"
        lines.append(f"| {r['ref_step']} | {band(r)} | {ours} | {r['where'] or '-'} |")
    return "\n".join(lines)


def episode_env_steps(cfg) -> int:
    """Env steps one episode adds (the online loop's count: agent steps x action repeat)."""
    from worldmodels.core.config import default_action_repeat

    repeat = cfg.env.action_repeat or default_action_repeat(cfg.env.domain)
    return math.ceil(cfg.env.episode_length / repeat) * repeat


def schedule(cfg, env_steps: int, eval_every: int) -> tuple[int, int]:
    """``(train.total_episodes, train.eval_every)`` in episodes for env-step targets."""
    per_episode = episode_env_steps(cfg)
    return max(cfg.train.seed_episodes, math.ceil(env_steps / per_episode)), max(1, round(eval_every / per_episode))


def train_to(args, run_dir: Path) -> None:
    """Train a new run, or continue the one in ``run_dir`` up to ``--env-steps``."""
    from worldmodels.core.config import load_config
    from worldmodels.methods import train
    from worldmodels.training.budget import BudgetSpent
    from worldmodels.training.run_dir import has_checkpoint, read_run_config

    if has_checkpoint(run_dir):
        cfg = read_run_config(run_dir)
        total, eval_every = schedule(cfg, args.env_steps, args.eval_every)
        if eval_every != cfg.train.eval_every or args.episodes != cfg.train.eval_episodes:
            print(f"note: continuing {run_dir} with its own eval schedule (every {cfg.train.eval_every} "
                  f"episodes, {cfg.train.eval_episodes} episodes each); --eval-every/--episodes apply to new runs "
                  "only")  # fmt: skip
        extend = [f"train.total_episodes={max(total, cfg.train.total_episodes)}"]
        if args.minutes is not None:
            extend.append(f"train.max_minutes={args.minutes}")
        try:
            train(run_dir=run_dir, resume=True, overrides=extend)
        except BudgetSpent:
            pass  # already trained this far: only read it
        return
    probe = load_config(args.config, args.overrides)
    total, eval_every = schedule(probe, args.env_steps, args.eval_every)
    schedule_overrides = [f"train.total_episodes={total}", f"train.eval_every={eval_every}",
                          f"train.eval_episodes={args.episodes}", f"train.max_minutes={args.minutes or 0}"]
    cfg = load_config(args.config, [*args.overrides, *schedule_overrides])
    train(cfg, run_dir=run_dir)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (new runs only)")
    parser.add_argument("--env-steps", type=int, required=True,
                        help="train until this many env steps (action repeat included)")
    parser.add_argument("--eval-every", type=int, default=10_000, help="env steps between evaluations (DreamerV2: 1e4)")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per evaluation")
    parser.add_argument("--run-dir", default=None, help="the run to create or continue (default runs/curve_CONFIG)")
    parser.add_argument("--minutes", type=float, default=None, help="also stop after this much training time")
    parser.add_argument("--reference", choices=REFERENCES, default=None, help="reference curves (default by method)")
    parser.add_argument("--no-train", action="store_true", help="only draw and compare the run as it is")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

    from worldmodels.core.config import load_config
    from worldmodels.training.run_dir import has_checkpoint, read_run_config
    from worldmodels.viz.curves import plot_learning_curve

    run_dir = Path(args.run_dir or f"runs/curve_{Path(args.config).stem}")
    if not args.no_train:
        train_to(args, run_dir)
    cfg = read_run_config(run_dir) if has_checkpoint(run_dir) else load_config(args.config, args.overrides)
    name = args.reference or DEFAULT_REFERENCE.get(cfg.method, "dreamerv2_dmc_vision")
    reference_file = load_reference(name)
    task = task_name(cfg.env.domain, cfg.env.task)
    reference = reference_file["tasks"].get(task)
    curve = read_curve(run_dir)
    tolerance = cfg.train.eval_every * episode_env_steps(cfg) / 2
    rows = compare(curve, reference, tolerance) if reference else []
    repeat = cfg.env.action_repeat or "per-domain"
    title = f"{cfg.method} on {task} ({Path(args.config).stem}, action repeat {repeat})\nvs {name}"
    label = f"ours ({cfg.train.eval_episodes} episodes per eval)"
    random = read_random(run_dir)
    png = plot_learning_curve(run_dir / "curve.png", [p["step"] for p in curve], [p["mean"] for p in curve],
                              [p["std"] for p in curve], reference, title, label=label, reference_label=name,
                              random=random)  # fmt: skip
    print(f"\n{title}\nreference: {reference_file['source']}")
    if reference is None:
        print(f"(no reference curve for {task} in {name}; tasks there: {', '.join(reference_file['tasks'])})")
    else:
        print(format_table(rows))
    last = curve[-1] if curve else None
    at_last = f", last {last['mean']:.1f} ± {last['std']:.1f} at {last['step']} env steps" if last else ""
    print(f"ours: {len(curve)} evaluations{at_last}")
    if random is not None:
        print(f"random actions (same starts): {random['mean']:.1f} ± {random['std']:.1f}")
    print(f"curve: {png}")
    summary = {"reference": name, "task": task, "curve": curve, "rows": rows, "random": random}
    (run_dir / "bench_curve.json").write_text(json.dumps(summary, indent=1))
    return rows


if __name__ == "__main__":
    main()
