"""The online loop, top to bottom: seed episodes, then (updates -> evaluate -> checkpoint -> collect) ...

Schedule (PlaNet, Hafner et al. 2019, Algorithm 1): collect ``seed_episodes`` random episodes,
then repeat: C = ``updates_per_episode`` updates, (evaluate,) checkpoint, collect one episode
with the agent. The loop's position is *derived* from what is durable -- the number of episodes
on disk in the replay and the update counter in the last checkpoint -- so a run killed at any
point resumes where it was: updates owed for an episode that landed just before the crash are
made up, and no completed episode is lost.

Acting never trains and training never acts: agents act under ``torch.inference_mode`` (inside
the agent); updates only touch replay batches. What differs between methods (the model, the
behaviour learner, which agent collects an episode, what an evaluation measures) comes in as a
:class:`MethodParts` from ``worldmodels.methods``; the loop names no method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm

from envs import make_env
from worldmodels.core import keys
from worldmodels.core.config import RunConfig
from worldmodels.data.collect import collect_episode, episode_return
from worldmodels.data.replay import SequenceReplay
from worldmodels.evaluation.returns import evaluate
from worldmodels.training import checkpoint
from worldmodels.training.logger import Logger
from worldmodels.training.run_dir import Counters, prepare, resolve_device, restore_state, save_state
from worldmodels.training.step import StopRequest, TrainingDiverged, learner_update, make_model_optimizer, mean_metrics
from worldmodels.viz.openloop import log_openloop


class MethodParts(Protocol):
    """What the online loop asks of a method; ``worldmodels.methods.Method`` provides it."""

    def make_model(self, cfg: RunConfig, action_dim: int, image_shape: tuple[int, int, int]): ...

    def make_behaviour(self, cfg: RunConfig, model): ...

    def make_agent(self, cfg: RunConfig, model, behaviour, explore: bool): ...

    def collect_agent(self, run: "OnlineRun", episode: int):
        """The agent that collects training episode number ``episode``."""

    def eval_every(self, cfg: RunConfig) -> int:
        """Evaluate every this many collected episodes (0 = never)."""

    def evaluate(self, run: "OnlineRun", step: int) -> dict[str, str]:
        """Run and log one evaluation at env step ``step``; returns progress-bar entries."""


@dataclass
class OnlineRun:
    """Everything an online run holds; built by :func:`build_run`."""

    cfg: RunConfig
    run_dir: Path
    method: MethodParts
    device: torch.device
    env: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    behaviour: object | None
    replay: SequenceReplay
    logger: Logger
    counters: Counters = field(default_factory=Counters)

    @property
    def env_steps(self) -> int:
        """Environment steps collected so far, as the papers count them (action repeat included)."""
        return (self.replay.rows_added - self.replay.episodes_added) * self.env.action_repeat


def build_run(cfg: RunConfig, run_dir: Path, method: MethodParts) -> OnlineRun:
    """Construct env, model, optimiser, behaviour learner, replay and logger for ``cfg``."""
    device = resolve_device(cfg.device)
    env = make_env(cfg.env, seed=cfg.seed)
    action_dim = env.action_spec.shape[-1]
    image_shape = tuple(env.observation_spec[keys.PIXELS].shape[-3:])
    model = method.make_model(cfg, action_dim, image_shape).to(device)
    behaviour = method.make_behaviour(cfg, model)
    if behaviour is not None:
        behaviour.to(device)
    replay = SequenceReplay(run_dir / "replay", capacity=cfg.replay.capacity, device=device)
    logger = Logger(run_dir, tensorboard=cfg.log.tensorboard)
    optimizer = make_model_optimizer(cfg.model, model)
    return OnlineRun(cfg, run_dir, method, device, env, model, optimizer, behaviour, replay, logger)


def save_run(run: OnlineRun, started: float) -> None:
    run.counters.train_seconds = time.time() - started
    run.counters.episodes = run.replay.episodes_added
    save_state(run.run_dir, run.cfg, run.model, run.optimizer, run.behaviour, run.counters)


def updates_owed(cfg: RunConfig, episodes: int) -> int:
    """Total model updates due once ``episodes`` episodes are in the replay (PlaNet's C per episode)."""
    return cfg.train.updates_per_episode * max(0, episodes - cfg.train.seed_episodes + 1)


def evaluate_returns(run: OnlineRun, step: int) -> dict[str, str]:
    """The default evaluation: ``train.eval_episodes`` episodes without exploration noise, their mean
    and std return logged as ``eval/episode/return(_std)``; every ``log.video_every``-th evaluation
    also writes ``videos/eval_episode_XXXXX.mp4``."""
    cfg = run.cfg
    video = None
    if cfg.log.video_every and run.counters.evals % cfg.log.video_every == 0:
        video = run.run_dir / "videos" / f"eval_episode_{run.replay.episodes_added:05d}.mp4"
        video.parent.mkdir(exist_ok=True)
    agent = run.method.make_agent(cfg, run.model, run.behaviour, explore=False)
    result = evaluate(run.env, agent, cfg.train.eval_episodes, video_path=video)
    run.logger.scalars({"eval/episode/return": result["mean"], "eval/episode/return_std": result["std"]}, step)
    return {"eval": f"{result['mean']:.0f}"}


def log_imagination(run: OnlineRun, step: int) -> None:
    """Open-loop video + per-step error curve of replay sequences to TensorBoard (and their scalars
    to the log); skipped while no stored episode is long enough for context + horizon."""
    log = run.cfg.log
    length = log.openloop_context + log.openloop_horizon
    if int(run.replay.episode_lengths().max()) < length:
        return
    batch = run.replay.sample(log.openloop_sequences, length)
    run.model.eval()
    with torch.no_grad():
        scalars = log_openloop(run.logger.writer, run.model, batch, step, log.openloop_context, log.openloop_horizon)
    run.logger.scalars(scalars, step)


class Progress:
    """The progress bar, the wall clock and the stop request of one (re)start of a run."""

    def __init__(self, run: OnlineRun):
        cfg = run.cfg
        self.run = run
        self.started = time.time() - run.counters.train_seconds
        self.stop = StopRequest().install()
        self.postfix: dict[str, str] = {}
        self.bar = tqdm(total=cfg.train.total_episodes, initial=run.replay.episodes_added, desc=cfg.method,
                        disable=not cfg.log.progress, dynamic_ncols=True, unit="ep")  # fmt: skip

    def out_of_time(self) -> bool:
        minutes = self.run.cfg.train.max_minutes
        return minutes > 0 and time.time() - self.started > 60 * minutes

    def must_stop(self) -> bool:
        return self.out_of_time() or self.stop.requested

    def show(self, **entries: str) -> None:
        self.postfix.update(entries)
        self.bar.set_postfix(self.postfix, refresh=True)

    def close(self) -> None:
        self.stop.restore()
        self.bar.close()


def collect(run: OnlineRun, progress: Progress, agent) -> None:
    """Collect one episode with ``agent`` (random actions when None) into the replay and log its return."""
    step = run.env_steps
    rollout = collect_episode(run.env, agent)
    run.replay.add_rollout(rollout)
    episode_reward = episode_return(rollout)
    run.logger.scalars({"train/episode/return": episode_reward}, step)
    progress.bar.update(1)
    progress.show(**{"return": f"{episode_reward:.0f}"})


def make_up_updates(run: OnlineRun, progress: Progress) -> list[dict]:
    """Run the updates owed for the episodes in the replay, until done or asked to stop."""
    owed = updates_owed(run.cfg, run.replay.episodes_added)
    history = []
    while run.counters.updates < owed and not progress.must_stop():
        history.append(learner_update(run.cfg, run.model, run.optimizer, run.behaviour, run.replay, run.counters.updates))
        run.counters.updates += 1
        if len(history) % 10 == 0:
            progress.show(loss=f"{float(history[-1]['train/loss/total']):.1f}")
    return history


def evaluate_when_due(run: OnlineRun, progress: Progress, updated: bool) -> None:
    """Open-loop imagination and the method's evaluation, on the episodes the config names."""
    cfg, episodes, step = run.cfg, run.replay.episodes_added, run.env_steps
    if cfg.log.openloop_every and episodes % cfg.log.openloop_every == 0 and updated:
        log_imagination(run, step)
    eval_every = run.method.eval_every(cfg)
    if eval_every and episodes % eval_every == 0 and run.counters.last_eval != episodes:
        progress.show(**run.method.evaluate(run, step))
        run.counters.evals += 1
        run.counters.last_eval = episodes


def train_online(cfg: RunConfig | None, run_dir, method: MethodParts, resume: bool = False) -> Path:
    """Train ``cfg`` collecting its own data (or resume the run in ``run_dir``); returns the run directory."""
    cfg, run_dir = prepare(cfg, run_dir, resume)
    checkpoint.seed_everything(cfg.seed)
    run = build_run(cfg, run_dir, method)
    if resume:
        run.counters = restore_state(run_dir, run.model, run.optimizer, run.behaviour, run.device)
    run.env.set_seed(cfg.seed + 1000 * run.replay.episodes_added)  # a resumed run sees new initial states
    progress = Progress(run)
    try:
        while run.replay.episodes_added < cfg.train.seed_episodes:
            if progress.stop.requested:  # every finished episode is already on disk
                raise KeyboardInterrupt("training stopped by a signal during the seed episodes")
            collect(run, progress, agent=None)
        while True:
            history = make_up_updates(run, progress)  # owed updates cut short are made up on resume
            if history:
                run.logger.scalars(mean_metrics(history), run.env_steps)
            if progress.stop.requested:  # skip evaluations: checkpoint now
                save_run(run, progress.started)
                raise KeyboardInterrupt("training stopped by a signal; the run was checkpointed")
            evaluate_when_due(run, progress, updated=bool(history))
            episodes = run.replay.episodes_added
            finished = episodes >= cfg.train.total_episodes or progress.must_stop()
            if episodes % cfg.train.checkpoint_every == 0 or finished:
                save_run(run, progress.started)
            if progress.stop.requested:
                raise KeyboardInterrupt("training stopped by a signal; the run was checkpointed")
            if finished:
                break
            collect(run, progress, run.method.collect_agent(run, episodes))
    except TrainingDiverged:  # parameters are still the last good ones (no step was taken)
        save_run(run, progress.started)
        raise
    finally:
        progress.close()
        run.logger.close()
        run.env.close()
    return run_dir
