"""benchmarks/bench_curve.py: the shipped reference curves, the comparison table, and a tiny run end to end."""

import json

import imageio.v3 as iio
import pytest

from benchmarks import bench_curve as bc
from tests.test_training import TINY


def test_reference_curves_load_and_match_the_reference_notes():
    # hand-checked against /work/shared/reference/learning_curves.md
    dv2 = bc.load_reference("dreamerv2_dmc_vision")["tasks"]
    balance = dv2["cartpole_balance"]
    i = balance["env_steps"].index(60_000)
    assert (balance["mean"][i], balance["min"][i], balance["max"][i], balance["seeds"]) == (539, 484, 683, 5)
    assert balance["env_steps"] == [30_000, 60_000, 90_000, 120_000, 210_000, 510_000, 1_020_000]
    assert (dv2["cup_catch"]["mean"][0], dv2["cup_catch"]["min"][0], dv2["cup_catch"]["max"][0]) == (101, 51, 153)
    proprio = bc.load_reference("dreamerv3_dmc_proprio")["tasks"]
    reacher = proprio["reacher_easy"]
    assert (reacher["mean"][1], reacher["min"][1], reacher["max"][1]) == (693, 19, 969)
    assert proprio["cartpole_balance"]["env_steps"][-1] == 500_000  # "-" at 1000k: left out, not zero
    vision3 = bc.load_reference("dreamerv3_dmc_vision")["tasks"]["quadruped_walk"]
    assert (vision3["env_steps"][-1], vision3["mean"][-1], vision3["seeds"]) == (1_000_000, 801, 10)
    planet = bc.load_reference("planet_table1")["tasks"]
    assert planet["cheetah_run"]["mean"] == [662] and planet["cheetah_run"]["min"] == [None]
    for name in bc.REFERENCES:
        data = bc.load_reference(name)
        assert data["source"] and data["x"].startswith("env steps")
        for row in data["tasks"].values():
            assert len(row["env_steps"]) == len(row["mean"]) == len(row["min"]) == len(row["max"])
            assert all(lo is None or lo <= m <= hi for m, lo, hi in zip(row["mean"], row["min"], row["max"]))
    assert bc.task_name("ball_in_cup", "catch") == "cup_catch" and "cup_catch" in planet


def test_table_compares_our_nearest_eval_with_the_band(tmp_path):
    records = [{"step": 10_000, "eval/episode/return": 50.0, "eval/episode/return_std": 5.0},
               {"step": 31_000, "train/loss/total": 3.0},
               {"step": 31_000, "eval/episode/return": 100.0, "eval/episode/return_std": 1.0},
               {"step": 31_000, "eval/episode/return": 400.0, "eval/episode/return_std": 2.0},  # resumed: last wins
               {"step": 60_500, "eval/episode/return": 500.0, "eval/episode/return_std": 3.0},
               {"step": 88_000, "eval/episode/return": 700.0, "eval/episode/return_std": 4.0}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    curve = bc.read_curve(tmp_path)
    assert [(p["step"], p["mean"]) for p in curve] == [(10_000, 50.0), (31_000, 400.0), (60_500, 500.0), (88_000, 700.0)]
    reference = bc.load_reference("dreamerv2_dmc_vision")["tasks"]["cartpole_balance"]
    rows = bc.compare(curve, reference, tolerance=5_000)
    assert [(r["ref_step"], r["our_step"], r["where"]) for r in rows[:4]] == [
        (30_000, 31_000, "above"), (60_000, 60_500, "inside"), (90_000, 88_000, "below"), (120_000, None, None)]
    table = bc.format_table(rows).splitlines()
    assert table[2] == "| 30000 | 305 [281-330] | 400.0 ± 2.0 (31000) | above |"
    assert table[5] == "| 120000 | 956 [915-978] | - | - |"
    planet = bc.compare([{"step": 1_000_000, "mean": 700.0, "std": 0.0}], bc.load_reference("planet_table1")["tasks"]["cheetah_run"], 1)
    assert planet[0]["where"] == "above" and "| 662 |" in bc.format_table(planet)


def test_random_baseline_is_read_and_drawn(tmp_path):
    from worldmodels.viz.curves import learning_curve_figure

    records = [{"step": 5_000, "eval/episode/return": 200.0, "eval/episode/return_std": 3.0},
               {"step": 5_000, "eval/random/return": 352.5, "eval/random/return_std": 36.0}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert bc.read_random(tmp_path) == {"mean": 352.5, "std": 36.0}
    figure = learning_curve_figure([5_000], [200.0], [3.0], None, "t", random={"mean": 352.5, "std": 36.0})
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "random actions (352 ± 36)" in labels


def test_schedule_counts_env_steps_with_action_repeat():
    from worldmodels.core.config import load_config

    cfg = load_config("configs/dreamerv2_cartpole_cpu.yaml")  # action repeat 2, 1000 env steps per episode
    assert bc.episode_env_steps(cfg) == 1000
    assert bc.schedule(cfg, 60_000, 10_000) == (60, 10)
    assert bc.schedule(cfg, 60_001, 10_400) == (61, 10)
    tiny = load_config(None, TINY)  # 48 env steps at action repeat 4: 12 agent steps
    assert bc.episode_env_steps(tiny) == 48


@pytest.mark.slow
def test_tiny_run_draws_the_curve_and_continues(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["none", *TINY, "train.final_eval_episodes=1", "--env-steps", "192", "--eval-every", "96", "--episodes", "1",
            "--run-dir", str(run), "--reference", "dreamerv2_dmc_vision"]  # fmt: skip
    argv[0] = str(tmp_path / "tiny.yaml")
    (tmp_path / "tiny.yaml").write_text("method: planet\n")
    rows = bc.main(argv)
    assert [r["ref_step"] for r in rows][:2] == [30_000, 60_000] and all(r["our_mean"] is None for r in rows)
    curve = bc.read_curve(run)
    assert [p["step"] for p in curve] == [96, 192]  # evaluations after episodes 2 and 4
    image = iio.imread(run / "curve.png")
    assert image.shape == (420, 720, 3) and image.std() > 0
    out = capsys.readouterr().out
    assert "| env steps | reference mean [min-max] | ours (at step) | vs band |" in out
    assert "| 30000 | 115 [71-171] | - | - |" in out  # cartpole swingup band
    bc.main([*argv[:-4], "--env-steps", "288", "--run-dir", str(run), "--reference", "dreamerv2_dmc_vision"])
    assert [p["step"] for p in bc.read_curve(run)] == [96, 192, 288]  # continued from its checkpoint
    assert json.loads((run / "bench_curve.json").read_text())["task"] == "cartpole_swingup"
