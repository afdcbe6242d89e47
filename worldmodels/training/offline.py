"""The offline loop: train a world model from a fixed, reward-free dataset (PLDM's setting), top to bottom.

    data = ensure_dataset(cfg, run_dir)          # generate Two Rooms / collect DMC if missing
    while updates < cfg.offline.updates and within train.max_minutes:
        learner_update(data)                     # the same step as the online loop: [B, T] windows
        log / (Two Rooms) goal-reaching eval / checkpoint
    final goal-reaching eval -> final_eval.json  # outside the time budget

Works for PLDM and for PlaNet / DreamerV2 trained on the same data (the Two Rooms benchmark
compares them with the same planner). The checkpoint payload and the resume path are the online
loop's (``worldmodels.training.run_dir``), so ``eval``/``plan``/``imagine`` load either kind of run.
The dataset is re-read from disk on resume; it is deterministic given ``offline.data_seed``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Protocol

import torch

from envs import make_env
from envs.two_rooms_data import make_render_fn
from worldmodels.core import keys
from worldmodels.core.config import RunConfig
from worldmodels.data.collect import collect_random_episodes
from worldmodels.data.datasets import OfflineSequenceDataset, load_dataset
from worldmodels.data.two_rooms_dataset import write_two_rooms_dataset
from worldmodels.evaluation.two_rooms import evaluate_goal_reaching
from worldmodels.training import checkpoint
from worldmodels.training.distributed import Team, follow
from worldmodels.training.budget import BudgetBar, BudgetSpent, final_eval_current, spent_message, write_final_eval
from worldmodels.training.logger import Logger
from worldmodels.training.run_dir import Counters, prepare, resolve_device, restore_state, save_state
from worldmodels.training.step import (StopRequest, TrainingDiverged, interrupts_name, learner_update,
                                       make_model_optimizer, mean_metrics)  # fmt: skip
from worldmodels.training.learner_setup import prepare_learner


class ModelMaker(Protocol):
    """What the offline loop asks of a method; ``worldmodels.methods.Method`` provides it."""

    def make_model(self, cfg: RunConfig, action_dim: int, image_shape: tuple[int, int, int]): ...


def dataset_dir(cfg: RunConfig, run_dir: Path) -> Path:
    return Path(cfg.offline.dataset_dir) if cfg.offline.dataset_dir else Path(run_dir) / "data"


def ensure_dataset(cfg: RunConfig, run_dir: Path, device="cpu", progress: bool = False) -> OfflineSequenceDataset:
    """Load the run's dataset, generating it first if its directory holds none.

    Two Rooms: ``write_two_rooms_dataset`` with ``offline.n_trajectories/n_steps/mode/random_fraction/
    cross_wall_rate/door_passing_fraction/data_seed`` (pixels rendered on the fly). DMC: ``offline.dmc_episodes`` random
    episodes via ``collect_random_episodes`` (pixels stored).
    """
    directory, offline = dataset_dir(cfg, run_dir), cfg.offline
    if cfg.env.suite == "two_rooms":
        if not (directory / "dataset.json").is_file():
            extra = {} if offline.cross_wall_rate is None else {"cross_wall_rate": offline.cross_wall_rate}
            if offline.door_passing_fraction is not None:
                extra["door_passing_fraction"] = offline.door_passing_fraction
            write_two_rooms_dataset(directory, offline.n_trajectories, n_steps=offline.n_steps,
                                    image_size=cfg.env.image_size, channels=cfg.env.two_rooms_channels,
                                    seed=offline.data_seed, mode=offline.mode, random_fraction=offline.random_fraction,
                                    **extra)  # fmt: skip
        render_fn = make_render_fn(cfg.env.image_size, cfg.env.two_rooms_channels)
        return load_dataset(directory, render_fn=render_fn, device=device)
    if not (directory / "dataset.json").is_file():
        env = make_env(cfg.env, seed=offline.data_seed)
        try:
            collect_random_episodes(env, offline.dmc_episodes, directory, seed=offline.data_seed, progress=progress,
                                    env_config=dataclasses.asdict(cfg.env))  # fmt: skip
        finally:
            env.close()
    return load_dataset(directory, device=device)


def evaluate_goals(cfg: RunConfig, model, logger: Logger, step: int) -> dict:
    """Two Rooms goal reaching (PLDM's protocol) logged as ``eval/goal/*``; nothing on other suites."""
    if cfg.env.suite != "two_rooms" or cfg.offline.eval_episodes == 0:
        return {}
    cuda = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # evaluation noise must not shift the training batches
        result = evaluate_goal_reaching(cfg, model)
    logger.scalars({f"eval/goal/{k}": v for k, v in result.items()}, step)
    return result


def final_summary(cfg: RunConfig, run_dir: Path, result: dict) -> dict:
    """The final evaluation's result with a one-line ``summary`` (offline runs of DMC data have none built in)."""
    if result:
        summary = (f"final eval over {cfg.offline.eval_episodes} start/goal pairs: success {result['success_rate']:.2f} "
                   f"(random {result['random_success_rate']:.2f})")  # fmt: skip
    else:
        summary = f"no final eval for offline {cfg.env.suite} runs; run: worldmodels eval {run_dir} (--goals TASKSET)"
    return {"summary": summary, "episodes": cfg.offline.eval_episodes if result else 0, **result}


def budget_binding(cfg: RunConfig, counters: Counters) -> str | None:
    """The budget key that is spent (a resumed run would train no further), or None."""
    if cfg.train.max_minutes > 0 and counters.train_seconds >= 60 * cfg.train.max_minutes:
        return "train.max_minutes"
    return "offline.updates" if counters.updates >= cfg.offline.updates else None


def train_offline(cfg: RunConfig | None, run_dir, method: ModelMaker, resume: bool = False,
                  team: Team | None = None) -> Path:  # fmt: skip
    """Train ``cfg`` on its offline dataset (or resume the run in ``run_dir``); returns the run directory.

    Stops at ``offline.updates`` or ``train.max_minutes``, whichever comes first (checkpointed), then
    runs the final evaluation (Two Rooms goal reaching) outside the time budget and writes it to
    ``final_eval.json``. Metrics (``metrics.jsonl`` + TensorBoard, step = update count):
    ``train/loss/*``, ``train/repr/*`` (PLDM), ``train/grad_norm/model``, ``eval/goal/*`` (Two Rooms).

    Data-parallel (a ``team`` from torchrun, ``worldmodels.training.distributed``): rank 0 runs this
    loop and writes everything; the other ranks read the same dataset directory (one machine or a
    shared file system), sample their own batches and make every update with it, gradients averaged.

    Raises:
        BudgetSpent: a resumed run whose budget is spent and whose final evaluation is done.
        RunInterrupted: a signal stopped the run (a ``KeyboardInterrupt`` naming ``run_dir``).
    """
    team = team or Team()
    if team.is_distributed:
        cfg = team.broadcast(prepare(cfg, run_dir, resume)[0] if team.is_leader else None)
    else:
        cfg, run_dir = prepare(cfg, run_dir, resume)
    run_dir = Path(run_dir)
    with interrupts_name(run_dir):
        _train_offline(cfg, run_dir, method, resume, team)
    return run_dir


def _train_offline(cfg: RunConfig, run_dir: Path, method: ModelMaker, resume: bool, team: Team) -> None:
    checkpoint.seed_everything(cfg.seed)
    device = team.device(resolve_device(cfg.device))
    if team.is_leader:
        data = ensure_dataset(cfg, run_dir, device=device, progress=cfg.log.progress)
    team.broadcast(None)  # the leader has generated the dataset, if it had to
    if not team.is_leader:
        data = ensure_dataset(cfg, run_dir, device=device)
    first = data.sample(1, 1)
    model = method.make_model(cfg, first.get(keys.ACTION).shape[-1], tuple(first.get(keys.PIXELS).shape[-3:]))
    model = model.to(device)
    optimizer = make_model_optimizer(cfg.model, model)
    precision = prepare_learner(cfg, model, device)
    counters = restore_state(run_dir, model, optimizer, None, device) if resume and team.is_leader else Counters()
    team.share_state(model, optimizer, None)
    team.seed_follower(cfg.seed, team.broadcast(counters.updates))
    team.average_gradients_of(model)
    if not team.is_leader:
        follow(team, None, lambda index: learner_update(cfg, model, optimizer, None, data, index, precision))
        team.close()
        return
    spent = budget_binding(cfg, counters) if resume else None
    if spent and final_eval_current(run_dir, counters.updates, 0):
        team.send_stop()
        raise BudgetSpent(spent_message(run_dir, spent, cfg))
    offline = cfg.offline
    logger = Logger(run_dir, tensorboard=cfg.log.tensorboard)
    bar = BudgetBar(counters.updates, offline.updates, "upd", cfg.train.max_minutes, counters.train_seconds,
                    f"{cfg.method} offline", cfg.log.progress)  # fmt: skip
    history: list[dict] = []
    stop = StopRequest().install()

    def save() -> None:
        counters.train_seconds = bar.elapsed()
        save_state(run_dir, cfg, model, optimizer, None, counters)

    try:
        while counters.updates < offline.updates and not bar.out_of_time():
            team.send_update(counters.updates)
            with team.averaging():
                history.append(learner_update(cfg, model, optimizer, None, data, counters.updates, precision))
            counters.updates += 1
            step = counters.updates
            if step % offline.log_every == 0 or step == offline.updates:
                means = mean_metrics(history)
                history = []
                logger.scalars(means, step)
                bar.show(loss=f"loss {means['train/loss/total']:.3f}")
            out_of_time = bar.out_of_time()
            if offline.eval_every and step % offline.eval_every == 0 and step != offline.updates and not out_of_time:
                result = evaluate_goals(cfg, model, logger, step)
                counters.last_eval = step
                if result:
                    bar.show(success=f"success {result['success_rate']:.2f} (n={offline.eval_episodes})")
            if step % offline.checkpoint_every == 0 or step == offline.updates or out_of_time or stop.requested:
                save()
            bar.advance(1)
            if stop.requested:
                raise KeyboardInterrupt("training stopped by a signal; the run was checkpointed")
        save()
    except TrainingDiverged:  # parameters are still the last good ones (no step was taken)
        save()
        raise
    finally:
        stop.restore()
        bar.close()
    try:  # outside the time budget; Ctrl-C here leaves the run checkpointed and a resume runs it
        result = evaluate_goals(cfg, model, logger, counters.updates)
        write_final_eval(run_dir, final_summary(cfg, run_dir, result), counters.updates, 0)
        save_state(run_dir, cfg, model, optimizer, None, counters)  # records the rows just logged (see online)
        team.send_stop()  # only on a clean end: after an error torchrun stops the followers
    finally:
        logger.close()
        team.close()
