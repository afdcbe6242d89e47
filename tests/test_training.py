"""End-to-end training on a real DMC task at tiny sizes; kill -9 + resume loses nothing; NaN stops cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from worldmodels.training import checkpoint
from worldmodels.core import keys
from worldmodels.core.config import load_config
from worldmodels.training.logger import read_metrics
from worldmodels.data.replay import SequenceReplay
from worldmodels.methods import train
from worldmodels.training.online import updates_owed
from worldmodels.training.run_dir import checkpoint_path
from worldmodels.training.step import TrainingDiverged

TINY = [
    "env.domain=cartpole", "env.task=swingup", "env.episode_length=48", "env.action_repeat=4",
    "model.deter_dim=16", "model.stoch_dim=4", "model.hidden_dim=16", "model.cnn_depth=4",
    "model.reward_units=16", "model.reward_layers=1",
    "replay.batch_size=2", "replay.sequence_length=6", "replay.capacity=1000",
    "cem.horizon=3", "cem.candidates=16", "cem.top_k=4", "cem.iterations=2",
    "train.seed_episodes=2", "train.total_episodes=4", "train.updates_per_episode=3",
    "train.eval_every=2", "train.eval_episodes=1",
    "log.progress=false", "log.tensorboard=false", "device=cpu",
]


def tiny_config(*extra):
    return load_config(None, TINY + list(extra))


def test_tiny_run_end_to_end(tmp_path):
    run_dir = train(tiny_config(), run_dir=tmp_path / "run")
    assert (run_dir / "config.yaml").is_file()
    state = checkpoint.load(checkpoint_path(run_dir))
    cfg = tiny_config()
    assert state["counters"]["updates"] == updates_owed(cfg, 4) == 9
    assert state["counters"]["episodes"] == 4
    records = read_metrics(run_dir)
    evals = [r for r in records if "eval/episode/return" in r]
    assert len(evals) == 2  # after episodes 2 and 4
    assert any("train/loss/kl" in r for r in records)
    replay = SequenceReplay(run_dir / "replay", capacity=1000)
    assert replay.num_episodes == 4
    assert replay.num_rows == 4 * (48 // 4 + 1)


def test_refuses_to_overwrite_existing_run(tmp_path):
    run_dir = train(tiny_config("train.total_episodes=2", "train.eval_every=0"), run_dir=tmp_path / "run")
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(), run_dir=run_dir)


def _replay_snapshot(run_dir):
    replay = SequenceReplay(Path(run_dir) / "replay", capacity=1000)
    return replay.num_episodes, replay.num_rows


@pytest.mark.slow
def test_kill_and_resume_loses_nothing(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "worldmodels.cli", "train", "--run-dir", str(run_dir), "-"]
    cfg_path = tmp_path / "tiny.yaml"
    from worldmodels.core.config import save_config

    save_config(tiny_config("train.total_episodes=7", "train.updates_per_episode=6", "train.eval_every=0"), cfg_path)
    args[-1] = str(cfg_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if checkpoint_path(run_dir).exists() and _replay_snapshot(run_dir)[0] >= 4:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training subprocess made no progress: " + proc.stderr.read().decode()[-2000:])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    episodes_before, rows_before = _replay_snapshot(run_dir)
    before = SequenceReplay(run_dir / "replay", capacity=1000)
    first_episodes = [before.episode(i)[keys.PIXELS].clone() for i in range(episodes_before)]
    saved = checkpoint.load(checkpoint_path(run_dir))

    train(run_dir=run_dir, resume=True)

    after = SequenceReplay(run_dir / "replay", capacity=1000)
    assert after.num_episodes == 7
    for i, pixels in enumerate(first_episodes):
        assert torch.equal(after.episode(i)[keys.PIXELS], pixels), f"episode {i} from before the crash changed"
    final = checkpoint.load(checkpoint_path(run_dir))
    cfg = load_config(run_dir / "config.yaml")
    assert final["counters"]["updates"] == updates_owed(cfg, 7)
    assert final["counters"]["updates"] >= saved["counters"]["updates"]
    assert episodes_before >= 4


def test_nan_loss_stops_with_clear_error_and_checkpoint(tmp_path, monkeypatch):
    from worldmodels.models import planet

    original = planet.PlaNet.loss
    calls = {"n": 0}

    def poisoned(self, batch):
        out = original(self, batch)
        calls["n"] += 1
        if calls["n"] >= 4:
            return out._replace(loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(planet.PlaNet, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match="NaN|nan"):
        train(tiny_config("train.eval_every=0"), run_dir=tmp_path / "run")
    state = checkpoint.load(checkpoint_path(tmp_path / "run"))
    assert state["counters"]["updates"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_ctrl_c_checkpoints_between_updates_and_resume_makes_up_the_rest(tmp_path, monkeypatch):
    import worldmodels.training.online as training

    original, calls = training.learner_update, {"n": 0}

    def interrupted_after_two(*args):
        out = original(*args)
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C arrived during the second update
        return out

    monkeypatch.setattr(training, "learner_update", interrupted_after_two)
    run_dir = tmp_path / "run"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # background CI inherits SIG_IGN
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config("train.eval_every=0"), run_dir=run_dir)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    finally:
        signal.signal(signal.SIGINT, previous)
    state = checkpoint.load(checkpoint_path(run_dir))
    assert state["counters"]["updates"] == 2 < updates_owed(tiny_config(), 2)  # saved mid catch-up
    assert _replay_snapshot(run_dir)[0] == 2

    monkeypatch.setattr(training, "learner_update", original)
    train(run_dir=run_dir, resume=True)
    final = checkpoint.load(checkpoint_path(run_dir))
    assert final["counters"]["updates"] == updates_owed(tiny_config(), 4) and final["counters"]["episodes"] == 4


def test_time_budget_cuts_owed_updates_short_and_resume_makes_them_up(tmp_path):
    import dataclasses

    from worldmodels.core.config import save_config

    cfg = tiny_config("train.eval_every=0", "train.total_episodes=2", "train.updates_per_episode=20",
                      "train.max_minutes=1e-6")  # fmt: skip
    run_dir = train(cfg, run_dir=tmp_path / "run")
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] < updates_owed(cfg, 2) == 20
    save_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_minutes=0.0)), run_dir / "config.yaml")
    train(run_dir=run_dir, resume=True)
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] == 20


def test_openloop_and_eval_video_logged_during_training(tmp_path):
    cfg = tiny_config(
        "train.total_episodes=3", "train.eval_every=3", "log.video_every=1", "log.tensorboard=true",
        "log.openloop_every=1", "log.openloop_context=2", "log.openloop_horizon=4", "log.openloop_sequences=2",
    )
    run_dir = train(cfg, run_dir=tmp_path / "run")
    records = read_metrics(run_dir)
    openloop = [r for r in records if "openloop/mse/imagined" in r]
    assert len(openloop) == 2  # after the updates at episodes 2 and 3
    assert all(r["openloop/mse/imagined"] >= 0 for r in openloop)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "videos" / "eval_episode_00003.mp4").is_file()


def test_tiny_dreamerv2_trains_end_to_end_and_resumes(tmp_path):
    cfg = load_config(None, [
        "method=dreamerv2", "env.domain=cartpole", "env.task=swingup", "env.episode_length=48",
        "env.action_repeat=4", "model.deter_dim=16", "model.hidden_dim=16", "model.stoch_dim=4",
        "model.classes=4", "model.cnn_depth=4", "model.mlp_layers=1", "model.mlp_units=16",
        "actor_critic.horizon=3", "actor_critic.layers=1", "actor_critic.units=16",
        "replay.batch_size=2", "replay.sequence_length=6", "replay.capacity=1000",
        "train.seed_episodes=2", "train.total_episodes=3", "train.updates_per_episode=2",
        "train.eval_every=3", "train.eval_episodes=1", "log.progress=false", "log.tensorboard=false",
        "device=cpu",
    ])  # fmt: skip
    run_dir = train(cfg, run_dir=tmp_path / "run")
    records = read_metrics(run_dir)
    assert any("train/loss/kl" in r for r in records)
    assert any(any(k.startswith("train/actor") for k in r) for r in records), "no actor-critic metrics logged"
    assert any("eval/episode/return" in r for r in records)
    state = checkpoint.load(checkpoint_path(run_dir))
    assert state["behaviour"] is not None and state["counters"]["updates"] == updates_owed(cfg, 3)


def test_counters_of_checkpoints_written_before_the_counters_class_still_load():
    from worldmodels.training.run_dir import Counters

    online = Counters.from_dict({"updates": 6, "last_eval_episode": 4, "train_seconds": 2.5, "evals": 1, "episodes": 4})
    assert online == Counters(updates=6, train_seconds=2.5, evals=1, last_eval=4, episodes=4)
    offline = Counters.from_dict({"updates": 3, "last_eval_update": 3, "train_seconds": 0.1, "episodes": 0})
    assert offline == Counters(updates=3, train_seconds=0.1, evals=0, last_eval=3, episodes=0)
    assert Counters.from_dict(online.to_dict()) == online
