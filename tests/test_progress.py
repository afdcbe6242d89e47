"""Honest progress: the bar follows the budget that stops the run, in-training evals carry their
episode count and a random baseline, the budget's end runs a final evaluation that ``worldmodels
train`` prints, ``--resume RUN key=value`` extends a finished run, Ctrl-C names the run to resume."""

import json
import signal

import pytest

from worldmodels.cli.main import main
from worldmodels.core.config import load_config, save_config
from worldmodels.methods import train
from worldmodels.training import checkpoint
from worldmodels.training.budget import BudgetBar, BudgetSpent, budget_left, read_final_eval
from worldmodels.training.logger import read_metrics
from worldmodels.training.online import updates_owed
from worldmodels.training.run_dir import checkpoint_path

from test_training import tiny_config


def bar_lines(err: str) -> list[str]:
    return [line for line in err.replace("\r", "\n").splitlines() if "|" in line]


def test_minutes_bind_when_the_episodes_would_take_longer():
    # 188 episodes left at 27 s each (85 min) do not fit in the 25 minutes left of a 30-minute budget
    assert budget_left(12, 200, 300.0, 1800.0, 27.0) == (300 / 1800, 1500.0, "minutes")
    assert budget_left(12, 200, 300.0, 1800.0, None)[2] == "minutes"  # rate unknown: the clock is exact
    # 8 episodes left (216 s) fit: the episodes stop the run, with their own ETA
    assert budget_left(12, 20, 300.0, 1800.0, 27.0) == (12 / 20, 216.0, "count")
    assert budget_left(12, 200, 300.0, 0.0, 27.0) == (12 / 200, 188 * 27.0, "count")  # no time budget


def test_bar_text_shows_the_time_budget_when_it_binds():
    bar = BudgetBar(10, 200, "ep", max_minutes=30, spent_seconds=600, desc="planet", enabled=False)
    assert bar.text() in ("10.0/30 min (time budget), 10/200 ep, 20:00 left", "10.0/30 min (time budget), 10/200 ep, 19:59 left")
    assert 0.33 < bar.fraction() < 0.34
    bar.close()


def test_time_budget_run_ends_with_final_eval_random_baseline_once_and_bar_in_minutes(tmp_path, capsys):
    cfg = tiny_config("train.total_episodes=1000", "train.max_minutes=0.005", "train.eval_every=2",
                      "train.final_eval_episodes=2", "log.progress=true")  # fmt: skip
    run_dir = train(cfg, run_dir=tmp_path / "run")
    lines = bar_lines(capsys.readouterr().err)
    assert any("min (time budget)" in line and "/1000 ep" in line for line in lines), lines[-3:]
    assert any("eval " in line and "(n=1, random " in line for line in lines), lines[-3:]
    episodes = checkpoint.load(checkpoint_path(run_dir))["counters"]["episodes"]
    assert episodes < 1000
    records = read_metrics(run_dir)
    finals = [r for r in records if "final/episode/return" in r]
    assert len(finals) == 1 and "final/random/return" in finals[0]
    assert len([r for r in records if "eval/random/return" in r]) == 1
    final = read_final_eval(run_dir)
    assert final["summary"].startswith("final eval over 2 episodes: ") and "(random " in final["summary"]
    assert final["run_episodes"] == episodes and final["episodes"] == 2 and len(final["returns"]) == len(final["random_returns"]) == 2

    # extended by minutes: it trains on, evaluates again, and the random baseline is not logged twice
    train(run_dir=run_dir, resume=True, overrides=["train.max_minutes=0.3", "train.total_episodes=4"])
    records = read_metrics(run_dir)
    assert len([r for r in records if "eval/episode/return" in r]) == 2  # episodes 2 and 4
    assert len([r for r in records if "eval/random/return" in r]) == 1
    assert len([r for r in records if "final/episode/return" in r]) == 2


def test_episode_budget_bar_counts_episodes(tmp_path, capsys):
    train(tiny_config("train.max_minutes=30", "train.eval_every=0", "train.final_eval_episodes=1",
                      "log.progress=true"), run_dir=tmp_path / "run")  # fmt: skip
    last = bar_lines(capsys.readouterr().err)[-1]
    assert "4/4 ep" in last and "time budget" not in last and "00:00 left" in last


