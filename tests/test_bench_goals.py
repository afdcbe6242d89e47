"""benchmarks/bench_goals.py on a tiny trained point_mass run: one row per goal-hold value, planner
settings reach the rows' planners and labels, the paired column, and refused settings (issue 16)."""

from __future__ import annotations

import json
import sys

import pytest
from test_cli import TINY_POINT_MASS

from benchmarks import bench_goals
from worldmodels.core.config import ConfigError, load_config
from worldmodels.methods import train


def test_planner_settings_only_touch_planner_sections():
    cfg = load_config(None, TINY_POINT_MASS)
    assert bench_goals.with_planner_settings(cfg, ["cem.horizon=7"]).cem.horizon == 7
    assert bench_goals.with_planner_settings(cfg, []) is cfg
    with pytest.raises(ConfigError, match="KEY in a planner section"):
        bench_goals.with_planner_settings(cfg, ["model.deter_dim=8"])
    with pytest.raises(ConfigError, match="KEY in a planner section"):
        bench_goals.with_planner_settings(cfg, ["cem.horizon"])


def test_bench_rows_per_goal_hold_with_planner_settings(tmp_path, monkeypatch, capsys):
    import planners.builder as builder

    run_dir = train(load_config(None, TINY_POINT_MASS + ["env.episode_length=8", "replay.sequence_length=4"]), run_dir=tmp_path / "run")
    seen = []
    original = bench_goals.goal_planning_agent

    def recording(cfg, *args, **kwargs):
        agent = original(cfg, *args, **kwargs)
        seen.append((cfg.cem.horizon, agent.planner.objective.goal_hold))
        return agent

    monkeypatch.setattr(bench_goals, "goal_planning_agent", recording)
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["bench_goals.py", "--run-dir", str(run_dir)])
    with pytest.raises(SystemExit):
        bench_goals.main()
    assert "has no env.goal_set; pass --task-set" in capsys.readouterr().err
    argv = ["bench_goals.py", "--run-dir", str(run_dir), "--task-set", "point_mass", "--episodes", "1", "--goal-hold", "1,3",
            "--plan", "cem.horizon=2", "--intrinsic-batches", "0", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bench_goals.main()
    assert builder is not None and set(seen) == {(2, 1), (2, 3)} and len(seen) == 2 * 9  # 9 goals x 2 rows
    labels = [row["label"] for row in json.loads(out.read_text())["point_mass"]["rows"]]
    assert labels == [f"planet run: cem, cosine latent distance{v} [cem.horizon=2]" for v in ("", " (goal held 3)")]
    table = capsys.readouterr().out
    assert "closer than random [95 % CI]" in table and "(goal held 3) [cem.horizon=2] | 9 |" in table
    monkeypatch.setattr(sys, "argv", argv[:-4] + ["--plan", "env.image_size=32"])
    with pytest.raises(SystemExit):
        bench_goals.main()
    assert "KEY in a planner section" in capsys.readouterr().err
