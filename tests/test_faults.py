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
    with pytest.warns(CheckpointFallback, match=r"latest.pt is unreadable; using previous.pt instead, 15 updates and 1 episodes older"):
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
    with pytest.raises(checkpoint.UnreadableCheckpoint, match=r"latest.pt is unreadable and previous.pt is unreadable.*new run"):
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


def synthetic_replay(directory: Path, lengths=(5, 8, 3, 9, 6, 7, 4, 10, 5, 6), capacity=30) -> dict:
    replay = SequenceReplay(directory, capacity=capacity)
    for i, n in enumerate(lengths):
        replay.add_rollout(synthetic_steps([n], first_episode=i))
    return json.loads((directory / "replay.json").read_text())


@pytest.mark.parametrize("how", DAMAGES)
def test_corrupt_replay_json_names_the_file_and_the_repair(tmp_path, how):
    synthetic_replay(tmp_path)
    damage(tmp_path / "replay.json", how)
    with pytest.raises(ValueError, match=r"replay.json is .*worldmodels repair RUN_DIR"):
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
