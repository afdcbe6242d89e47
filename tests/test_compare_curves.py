"""benchmarks/compare_curves.py: seeds aggregated per step, groups tabled against the band and drawn."""

import json

import imageio.v3 as iio
import pytest

from benchmarks import compare_curves as cc


def test_aggregate_means_over_seeds_and_ranges_by_seed_or_episode_std():
    seed0 = [{"step": 5_000, "mean": 100.0, "std": 10.0}, {"step": 10_000, "mean": 300.0, "std": 5.0}]
    seed1 = [{"step": 5_000, "mean": 200.0, "std": 20.0}]
    rows = cc.aggregate([seed0, seed1])
    assert rows[0] == {"step": 5_000, "mean": 150.0, "low": 100.0, "high": 200.0, "seeds": 2}
    assert rows[1] == {"step": 10_000, "mean": 300.0, "low": 295.0, "high": 305.0, "seeds": 1}  # one seed: ± std
    assert cc.format_cell(rows[0]) == "150.0 [100.0-200.0] (2 seeds)"
    assert cc.format_cell(rows[1]) == "300.0 ± 5.0 (1 seed)"
    assert cc.format_cell(None) == "-"


def _run(path, evals, random=None):
    from worldmodels.core.config import load_config
    from worldmodels.training.run_dir import write_run_config

    path.mkdir()
    cfg = load_config("configs/dreamerv2_cartpole_state_cpu.yaml", ["train.eval_every=5"])  # 5 episodes = 5000 env steps
    write_run_config(cfg, path)
    records = [{"step": s, "eval/episode/return": m, "eval/episode/return_std": 1.0} for s, m in evals]
    if random:
        records.append({"step": 5_000, "eval/random/return": random, "eval/random/return_std": 30.0})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_groups_are_tabled_against_the_band_and_drawn(tmp_path, capsys):
    a = _run(tmp_path / "a", [(5_000, 100.0), (50_000, 300.0)], random=350.0)
    b = _run(tmp_path / "b", [(5_000, 200.0), (50_000, 340.0)], random=330.0)
    c = _run(tmp_path / "c", [(5_000, 120.0), (50_000, 400.0)])
    out = tmp_path / "cmp.png"
    summary = cc.main(["--reference", "dreamerv3_dmc_proprio", "--group", "ratio 160", a, b,
                       "--group", "ratio 512", c, "--out", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert "| env steps | dreamerv3_dmc_proprio | ratio 160 | ratio 512 |" in text
    assert "| 5000 | - | 150.0 [100.0-200.0] (2 seeds) | 120.0 ± 1.0 (1 seed) |" in text
    assert "| 50000 | 490 [369-554] | 320.0 [300.0-340.0] (2 seeds) | 400.0 ± 1.0 (1 seed) |" in text
    assert "ratio 160 at 50000: 320.0 (below 369-554)" in text
    assert "ratio 512 at 50000: 400.0 (inside 369-554)" in text
    assert summary["random"] == {"mean": 340.0, "std": 30.0}
    image = iio.imread(out)
    assert image.shape == (420, 720, 3) and image.std() > 0
    assert json.loads(out.with_suffix(".json").read_text())["groups"][1]["label"] == "ratio 512"


def test_runs_of_different_tasks_are_refused(tmp_path):
    from worldmodels.core.config import load_config
    from worldmodels.training.run_dir import write_run_config

    a = _run(tmp_path / "a", [(5_000, 1.0)])
    other = tmp_path / "other"
    other.mkdir()
    write_run_config(load_config("configs/dreamerv2_cartpole_state_cpu.yaml", ["env.task=swingup"]), other)
    (other / "metrics.jsonl").write_text(json.dumps({"step": 5_000, "eval/episode/return": 1.0}) + "\n")
    with pytest.raises(SystemExit, match="is cartpole_swingup, but the first run is cartpole_balance"):
        cc.main(["--group", "x", a, str(other), "--out", str(tmp_path / "x.png")])
