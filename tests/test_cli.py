"""Each subcommand on a tiny real run (cleanrl-style smoke), plus the promised one-line errors."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from worldmodels.cli.main import main
from worldmodels.core.config import load_config
from worldmodels.methods import train

TINY_POINT_MASS = [
    "env.domain=point_mass", "env.task=easy", "env.episode_length=40", "env.action_repeat=2",
    "model.deter_dim=16", "model.stoch_dim=4", "model.hidden_dim=16", "model.cnn_depth=4",
    "model.reward_units=16", "model.reward_layers=1",
    "replay.batch_size=2", "replay.sequence_length=8", "replay.capacity=1000",
    "cem.horizon=3", "cem.candidates=16", "cem.top_k=4", "cem.iterations=2",
    "mppi.horizon=3", "mppi.samples=16", "mppi.iterations=2",
    "icem.horizon=3", "icem.population=16", "icem.elites=4", "icem.iterations=2",
    "gradient.horizon=3", "gradient.iterations=3", "gradient.restarts=2",
    "train.seed_episodes=2", "train.total_episodes=2", "train.updates_per_episode=2", "train.eval_every=0",
    "log.progress=false", "log.tensorboard=false", "device=cpu",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train(load_config(None, TINY_POINT_MASS), run_dir=tmp_path_factory.mktemp("cli") / "run")


def test_eval_reports_return(run_dir, capsys):
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["episodes"] == 1 and np.isfinite(result["mean_return"])
    assert "return over 1 episodes" in capsys.readouterr().out


def test_eval_writes_video(run_dir, tmp_path):
    video = tmp_path / "eval.mp4"
    assert main(["eval", str(run_dir), "--episodes", "1", "--video", str(video)]) == 0
    frames = iio.imread(video)
    assert frames.shape[0] == 21 and frames.shape[-1] == 3  # 20 agent steps + first observation


def test_imagine_writes_video_and_plot(run_dir, tmp_path, capsys):
    out = tmp_path / "openloop.gif"
    assert main(["imagine", str(run_dir), "--episodes", "2", "--context", "3", "--horizon", "5", "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "openloop_errors.png").is_file()
    assert iio.imread(out).shape[0] == 8
    assert (tmp_path / "openloop_errors.csv").read_text().count("\n") >= 8


def _goal_png(run_dir, path, size=64, channels=3):
    from envs.dmc import DMCEnv

    env = DMCEnv("point_mass", "easy", image_size=size, episode_length=10)
    image = env.reset()["pixels"].permute(1, 2, 0).numpy()
    env.close()
    if channels == 4:
        image = np.concatenate([image, np.full_like(image[..., :1], 255)], axis=-1)
    iio.imwrite(path, image)
    return path


@pytest.mark.parametrize("planner", ["cem", "mppi", "icem", "gradient"])
def test_plan_toward_goal_image(run_dir, tmp_path, capsys, planner):
    goal = _goal_png(run_dir, tmp_path / "goal.png")
    video = tmp_path / "plan.mp4"
    code = main(["plan", str(run_dir), "--goal", str(goal), "--planner", planner, "--steps", "4", "--video", str(video)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 4 and "final_cosine_distance" in result
    assert iio.imread(video).shape[0] == 5


def test_plan_on_goal_task_reports_success(run_dir, capsys):
    assert main(["plan", str(run_dir), "--goal", "point_mass:1", "--steps", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["success"], bool) and result["final_goal_distance"] >= 0
    assert 0 < result["initial_goal_distance"] < 0.75  # point_mass arena is +-0.3 m
    assert result["success"] == (result["final_goal_distance"] < 0.03)


@pytest.mark.parametrize("command", ["plan", "eval"])
def test_goal_distance_flags_reach_the_goal_objective(run_dir, capsys, monkeypatch, command):
    import worldmodels.methods as methods

    seen, original = [], methods.goal_planning_agent

    def recording_goal_agent(*args, **kwargs):
        agent = original(*args, **kwargs)
        objective = agent.planner.objective
        seen.append((objective.metric, objective.features, objective.part, objective.goal_hold))
        return agent

    monkeypatch.setattr(methods, "goal_planning_agent", recording_goal_agent)
    flags = ["--metric", "l2", "--features", "mean", "--part", "stoch", "--goal-hold", "3"]
    where = ["--goal", "point_mass:1", "--steps", "2"] if command == "plan" else ["--goals", "point_mass"]
    assert main([command, str(run_dir), *where, *flags]) == 0
    assert seen and set(seen) == {("l2", "mean", "stoch", 3)}
    monkeypatch.setattr(methods, "goal_planning_agent", recording_goal_agent)
    seen.clear()
    assert main(["plan", str(run_dir), "--goal", "point_mass:1", "--steps", "1"]) == 0
    assert seen == [("cosine", "sample", "full", 1)]  # the method's defaults


def test_eval_goals_reports_per_goal_success(run_dir, capsys):
    assert main(["eval", str(run_dir), "--goals", "point_mass", "--episodes", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["success_rate"] <= 1.0 and len(result["per_goal"]) >= 2


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d, p: p / "missing.png", "does not exist"),
        (lambda d, p: _goal_png(d, p / "rgba.png", channels=4), "4 channel(s)"),
        (lambda d, p: _goal_png(d, p / "big.png", size=96), "pass --resize"),
        (lambda d, p: (np.save(p / "nan.npy", np.full((64, 64, 3), np.nan, np.float32)), p / "nan.npy")[1], "NaN"),
        (lambda d, p: ((p / "junk.png").write_bytes(b"not an image"), p / "junk.png")[1], "Could not read"),
    ],
    ids=["missing", "channels", "size", "nan", "unreadable"],
)
def test_bad_goal_is_refused_with_one_sentence(run_dir, tmp_path, capsys, make, fragment):
    goal = make(run_dir, tmp_path)
    assert main(["plan", str(run_dir), "--goal", str(goal), "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_resize_flag_accepts_other_sizes(run_dir, tmp_path, capsys):
    goal = _goal_png(run_dir, tmp_path / "big.png", size=96)
    assert main(["plan", str(run_dir), "--goal", str(goal), "--steps", "2", "--resize"]) == 0


def test_goals_command_writes_images(tmp_path, capsys):
    assert main(["goals", "point_mass", "--out", str(tmp_path)]) == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert pngs and iio.imread(pngs[0]).shape == (64, 64, 3)


def test_collect_writes_dataset(tmp_path, capsys):
    out = tmp_path / "data"
    code = main(["collect", "--domain", "cartpole", "--task", "swingup", "--episodes", "2",
                 "--episode-length", "16", "--out", str(out)])  # fmt: skip
    assert code == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["num_episodes"] == 2


def test_train_bad_key_is_one_sentence(capsys):
    config = Path(__file__).parent.parent / "configs" / "planet_cartpole_swingup.yaml"
    assert main(["train", str(config), "cem.horizn=3"]) == 2
    err = capsys.readouterr().err
    assert "Unknown config key 'cem.horizn'" in err and "Traceback" not in err


def test_resume_of_missing_run_is_clear(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_pldm_trains_offline_and_evaluates_goal_reaching(tmp_path, capsys):
    config = Path(__file__).parent.parent / "configs" / "pldm_two_rooms_cpu.yaml"
    run = tmp_path / "pldm"
    overrides = ["offline.n_trajectories=40", "offline.updates=6", "offline.log_every=3", "planner=mppi", "mppi.samples=16",
                 "mppi.horizon=4", "mppi.iterations=1", "env.episode_length=5", "log.progress=false"]  # fmt: skip
    assert main(["train", str(config), *overrides, "--run-dir", str(run)]) == 0
    assert (run / "checkpoints" / "latest.pt").is_file() and (run / "data" / "dataset.json").is_file()
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0
    assert main(["eval", str(run), "--goals", "point_mass"]) == 2
    assert "this run is on 'two_rooms'" in capsys.readouterr().err
    # no decoder: open-loop imagination goes through a probe decoder trained on frozen features
    out = tmp_path / "pldm.gif"
    args = ["imagine", str(run), "--episodes", "2", "--context", "2", "--horizon", "2", "--probe-steps", "2"]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["probe"] is True
    assert out.is_file() and (run / "probe.pt").is_file()
