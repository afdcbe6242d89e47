"""Train any world model from a fixed, reward-free offline dataset (PLDM's setting), top to bottom.

    data = ensure_dataset(cfg, run_dir)           # generate Two Rooms / collect DMC if missing
    for update in range(cfg.offline.updates):
        batch = data.sample(B, T)                 # [B, T] windows inside episodes, pixels rendered on the fly
        model.loss(batch) -> backward -> step     # NaN/inf stops the run before the step
        log / checkpoint / (Two Rooms) goal-reaching eval

Works for PLDM (``method: pldm``) and for PlaNet / DreamerV2 trained on the same data (the
benchmark compares them with the same MPPI). Checkpoints use the payload of
``worldmodels.training.online.save_run`` (``config, model, optimizer, behaviour=None, counters, rng``) so
``training.load_trained(run_dir)`` loads them for ``eval``/``plan``/``imagine``. A run resumes from
``checkpoints/latest.pt`` with its optimiser, counters and RNG states (the data is re-read from
disk; the dataset is deterministic given ``offline.data_seed``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from worldmodels.training import checkpoint
from worldmodels.core import keys
from worldmodels.core.config import RunConfig
from worldmodels.data.datasets import OfflineSequenceDataset, load_dataset
from worldmodels.methods import make_model, make_model_optimizer, resolve_device
from worldmodels.training.logger import Logger
from worldmodels.training.online import (
    StopRequest,
    TrainingDiverged,
    checkpoint_path,
    gradient_step,
    mean_metrics,
    prepare,
    save_state,
)
from worldmodels.evaluation.two_rooms import evaluate_goal_reaching

__all__ = ["train_offline", "evaluate_goal_reaching", "ensure_dataset"]


def dataset_dir(cfg: RunConfig, run_dir: Path) -> Path:
    return Path(cfg.offline.dataset_dir) if cfg.offline.dataset_dir else Path(run_dir) / "data"


def ensure_dataset(cfg: RunConfig, run_dir: Path, progress: bool = False, device="cpu") -> OfflineSequenceDataset:
    """Load the run's dataset, generating it first if its directory holds none.

    Two Rooms: ``write_two_rooms_dataset`` with ``offline.n_trajectories/n_steps/mode/random_fraction/
    cross_wall_rate/data_seed`` (pixels rendered on the fly). DMC: ``offline.dmc_episodes`` random
    episodes via ``collect_random_episodes`` (pixels stored).
    """
    directory, ocfg = dataset_dir(cfg, run_dir), cfg.offline
    if cfg.env.suite == "two_rooms":
        from envs.two_rooms_data import make_render_fn
        from worldmodels.data.two_rooms_dataset import write_two_rooms_dataset

        if not (directory / "dataset.json").is_file():
            extra = {} if ocfg.cross_wall_rate is None else {"cross_wall_rate": ocfg.cross_wall_rate}
            write_two_rooms_dataset(directory, ocfg.n_trajectories, n_steps=ocfg.n_steps, image_size=cfg.env.image_size,
                                    channels=cfg.env.two_rooms_channels, seed=ocfg.data_seed, mode=ocfg.mode,
                                    random_fraction=ocfg.random_fraction, **extra)  # fmt: skip
        return load_dataset(directory, render_fn=make_render_fn(cfg.env.image_size, cfg.env.two_rooms_channels), device=device)
    if not (directory / "dataset.json").is_file():
        from envs import make_env
        from worldmodels.data.collect import collect_random_episodes

        env = make_env(cfg.env, seed=ocfg.data_seed)
        try:
            collect_random_episodes(env, ocfg.dmc_episodes, directory, seed=ocfg.data_seed, progress=progress,
                                    env_config=dataclasses.asdict(cfg.env))  # fmt: skip
        finally:
            env.close()
    return load_dataset(directory, device=device)


def _evaluate(cfg, model, logger, step: int) -> dict:
    if cfg.env.suite != "two_rooms" or cfg.offline.eval_episodes == 0:
        return {}
    cuda = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # evaluation noise must not shift the training batches
        result = evaluate_goal_reaching(cfg, model)
    logger.scalars({f"eval/goal/{k}": v for k, v in result.items()}, step)
    return result


def train_offline(cfg: RunConfig | None = None, run_dir=None, resume: bool = False) -> Path:
    """Train ``cfg`` on its offline dataset (or resume the run in ``run_dir``); returns the run directory.

    Metrics (``metrics.jsonl`` + TensorBoard, step = update count): ``train/loss/*``,
    ``train/repr/*`` (PLDM), ``train/grad_norm/model``, ``eval/goal/*`` (Two Rooms).
    """
    cfg, run_dir = prepare(cfg, run_dir, resume)
    checkpoint.seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = ensure_dataset(cfg, run_dir, progress=cfg.log.progress, device=device)
    first = data.sample(1, 1)
    image_shape = tuple(first.get(keys.PIXELS).shape[-3:])
    model = make_model(cfg, first.get(keys.ACTION).shape[-1], image_shape).to(device)
    optimizer = make_model_optimizer(cfg.model, model)
    counters = {"updates": 0, "last_eval_update": -1, "train_seconds": 0.0}
    ckpt = checkpoint_path(run_dir)
    if resume and ckpt.exists():
        state = checkpoint.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        counters.update({k: v for k, v in state["counters"].items() if k != "episodes"})
        checkpoint.set_rng_state(state["rng"])
    ocfg, rcfg = cfg.offline, cfg.replay
    logger = Logger(run_dir, tensorboard=cfg.log.tensorboard)
    started = time.time() - counters["train_seconds"]
    bar = tqdm(total=ocfg.updates, initial=counters["updates"], desc=f"{cfg.method} offline",
               disable=not cfg.log.progress, dynamic_ncols=True, unit="upd")  # fmt: skip
    history: list[dict] = []
    stop = StopRequest().install()
    try:
        while counters["updates"] < ocfg.updates:
            batch = data.sample(rcfg.batch_size, rcfg.sequence_length)  # [B,T]
            history.append(gradient_step(model, optimizer, cfg.model.grad_clip, batch, counters["updates"])[0])
            counters["updates"] += 1
            step = counters["updates"]
            if step % ocfg.log_every == 0 or step == ocfg.updates:
                means = mean_metrics(history)
                history = []
                logger.scalars(means, step)
                bar.set_postfix({"loss": f"{means['train/loss/total']:.3f}"}, refresh=False)
            if ocfg.eval_every and step % ocfg.eval_every == 0 and step != ocfg.updates:
                result = _evaluate(cfg, model, logger, step)
                counters["last_eval_update"] = step
                if result:
                    bar.set_postfix({"success": f"{result['success_rate']:.2f}"}, refresh=False)
            counters["train_seconds"] = time.time() - started
            out_of_time = cfg.train.max_minutes > 0 and counters["train_seconds"] > 60 * cfg.train.max_minutes
            if step % ocfg.checkpoint_every == 0 or step == ocfg.updates or out_of_time or stop.requested:
                save_state(run_dir, cfg, model, optimizer, None, dict(counters, episodes=0))
            bar.update(1)
            if stop.requested:
                raise KeyboardInterrupt("training stopped by a signal; the run was checkpointed")
            if out_of_time:
                break
        if counters["last_eval_update"] != counters["updates"]:
            _evaluate(cfg, model, logger, counters["updates"])
            counters["last_eval_update"] = counters["updates"]
        save_state(run_dir, cfg, model, optimizer, None, dict(counters, episodes=0))
    except TrainingDiverged:  # parameters are still the last good ones (no step was taken)
        save_state(run_dir, cfg, model, optimizer, None, dict(counters, episodes=0))
        raise
    finally:
        stop.restore()
        bar.close()
        logger.close()
    return run_dir
