"""The goal-reaching benchmark's table: results of :func:`worldmodels.evaluation.goal_sets.run_goal_set`
for several (model, agent) rows on one goal set, with random actions from the same starts beside them.

Per row: episodes n (goals x episodes per goal), successes at the last step (LEXA's protocol) and at any
step (PLDM's) with 95 % Wilson intervals, the mean true-state distance at the start and at the end, and
how much closer than random actions each row ended (paired over episodes from the same starts, bootstrap
95 % interval).
"""

from __future__ import annotations

import numpy as np

from worldmodels.evaluation.stats import paired_bootstrap_interval, wilson_interval


def episode_values(result: dict, measure: str) -> np.ndarray:
    """Every episode's ``measure`` of a ``run_goal_set`` result, goal-major. Shapes: ``[goals * episodes]``."""
    return np.array([x for goal in result["per_goal"] for x in goal["episodes"][measure]], dtype=float)


def summarise(result: dict) -> dict:
    """Counts, rates, Wilson intervals and mean distances of a ``run_goal_set`` result.

    Returns:
        ``episodes``, ``successes``, ``success_rate``, ``success_ci95`` (low, high), ``reached``,
        ``reached_rate``, ``reached_ci95``, ``initial_distance``, ``final_distance``.
    """
    success, reached = episode_values(result, "success_rate"), episode_values(result, "reached_rate")
    n, k, r = len(success), int(success.sum()), int(reached.sum())
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else float("nan"),
        "success_ci95": wilson_interval(k, n),
        "reached": r,
        "reached_rate": r / n if n else float("nan"),
        "reached_ci95": wilson_interval(r, n),
        "initial_distance": float(episode_values(result, "initial_distance").mean()) if n else float("nan"),
        "final_distance": float(episode_values(result, "final_distance").mean()) if n else float("nan"),
    }


def same_starts(result: dict, baseline: dict, atol: float = 1e-6) -> bool:
    """Whether two results started every episode at the same true-state distance to its goal (the same
    start states, as the goal envs are seeded per goal)."""
    a, b = episode_values(result, "initial_distance"), episode_values(baseline, "initial_distance")
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol))


def closer_than_random(result: dict, random_result: dict) -> tuple[float, float, float] | None:
    """Mean over episodes of random's final distance minus the row's (> 0: the row ended closer), with
    its paired bootstrap 95 % interval; None when the two did not start from the same states."""
    if not same_starts(result, random_result):
        return None
    return paired_bootstrap_interval(episode_values(random_result, "final_distance"),
                                     episode_values(result, "final_distance"))  # fmt: skip


def above_random(row: dict, random_row: dict) -> bool:
    """The issue's bar: the lower end of the row's success interval above random's upper end."""
    return row["success_ci95"][0] > random_row["success_ci95"][1]


def goal_table(task_set: str, rows: list[tuple[str, dict]], random_result: dict) -> str:
    """A markdown table: one line per ``(label, run_goal_set result)`` and random actions last.

    Columns: goal set, model / agent, episodes, success (last step) [95 % CI], reached (any step)
    [95 % CI], start dist, final dist, closer than random [95 % CI] (:func:`closer_than_random`), above
    random (success).
    """
    lines = [
        "| goal set | model / agent | episodes | success (last step) [95 % CI] | reached (any step) [95 % CI] "
        "| start dist | final dist | closer than random [95 % CI] | above random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rand = summarise(random_result)

    def line(label: str, row: dict, mark: str, closer: str) -> str:
        s_lo, s_hi = row["success_ci95"]
        r_lo, r_hi = row["reached_ci95"]
        return (f"| {task_set} | {label} | {row['episodes']} | {row['successes']}/{row['episodes']} = "
                f"{row['success_rate']:.2f} [{s_lo:.2f}, {s_hi:.2f}] | {row['reached']}/{row['episodes']} = "
                f"{row['reached_rate']:.2f} [{r_lo:.2f}, {r_hi:.2f}] | {row['initial_distance']:.3f} | "
                f"{row['final_distance']:.3f} | {closer} | {mark} |")  # fmt: skip

    for label, result in rows:
        row = summarise(result)
        mark = "yes" if above_random(row, rand) else "no"
        closer = closer_than_random(result, random_result)
        if closer is None:
            mark += " (other starts!)"
        closer_text = "-" if closer is None else "{:+.3f} [{:+.3f}, {:+.3f}]".format(*closer)
        lines.append(line(label, row, mark, closer_text))
    lines.append(line("random actions, same starts", rand, "-", "-"))
    return "\n".join(lines)


__all__ = ["above_random", "closer_than_random", "episode_values", "goal_table", "same_starts", "summarise"]