def test_cli_prints_final_eval_refuses_spent_and_non_budget_resumes_and_extends(tmp_path, capsys):
    config, run = tmp_path / "tiny.yaml", tmp_path / "run"
    save_config(tiny_config("train.total_episodes=2", "train.eval_every=0", "train.final_eval_episodes=2"), config)
    assert main(["train", str(config), "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("final eval over 2 episodes: ") and "(random " in out[-1]

    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "has spent its budget (2 episodes)" in out and f"--resume {run} train.total_episodes=4" in out

    assert main(["train", "--resume", str(run), "model.deter_dim=8"]) == 2
    err = capsys.readouterr().err
    assert "only budget overrides" in err and "train.total_episodes, train.max_minutes, offline.updates" in err
    assert load_config(run / "config.yaml").model.deter_dim == 16

    assert main(["train", "--resume", str(run), "train.total_episodes=3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("final eval over 2 episodes: ")
    cfg = load_config(run / "config.yaml")
    counters = checkpoint.load(checkpoint_path(run))["counters"]
    assert cfg.train.total_episodes == 3 and counters["episodes"] == 3
    assert counters["updates"] == updates_owed(cfg, 3) == 6
    assert read_final_eval(run)["run_episodes"] == 3


@pytest.mark.parametrize("how", ["signal", "second_ctrl_c"])
def test_ctrl_c_message_names_the_run_dir(tmp_path, capsys, monkeypatch, how):
    import worldmodels.training.online as online

    def interrupted(*args):
        if how == "signal":
            signal.raise_signal(signal.SIGINT)  # the first Ctrl-C sets the stop flag
            return original(*args)
        raise KeyboardInterrupt  # a second Ctrl-C stops at once

    original = online.learner_update
    monkeypatch.setattr(online, "learner_update", interrupted)
    config, run = tmp_path / "tiny.yaml", tmp_path / "run"
    save_config(tiny_config("train.eval_every=0"), config)
    assert main(["train", str(config), "--run-dir", str(run)]) == 130
    assert f"interrupted; resume with: worldmodels train --resume {run}\n" in capsys.readouterr().err
    assert read_final_eval(run) is None  # no final evaluation after Ctrl-C


def test_offline_time_budget_bar_counts_minutes_and_final_eval_is_written(tmp_path, capsys):
    from pathlib import Path

    config = Path(__file__).parent.parent / "configs" / "pldm_two_rooms_cpu.yaml"
    overrides = ["offline.n_trajectories=40", "offline.updates=100000", "offline.log_every=3", "planner=mppi",
                 "mppi.samples=16",
                 "mppi.horizon=4", "mppi.iterations=1", "env.episode_length=5", "offline.eval_episodes=3",
                 "train.max_minutes=0.005", "log.tensorboard=false"]  # fmt: skip
    run_dir = train(load_config(config, overrides), run_dir=tmp_path / "run")
    lines = bar_lines(capsys.readouterr().err)
    assert any("min (time budget)" in line and "/100000 upd" in line for line in lines), lines[-3:]
    final = read_final_eval(run_dir)
    assert final["summary"].startswith("final eval over 3 start/goal pairs: success ")
    assert final["run_updates"] == checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] < 100000
    assert json.loads((run_dir / "final_eval.json").read_text())["summary"] == final["summary"]

    with pytest.raises(BudgetSpent, match=r"0.005 minutes of training.*train.max_minutes=0.01"):
        train(run_dir=run_dir, resume=True)
    train(run_dir=run_dir, resume=True, overrides=["train.max_minutes=0", f"offline.updates={final['run_updates'] + 3}"])
    assert read_final_eval(run_dir)["run_updates"] == final["run_updates"] + 3
    finals = [r["step"] for r in read_metrics(run_dir) if "eval/goal/success_rate" in r]
    assert finals == [final["run_updates"], final["run_updates"] + 3]  # the resume kept the first final eval


def test_lexa_final_eval_is_its_goal_evaluation(monkeypatch):
    from types import SimpleNamespace

    import worldmodels.methods as methods
    from worldmodels.training.distributed import Team

    scalars = {"eval/goal_success": 0.25, "eval/goal_reached": 0.5, "eval/goal_distance": 0.1,
               "eval/explorer/intrinsic": -3.7, "eval/random/intrinsic": -4.0}  # fmt: skip
    monkeypatch.setattr(methods, "lexa_scalars", lambda *args: scalars)
    logged = {}
    cfg = load_config(None, ["method=lexa", "env.domain=reacher", "env.task=easy", "env.goal_set=reacher"])
    run = SimpleNamespace(cfg=cfg, model=None, behaviour=None, replay=None, run_dir="RUN", team=Team(),
                          logger=SimpleNamespace(scalars=lambda values, step: logged.update(values)))  # fmt: skip
    result = methods.METHODS["lexa"].final_evaluate(run, 0)
    assert result["summary"].startswith("final eval on the reacher goals (1 episode each): success 0.25")
    assert "explorer intrinsic reward -3.70 (random -4.00)" in result["summary"]
    assert logged["final/goal_success"] == 0.25 and not any(k.startswith("eval/") for k in logged)


def test_ctrl_c_during_the_final_eval_skips_it_and_resume_runs_it(tmp_path, capsys, monkeypatch):
    import worldmodels.training.online as online

    original = online.returns_from_fixed_starts

    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C: the final eval runs with the default handler back

    monkeypatch.setattr(online, "returns_from_fixed_starts", interrupted)
    config, run = tmp_path / "tiny.yaml", tmp_path / "run"
    save_config(tiny_config("train.total_episodes=2", "train.eval_every=0", "train.final_eval_episodes=1"), config)
    assert main(["train", str(config), "--run-dir", str(run)]) == 130
    assert f"--resume {run}\n" in capsys.readouterr().err and read_final_eval(run) is None
    updates = checkpoint.load(checkpoint_path(run))["counters"]["updates"]

    monkeypatch.setattr(online, "returns_from_fixed_starts", original)
    assert main(["train", "--resume", str(run)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("final eval over 1 episodes: ")
    assert checkpoint.load(checkpoint_path(run))["counters"]["updates"] == updates


def test_random_baseline_leaves_training_unchanged(tmp_path, monkeypatch):
    import worldmodels.training.online as online

    def losses(run_dir):
        return [(r["step"], r["train/loss/total"]) for r in read_metrics(run_dir) if "train/loss/total" in r]

    cfg = tiny_config("train.eval_every=2", "train.final_eval_episodes=0")
    with_baseline = train(cfg, run_dir=tmp_path / "a")
    monkeypatch.setattr(online, "random_baseline", lambda run, step: {"mean": 0.0, "std": 0.0})
    without = train(cfg, run_dir=tmp_path / "b")
    assert any("eval/random/return" in r for r in read_metrics(with_baseline))
    assert losses(with_baseline) == losses(without) and len(losses(without)) == 3
