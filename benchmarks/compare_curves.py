"""Compare groups of learning-curve runs (an ablation, each group one setting over seeds) on one plot
over the papers' reference band, with a table at every evaluation step.

    python benchmarks/compare_curves.py --reference dreamerv3_dmc_proprio \
        --group "train ratio 160 (default)" runs/curve_state runs/curve_state_s1 \
        --group "train ratio 512" runs/curve_state_r512_s1 --out docs/curves/train_ratio.png

Each run is a directory with the run's ``config.yaml`` and ``metrics.jsonl`` (a whole run directory, or
those two files kept alone, as ``docs/curves/runs/`` keeps them), read as ``bench_curve.py`` reads it:
the in-training evaluations without exploration noise. A group's value at a step is the mean over the
seeds that evaluated there of each seed's mean over episodes, with the [min, max] over those seeds
(one seed: ± its std over episodes). The table prints one row per evaluation step (the reference's
mean [min-max] where it has a point within half an eval interval), then each group at each reference
step: inside, above or below the band. Runs of a group must share task and action repeat.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks import bench_curve  # noqa: E402


def aggregate(curves: list[list[dict]]) -> list[dict]:
    """Seeds' curves ``[[{"step", "mean", "std"}]]`` -> ``[{"step", "mean", "low", "high", "seeds"}]``
    per step any seed evaluated: mean over those seeds, [min, max] over them (one seed: mean ± std)."""
    by_step: dict[int, list[dict]] = {}
    for curve in curves:
        for point in curve:
            by_step.setdefault(point["step"], []).append(point)
    rows = []
    for step in sorted(by_step):
        points = by_step[step]
        means = [p["mean"] for p in points]
        mean = sum(means) / len(means)
        if len(points) == 1:
            low, high = mean - points[0]["std"], mean + points[0]["std"]
        else:
            low, high = min(means), max(means)
        rows.append({"step": step, "mean": mean, "low": low, "high": high, "seeds": len(points)})
    return rows


def format_cell(point: dict | None) -> str:
    """``mean [min-max] (n seeds)``, or ``mean ± std`` for one seed, or ``-``."""
    if point is None:
        return "-"
    if point["seeds"] == 1:
        return f"{point['mean']:.1f} ± {(point['high'] - point['mean']):.1f} (1 seed)"
    return f"{point['mean']:.1f} [{point['low']:.1f}-{point['high']:.1f}] ({point['seeds']} seeds)"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("LABEL", "RUN"),
                        help="a label, then the run directories of that setting (one per seed); repeat per group")
    parser.add_argument("--reference", choices=bench_curve.REFERENCES, default=None,
                        help="reference curves (default by the first run's method)")
    parser.add_argument("--out", default="curves.png", help="PNG to write (a .json with the table beside it)")
    args = parser.parse_args(argv)

    from worldmodels.training.run_dir import read_run_config
    from worldmodels.viz.curves import learning_curves_figure
    from worldmodels.viz.plots import save_png

    groups, task, tolerance, first_cfg = [], None, 0.0, None
    for label, *runs in args.group:
        if not runs:
            raise SystemExit(f"Group {label!r} names no run directory: give --group LABEL RUN [RUN ...].")
        curves = []
        for run in runs:
            cfg = read_run_config(run)
            run_task = bench_curve.task_name(cfg.env.domain, cfg.env.task)
            if task is not None and run_task != task:
                raise SystemExit(f"{run} is {run_task}, but the first run is {task}: compare runs of one task.")
            task, first_cfg = run_task, first_cfg or cfg
            tolerance = max(tolerance, cfg.train.eval_every * bench_curve.episode_env_steps(cfg) / 2)
            curve = bench_curve.read_curve(run)
            if not curve:
                raise SystemExit(f"{run} has no evaluations in its metrics.jsonl yet.")
            curves.append(curve)
        groups.append({"label": label, "runs": runs, "points": aggregate(curves),
                       "random": [r for r in map(bench_curve.read_random, runs) if r]})  # fmt: skip

    name = args.reference or bench_curve.DEFAULT_REFERENCE.get(first_cfg.method, "dreamerv2_dmc_vision")
    reference_file = bench_curve.load_reference(name)
    reference = reference_file["tasks"].get(task)
    ref_points = [{"step": s, "mean": m, "min": lo, "max": hi} for s, m, lo, hi in
                  zip(reference["env_steps"], reference["mean"], reference["min"], reference["max"])] if reference else []  # fmt: skip

    def ref_cell(step):
        point = bench_curve.nearest(ref_points, step, tolerance)
        if point is None:
            return "-"
        band = "" if point["min"] is None else f" [{point['min']:.0f}-{point['max']:.0f}]"
        return f"{point['mean']:.0f}{band}"

    steps = sorted({p["step"] for g in groups for p in g["points"]})
    lines = [f"| env steps | {name} | " + " | ".join(g["label"] for g in groups) + " |",
             "|---" * (2 + len(groups)) + "|"]  # fmt: skip
    for step in steps:
        cells = [format_cell(next((p for p in g["points"] if p["step"] == step), None)) for g in groups]
        lines.append(f"| {step} | {ref_cell(step)} | " + " | ".join(cells) + " |")
    versus = []
    for g in groups:
        curve = [{"step": p["step"], "mean": p["mean"], "std": 0.0} for p in g["points"]]
        for row in bench_curve.compare(curve, reference, tolerance) if reference else []:
            if row["where"] is not None:
                versus.append(f"{g['label']} at {row['ref_step']}: {row['our_mean']:.1f} "
                              f"({row['where']} {row['ref_min']:.0f}-{row['ref_max']:.0f})")  # fmt: skip
    randoms = [r for g in groups for r in g["random"]]
    random = None
    if randoms:
        random = {"mean": sum(r["mean"] for r in randoms) / len(randoms),
                  "std": sum(r["std"] for r in randoms) / len(randoms)}  # fmt: skip

    title = f"{first_cfg.method} on {task}: " + " vs ".join(g["label"] for g in groups) + f"\nvs {name}"
    plotted = [{"label": f"{g['label']} ({max(p['seeds'] for p in g['points'])} seed(s))",
                "steps": [p["step"] for p in g["points"]], "mean": [p["mean"] for p in g["points"]],
                "low": [p["low"] for p in g["points"]], "high": [p["high"] for p in g["points"]]} for g in groups]  # fmt: skip
    png = save_png(learning_curves_figure(plotted, reference, title, reference_label=name, random=random), args.out)
    print(f"\n{title}\nreference: {reference_file['source']}")
    print("\n".join(lines))
    for line in versus:
        print(line)
    if random is not None:
        print(f"random actions (same starts, mean over runs): {random['mean']:.1f} ± {random['std']:.1f}")
    print(f"curves: {png}")
    summary = {"reference": name, "task": task, "random": random,
               "groups": [{k: g[k] for k in ("label", "runs", "points")} for g in groups]}  # fmt: skip
    Path(png).with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
