"""The goal benchmark's table and intervals on tiny fake ``run_goal_set`` results (issue 16)."""

from __future__ import annotations

import pytest

from worldmodels.evaluation.goal_table import (
    above_random,
    closer_than_random,
    episode_values,
    goal_table,
    same_starts,
    summarise,
)
from worldmodels.evaluation.stats import paired_bootstrap_interval, wilson_interval


def _result(success: list[list[int]], starts: list[list[float]] | None = None, final: float | list = 0.1) -> dict:
    """A fake run_goal_set result: ``success[goal][episode]``; reached = success, or the third episode
    (which passed the goal)."""
    per_goal = []
    for g, episodes in enumerate(success):
        init = starts[g] if starts else [0.2 + 0.01 * g + 0.001 * e for e in range(len(episodes))]
        per_goal.append({
            "goal": g,
            "name": f"g{g}",
            "episodes": {
                "success_rate": [float(s) for s in episodes],
                "reached_rate": [float(s or e == 2) for e, s in enumerate(episodes)],
                "initial_distance": init,
                "final_distance": final[g] if isinstance(final, list) else [final] * len(episodes),
            },
        })
    return {"task_set": "reacher", "per_goal": per_goal}


def test_summary_counts_every_episode_and_wilson_interval():
    agent = _result([[1, 1, 0], [1, 0, 0]])  # 3 of 6 at the last step
    row = summarise(agent)
    assert row["episodes"] == 6 and row["successes"] == 3 and row["success_rate"] == 0.5
    assert row["reached"] == 5  # reached: goal 0 [1, 1, 1], goal 1 [1, 0, 1]
    assert row["success_ci95"] == pytest.approx((0.1876, 0.8124), abs=1e-4)  # Wilson 3/6, hand value
    assert row["success_ci95"] == wilson_interval(3, 6)
    assert row["initial_distance"] == pytest.approx((0.2 + 0.201 + 0.202 + 0.21 + 0.211 + 0.212) / 6)
    assert row["final_distance"] == pytest.approx(0.1)
    assert list(episode_values(agent, "success_rate")) == [1, 1, 0, 1, 0, 0]


def test_table_marks_rows_above_random_and_other_starts():
    random = _result([[0, 0, 0]] * 8, final=0.3)
    strong = _result([[1, 1, 1]] * 7 + [[1, 0, 0]], final=0.05)  # 22/24
    weak = _result([[1, 0, 0]] * 3 + [[0, 0, 0]] * 5)  # 3/24: interval [0.04, 0.31] overlaps random's [0, 0.14]
    moved = _result([[1, 1, 1]] * 8, starts=[[0.5, 0.5, 0.5]] * 8)
    assert above_random(summarise(strong), summarise(random)) and not above_random(summarise(weak), summarise(random))
    assert same_starts(strong, random) and not same_starts(moved, random)
    table = goal_table("reacher", [("lexa: achiever", strong), ("planet: cem", weak), ("other", moved)], random)
    lines = table.splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("| goal set | model / agent | episodes")
    assert "| reacher | lexa: achiever | 24 | 22/24 = 0.92 [0.74, 0.98]" in lines[2] and lines[2].endswith("| yes |")
    assert "| +0.250 [+0.250, +0.250] | yes |" in lines[2]  # every episode 0.3 - 0.05 closer than random
    assert "3/24 = 0.12 [0.04, 0.31]" in lines[3] and lines[3].endswith("| no |")
    assert lines[4].endswith("| - | yes (other starts!) |")  # no paired difference from other starts
    assert "random actions, same starts | 24 | 0/24 = 0.00 [0.00, 0.14]" in lines[5]


def test_closer_than_random_pairs_episodes_and_bootstraps():
    mean, low, high = paired_bootstrap_interval([0.3, 0.5, 0.1, 0.4], [0.1, 0.2, 0.1, 0.2])
    assert mean == pytest.approx(0.175)  # differences 0.2, 0.3, 0.0, 0.2
    assert 0.0 <= low < mean < high <= 0.3  # the interval lies within the observed differences' range
    assert paired_bootstrap_interval([0.3, 0.5], [0.1, 0.2]) == paired_bootstrap_interval([0.3, 0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        paired_bootstrap_interval([0.1, 0.2], [0.1])
    random = _result([[0, 0]] * 2, final=[[0.3, 0.2], [0.4, 0.1]])
    agent = _result([[0, 0]] * 2, final=[[0.1, 0.2], [0.2, 0.2]])  # closer by 0.2, 0, 0.2, -0.1
    mean, low, high = closer_than_random(agent, random)
    assert mean == pytest.approx(0.075) and low < mean < high
    assert low >= -0.1 and high <= 0.2
    assert closer_than_random(_result([[0, 0]] * 2, starts=[[0.9, 0.9]] * 2), random) is None
