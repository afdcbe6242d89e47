"""Fault injection: every fault ends in a run that continues with nothing lost, or in one sentence
that names the file and what to do.

Fast tests damage files of tiny synthetic runs and replays; the slow ones (``-m slow``) kill real
``python -m worldmodels.cli train`` processes at random moments, run two writers at once, resume
from ``previous.pt`` and check that a seed gives the same losses twice.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter as Tally
from pathlib import Path

import numpy as np
import pytest
import torch

from synthetic_episodes import synthetic_steps
from worldmodels.cli.main import main
from worldmodels.core.config import ConfigError, load_config, save_config
from worldmodels.data.datasets import EpisodeDatasetWriter, load_dataset
from worldmodels.data.replay import SequenceReplay, rebuild_replay_metadata
from worldmodels.data.rows import steps_to_rows
from tests.test_training import TINY as TRAINING_TINY
from worldmodels.training import checkpoint
from worldmodels.training.logger import Logger, read_metrics
from worldmodels.training.run_dir import (
    CheckpointFallback,
    Counters,
    RunDirectoryBusy,
    checkpoint_path,
    load_checkpoint,
    lock_path,
    open_for_writing,
    previous_checkpoint_path,
    read_run_config,
    repair_run,
    restore_state,
    save_state,
)

REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_ENV = dict(os.environ, OMP_NUM_THREADS="1", MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"),
                      PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # fmt: skip


def damage(path: Path, how: str) -> None:
    """Make ``path`` unreadable the ways a disk, a full device or a careless hand would."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # garbled: the middle overwritten with noise
        noise = np.random.default_rng(0).integers(0, 256, max(8, len(data) // 4), dtype=np.uint8).tobytes()
        start = len(data) // 3
        path.write_bytes(data[:start] + noise + data[start + len(noise):])


DAMAGES = ["truncated", "empty", "garbled"]


# ----------------------------------------------------------------------------- checkpoints


def tiny_checkpoints(run_dir: Path, updates=(10, 25)) -> torch.nn.Linear:
    """Two checkpoints of a linear model (at ``updates``), the second rotating the first to previous.pt."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    cfg = load_config(None, ["device=cpu"])
    for episodes, count in enumerate(updates, start=2):
        with torch.no_grad():
            model.weight.fill_(count)
        save_state(run_dir, cfg, model, optimizer, None, Counters(updates=count, episodes=episodes))
    return model


def test_rotation_keeps_the_previous_checkpoint(tmp_path):
    tiny_checkpoints(tmp_path, updates=(10, 25, 40))
    assert checkpoint.load(checkpoint_path(tmp_path))["counters"]["updates"] == 40
    assert checkpoint.load(previous_checkpoint_path(tmp_path))["counters"]["updates"] == 25
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


@pytest.mark.parametrize("how", DAMAGES)
def test_unreadable_latest_falls_back_to_previous_saying_what_was_lost(tmp_path, how):
    tiny_checkpoints(tmp_path)
    damage(checkpoint_path(tmp_path), how)
    lost = r"latest.pt is unreadable; using previous.pt instead, 15 updates and 1 episode older \(at 10 updates"
    with pytest.warns(CheckpointFallback, match=lost):
        state = load_checkpoint(tmp_path)
    assert state["counters"]["updates"] == 10 and float(state["model"]["weight"][0, 0]) == 10


def test_missing_latest_after_a_crash_mid_rotation_falls_back(tmp_path):
    tiny_checkpoints(tmp_path)
    checkpoint_path(tmp_path).unlink()
    with pytest.warns(CheckpointFallback, match="is missing"):
        assert load_checkpoint(tmp_path)["counters"]["updates"] == 10


def test_no_readable_checkpoint_is_one_sentence_naming_both(tmp_path):
    tiny_checkpoints(tmp_path)
    damage(checkpoint_path(tmp_path), "truncated")
    damage(previous_checkpoint_path(tmp_path), "empty")
    both = r"latest.pt is unreadable and previous.pt is unreadable.*new run"
    with pytest.raises(checkpoint.UnreadableCheckpoint, match=both):
        load_checkpoint(tmp_path)


def test_a_checkpoint_that_does_not_load_back_replaces_nothing(tmp_path, monkeypatch):
    tiny_checkpoints(tmp_path)
    monkeypatch.setattr(checkpoint.torch, "save", lambda payload, file: file.write(b"not a checkpoint"))
    with pytest.raises(checkpoint.UnreadableCheckpoint):
        tiny_checkpoints(tmp_path, updates=(99,))
    assert checkpoint.load(checkpoint_path(tmp_path))["counters"]["updates"] == 25
    assert checkpoint.load(previous_checkpoint_path(tmp_path))["counters"]["updates"] == 10


def test_an_unreadable_latest_is_not_rotated_over_a_good_previous(tmp_path):
    tiny_checkpoints(tmp_path)
    damage(checkpoint_path(tmp_path), "garbled")
    tiny_checkpoints(tmp_path, updates=(30,))
    assert checkpoint.load(previous_checkpoint_path(tmp_path))["counters"]["updates"] == 10
    assert checkpoint.load(checkpoint_path(tmp_path))["counters"]["updates"] == 30


def test_resume_cuts_metrics_back_to_the_checkpoint(tmp_path):
    logger = Logger(tmp_path, tensorboard=False)
    logger.scalars({"train/loss/total": 1.0}, step=100)
    model = tiny_checkpoints(tmp_path, updates=(10,))
    logger.scalars({"train/loss/total": 2.0}, step=200)  # after the checkpoint: logged again on resume
    logger.close()
    restore_state(tmp_path, model, torch.optim.Adam(model.parameters()), None, "cpu")
    assert [r["step"] for r in read_metrics(tmp_path)] == [100]


def test_resume_without_a_checkpoint_keeps_the_seed_returns_and_drops_the_updates(tmp_path):
    logger = Logger(tmp_path, tensorboard=False)
    logger.scalars({"train/episode/return": 3.0}, step=0)
    logger.scalars({"train/episode/return": 4.0}, step=48)
    logger.scalars({"train/loss/total": 2.0}, step=96)  # killed before the first checkpoint
    logger.close()
    model = torch.nn.Linear(3, 2)
    assert restore_state(tmp_path, model, torch.optim.Adam(model.parameters()), None, "cpu") == Counters()
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 48]


# ----------------------------------------------------------------------------- config, replay, dataset


@pytest.mark.parametrize("how", DAMAGES)
def test_corrupt_config_is_one_sentence_and_repair_rewrites_it(tmp_path, how):
    save_config(load_config(None, ["device=cpu", "seed=7"]), tmp_path / "config.yaml")
    tiny_checkpoints(tmp_path)
    damage(tmp_path / "config.yaml", how)
    if how == "garbled":  # noise may still parse as YAML: make sure it does not
        (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config.yaml.*worldmodels repair"):
        read_run_config(tmp_path)
    assert any("config.yaml" in line for line in repair_run(tmp_path))
    assert read_run_config(tmp_path).seed == 0  # the checkpoint's config (tiny_checkpoints saved defaults)


def test_the_cli_answers_a_corrupt_run_directory_in_one_sentence(tmp_path, capsys):
    save_config(load_config(None, TINY), tmp_path / "config.yaml")
    tiny_checkpoints(tmp_path)
    (tmp_path / "config.yaml").write_text("")
    for command in (["eval", str(tmp_path)], ["plan", str(tmp_path), "--goal", "x.png"], ["imagine", str(tmp_path)],
                    ["train", "--resume", str(tmp_path)]):  # fmt: skip
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and f"worldmodels repair {tmp_path}" in err, err
    assert main(["repair", str(tmp_path)]) == 0 and "rewrote" in capsys.readouterr().out
    synthetic_replay(tmp_path / "replay")
    (tmp_path / "replay" / "replay.json").write_text("{")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert f"replay.json is not valid JSON (truncated or garbled); rebuild it from the storage files with " \
           f"`worldmodels repair {tmp_path}`" in capsys.readouterr().err


def synthetic_replay(directory: Path, lengths=(5, 8, 3, 9, 6, 7, 4, 10, 5, 6), capacity=30) -> dict:
    replay = SequenceReplay(directory, capacity=capacity)
    for i, n in enumerate(lengths):
        replay.add_rollout(synthetic_steps([n], first_episode=i))
    return json.loads((directory / "replay.json").read_text())


@pytest.mark.parametrize("how", DAMAGES)
def test_corrupt_replay_json_names_the_file_and_the_repair(tmp_path, how):
    synthetic_replay(tmp_path)
    damage(tmp_path / "replay.json", how)
    with pytest.raises(ValueError, match=r"replay.json is .*rebuild_replay_metadata"):
        SequenceReplay(tmp_path, capacity=30)


@pytest.mark.parametrize("evicting", [False, True])
def test_rebuild_replay_metadata_restores_the_episode_table(tmp_path, evicting):
    lengths = (5, 8, 3, 9, 6, 7, 4, 10, 5, 6) if evicting else (5, 8, 3)
    before = synthetic_replay(tmp_path, lengths)
    (tmp_path / "replay.json").write_text("")
    summary = rebuild_replay_metadata(tmp_path)
    after = json.loads((tmp_path / "replay.json").read_text())
    assert after["episodes"] == before["episodes"]
    for key in ("cursor", "next_episode_id", "num_rows", "fields", "capacity"):
        assert after[key] == before[key], key
    assert (after["rows_added"] == before["rows_added"]) != evicting and ("estimated" in summary) == evicting
    replay = SequenceReplay(tmp_path, capacity=30)
    assert replay.episode_ids() == before["episodes"]["id"]
    replay.add_rollout(synthetic_steps([4], first_episode=len(lengths)))  # and it keeps growing


def test_repair_rebuilds_a_run_replay(tmp_path):
    before = synthetic_replay(tmp_path / "replay")
    damage(tmp_path / "replay" / "replay.json", "truncated")
    save_config(load_config(None, ["device=cpu"]), tmp_path / "config.yaml")
    with pytest.raises(ValueError, match=rf"worldmodels repair {tmp_path}`"):
        SequenceReplay(tmp_path / "replay", capacity=30)
    assert any("replay.json" in line for line in repair_run(tmp_path))
    assert json.loads((tmp_path / "replay" / "replay.json").read_text())["episodes"] == before["episodes"]


def test_corrupt_replay_storage_names_the_storage(tmp_path):
    synthetic_replay(tmp_path)
    memmap = next((tmp_path / "storage").rglob("pixels.memmap"))
    damage(memmap, "truncated")
    with pytest.raises(ValueError, match=r"storage files in .*storage are unreadable"):
        SequenceReplay(tmp_path, capacity=30)


def synthetic_dataset(directory: Path) -> None:
    with EpisodeDatasetWriter(directory, {"domain": "synthetic"}) as writer:
        for i, n in enumerate((4, 6)):
            writer.add_episode(steps_to_rows(synthetic_steps([n], first_episode=i)))


@pytest.mark.parametrize("how", DAMAGES)
def test_corrupt_dataset_manifest_names_the_file_and_the_remedy(tmp_path, how):
    synthetic_dataset(tmp_path)
    damage(tmp_path / "dataset.json", how)
    with pytest.raises(ValueError, match=r"dataset.json is corrupt.*make it again"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("how", DAMAGES)
def test_corrupt_dataset_episode_names_the_file(tmp_path, how):
    synthetic_dataset(tmp_path)
    damage(tmp_path / "episodes" / "ep_000001.npz", how)
    with pytest.raises(ValueError, match=r"ep_000001.npz is missing or corrupt.*make it again"):
        load_dataset(tmp_path)


def test_stale_temp_files_are_removed_when_a_writer_opens(tmp_path):
    stale = [tmp_path / "checkpoints" / ".latest.pt.tmp", tmp_path / "replay" / ".replay.json.tmp",
             tmp_path / ".config.yaml.tmp"]  # fmt: skip
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    with open_for_writing(tmp_path):
        assert not any(path.exists() for path in stale)
    synthetic_dataset(tmp_path / "data")
    leftover = tmp_path / "data" / "episodes" / ".ep_000002.npz.tmp"
    leftover.write_bytes(b"half")
    synthetic_dataset(tmp_path / "data")
    assert not leftover.exists()


# ----------------------------------------------------------------------------- one writer

HOLDER = """
import sys, time
from worldmodels.training.run_dir import open_for_writing
with open_for_writing(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_is_refused_naming_the_holder_and_kill_9_frees_the_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE,
                              env=SUBPROCESS_ENV, cwd=REPO)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(RunDirectoryBusy, match=rf"process {holder.pid} on host {socket.gethostname()}.*wait"):
            with open_for_writing(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with open_for_writing(tmp_path):  # no stale lock after kill -9
        assert lock_path(tmp_path).read_text().split() == [str(os.getpid()), socket.gethostname()]


# ----------------------------------------------------------------------------- real training processes

TINY = TRAINING_TINY + ["train.total_episodes=7", "train.updates_per_episode=6", "train.eval_every=0"]
"""the tiny run of tests/test_training.py, 7 episodes, no in-training evaluation"""


def tiny_yaml(tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / "tiny.yaml"
    save_config(load_config(None, TINY + list(extra)), path)
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "worldmodels.cli", *args]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(cli(*args), env=SUBPROCESS_ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), env=SUBPROCESS_ENV, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def replay_state(run_dir: Path) -> tuple[int, int, list[torch.Tensor]]:
    """Episodes, rows and per-episode pixels of the run's replay on disk (0, 0, [] before the first)."""
    if not (run_dir / "replay" / "replay.json").is_file():
        return 0, 0, []
    replay = SequenceReplay(run_dir / "replay", capacity=1000)
    return replay.num_episodes, replay.num_rows, [replay.episode(i)["pixels"].clone() for i in range(replay.num_episodes)]


def one_row_per_step_and_key(run_dir: Path) -> None:
    tally = Tally((r["step"], key) for r in read_metrics(run_dir) for key in r if key not in ("step", "time"))
    repeated = {entry: n for entry, n in tally.items() if n > 1}
    assert not repeated, f"metrics.jsonl repeats (step, key) pairs: {repeated}"


def counters_of(run_dir: Path) -> dict:
    return checkpoint.load(checkpoint_path(run_dir))["counters"]


def wait_for_losses_logged_past_the_checkpoint(proc: subprocess.Popen, run_dir: Path) -> None:
    """Return once ``metrics.jsonl`` holds a loss row written after the last checkpoint (the
    evaluation runs between the two): the moment a resume would log the same step again."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            checkpointed = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["counters"]["metrics_bytes"]
        except (OSError, ValueError):
            checkpointed = 0
        metrics = run_dir / "metrics.jsonl"
        if metrics.is_file() and b'"train/loss/total"' in metrics.read_bytes()[checkpointed:]:
            return
        time.sleep(0.01)
    pytest.fail("the run logged no loss row past its checkpoint: " + proc.stderr.read().decode()[-2000:])


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_loses_no_episode_and_repeats_no_metric(tmp_path):
    """Kills land in seed collection, updates, evaluations, checkpoint writes and collection alike
    (4 random moments; evaluating after every episode widens the window between logging and checkpointing)."""
    run_dir, config = tmp_path / "run", tiny_yaml(tmp_path, "train.eval_every=1", "train.eval_episodes=2")
    rng = random.Random(19)
    episodes_seen, pixels_seen = 0, []
    def command():
        resuming = (run_dir / "config.yaml").exists()
        return ["train", "--resume", str(run_dir)] if resuming else ["train", str(config), "--run-dir", str(run_dir)]

    for attempt in range(4):
        proc = start(*command())
        if attempt == 1:
            wait_for_losses_logged_past_the_checkpoint(proc, run_dir)
        else:
            time.sleep(rng.uniform(4.0, 9.0))  # start-up (imports) takes part of it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        episodes, rows, pixels = replay_state(run_dir)
        assert episodes >= episodes_seen and rows == sum(p.shape[0] for p in pixels)
        for i, before in enumerate(pixels_seen):
            assert torch.equal(pixels[i], before), f"episode {i} changed after kill {attempt}"
        episodes_seen, pixels_seen = episodes, pixels
    result = run_cli(*command())
    assert result.returncode == 0, result.stderr[-2000:]
    episodes, rows, pixels = replay_state(run_dir)
    assert episodes == 7 and rows == 7 * (48 // 4 + 1)
    for i, before in enumerate(pixels_seen):
        assert torch.equal(pixels[i], before)
    assert counters_of(run_dir)["updates"] == 6 * (7 - 2 + 1)
    one_row_per_step_and_key(run_dir)
    assert not list(run_dir.rglob(".*.tmp"))


@pytest.mark.slow
def test_two_writers_one_is_refused_while_readers_keep_working(tmp_path):
    run_dir, config = tmp_path / "run", tiny_yaml(tmp_path, "train.total_episodes=200")
    trainer = start("train", str(config), "--run-dir", str(run_dir))
    try:
        deadline = time.time() + 120
        while not (checkpoint_path(run_dir).exists() and lock_path(run_dir).stat().st_size):
            assert time.time() < deadline and trainer.poll() is None, trainer.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        second = run_cli("train", "--resume", str(run_dir))
        assert second.returncode == 2 and f"process {trainer.pid} on host {socket.gethostname()}" in second.stderr
        assert "Traceback" not in second.stderr and second.stderr.count("\n") == 1, second.stderr
        fresh = run_cli("train", str(config), "--run-dir", str(run_dir))
        assert fresh.returncode == 2 and f"process {trainer.pid}" in fresh.stderr
        reader = run_cli("eval", str(run_dir), "--episodes", "1")
        assert reader.returncode == 0 and "return over 1 episodes" in reader.stdout, reader.stderr[-2000:]
        assert trainer.poll() is None, "the trainer must not notice the refused writer or the reader"
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    with open_for_writing(run_dir):  # the dead trainer's lock is gone
        pass


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
def test_unreadable_latest_resumes_from_previous_and_makes_up_the_updates(tmp_path, how):
    run_dir, config = tmp_path / "run", tiny_yaml(tmp_path)
    trainer = start("train", str(config), "--run-dir", str(run_dir))
    deadline = time.time() + 120
    while not (previous_checkpoint_path(run_dir).exists() and replay_state(run_dir)[0] >= 4):
        assert time.time() < deadline and trainer.poll() is None, trainer.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    trainer.send_signal(signal.SIGKILL)
    trainer.wait()
    episodes_before, _, pixels_before = replay_state(run_dir)
    damage(checkpoint_path(run_dir), how)

    evaluated = run_cli("eval", str(run_dir), "--episodes", "1")
    assert evaluated.returncode == 0 and "using previous.pt instead" in evaluated.stderr, evaluated.stderr[-2000:]
    resumed = run_cli("train", "--resume", str(run_dir))
    assert resumed.returncode == 0 and "using previous.pt instead" in resumed.stderr, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    episodes, _, pixels = replay_state(run_dir)
    assert episodes == 7 and all(torch.equal(a, b) for a, b in zip(pixels, pixels_before))
    assert counters_of(run_dir)["updates"] == 6 * (7 - 2 + 1)  # the owed updates were made up
    one_row_per_step_and_key(run_dir)

    damage(checkpoint_path(run_dir), how)
    damage(previous_checkpoint_path(run_dir), how)
    for command in (["eval", str(run_dir), "--episodes", "1"], ["train", "--resume", str(run_dir)]):
        failed = run_cli(*command)
        assert failed.returncode == 2 and failed.stderr.startswith("error: no readable checkpoint"), failed.stderr[-2000:]
        assert "latest.pt" in failed.stderr and "previous.pt" in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.slow
def test_same_seed_and_config_give_identical_losses(tmp_path):
    from worldmodels.methods import train

    def losses(name):
        run_dir = train(load_config(None, TINY + ["train.total_episodes=4"]), run_dir=tmp_path / name)
        return [(r["step"], {k: v for k, v in r.items() if k.startswith("train/")}) for r in read_metrics(run_dir)]

    first, second = losses("a"), losses("b")
    assert any("train/loss/total" in values for _, values in first)
    assert first == second
