"""The online loop, top to bottom: seed episodes, then (updates -> evaluate -> checkpoint -> collect) ..., final eval.

Schedule (PlaNet, Hafner et al. 2019, Algorithm 1): collect ``seed_episodes`` random episodes,
then repeat: C = ``updates_per_episode`` updates, (evaluate,) checkpoint, collect one episode
with the agent, until the episode or time budget ends the run; then the final evaluation (outside
the time budget). The loop's position is *derived* from what is durable -- the number of episodes
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

from envs import make_env
from envs.parallel import make_batched_env
from worldmodels.core import keys
from worldmodels.core.config import RunConfig
from worldmodels.data.collect import collect_episode, episode_returns
from worldmodels.data.replay import SequenceReplay
from worldmodels.evaluation.returns import evaluate
from worldmodels.training import checkpoint
from worldmodels.training.distributed import Team, follow, follower_replay_dir
from worldmodels.training.budget import BudgetBar, BudgetSpent, final_eval_current, spent_message, write_final_eval
from worldmodels.training.logger import Logger, read_metrics
from worldmodels.training.run_dir import Counters, prepare, resolve_device, restore_state, save_state
from worldmodels.training.step import (FLOAT32, Precision, StopRequest, TrainingDiverged, interrupts_name,
                                       learner_update, make_model_optimizer, mean_metrics)  # fmt: skip
from worldmodels.training.learner_setup import prepare_learner
from worldmodels.viz.openloop import log_openloop


class MethodParts(Protocol):
    """What the online loop asks of a method; ``worldmodels.methods.Method`` provides it."""

    def make_model(self, cfg: RunConfig, action_dim: int, image_shape: tuple[int, int, int], proprio_dim: int = 0): ...

    def make_behaviour(self, cfg: RunConfig, model): ...

    def make_agent(self, cfg: RunConfig, model, behaviour, explore: bool): ...

    def collect_agent(self, run: "OnlineRun", episode: int):
        """The agent that collects training episode number ``episode``."""

    def eval_every(self, cfg: RunConfig) -> int:
        """Evaluate every this many collected episodes (0 = never)."""

    def evaluate(self, run: "OnlineRun", step: int) -> dict[str, str]:
        """Run and log one evaluation at env step ``step``; returns progress-bar entries (name -> text)."""

    def final_evaluate(self, run: "OnlineRun", step: int) -> dict:
        """Run and log the evaluation when the budget ends the run; returns a dict with a one-line ``summary``."""

    def follow_evaluation(self, run: "OnlineRun", name: str) -> None:
        """A follower's share of the sharded evaluation ``name`` the leader announced (``Team.send_evaluate``)."""


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
    team: Team = field(default_factory=Team)
    """the data-parallel learners this process is one of (a team of one without torchrun)"""
    random_baseline: dict | None = None
    """``eval/random/return(_std)`` of this run once measured (logged once per run)"""
    last_collected: int = 1
    """episodes the last collection committed (``env.num_envs`` at a time): schedules fire on crossing a multiple"""
    precision: Precision = FLOAT32
    """the world-model update's precision (``train.precision``; ``training.learner_setup.prepare_learner``)"""

    @property
    def env_steps(self) -> int:
        """Environment steps collected so far, as the papers count them (action repeat included)."""
        return (self.replay.rows_added - self.replay.episodes_added) * self.env.action_repeat


def env_observation_sizes(env) -> tuple[tuple[int, int, int], int]:
    """``(image_shape (C, H, W), proprio_dim P)`` from an env's observation spec (P = 0 without ``keys.PROPRIO``;
    a DMC env that renders no pixels gives its ``image_shape``, what its ``render()`` would draw)."""
    spec = env.observation_spec
    proprio = int(spec[keys.PROPRIO].shape[-1]) if keys.PROPRIO in spec.keys() else 0
    image_shape = spec[keys.PIXELS].shape[-3:] if keys.PIXELS in spec.keys() else env.image_shape
    return tuple(image_shape), proprio


def build_run(cfg: RunConfig, run_dir: Path, method: MethodParts, team: Team | None = None,
              replay_dir: Path | None = None) -> OnlineRun:  # fmt: skip
    """Construct env, model, optimiser, behaviour learner, replay and logger for ``cfg``.

    A follower of a data-parallel ``team`` keeps its replay in ``replay_dir`` (rank-local) and logs nothing.
    """
    team = team or Team()
    device = team.device(resolve_device(cfg.device))
    env = make_batched_env(cfg.env, seed=cfg.seed) if team.is_leader else make_env(cfg.env, seed=cfg.seed)
    action_dim = env.action_spec.shape[-1]
    model = method.make_model(cfg, action_dim, *env_observation_sizes(env)).to(device)
    behaviour = method.make_behaviour(cfg, model)
    if behaviour is not None:
        behaviour.to(device)
    if team.is_leader:
        replay = SequenceReplay(run_dir / "replay", capacity=cfg.replay.capacity, device=device)
        logger = Logger(run_dir, tensorboard=cfg.log.tensorboard)
    else:
        replay = SequenceReplay(replay_dir, capacity=cfg.replay.capacity, device=device, durable=False)
        logger = None
    optimizer = make_model_optimizer(cfg.model, model)
    team.average_gradients_of(model, behaviour)
    precision = prepare_learner(cfg, model, device)
    return OnlineRun(cfg, run_dir, method, device, env, model, optimizer, behaviour, replay, logger, team=team,
                     random_baseline=logged_random_baseline(run_dir) if team.is_leader else None,
                     precision=precision)  # fmt: skip


def logged_random_baseline(run_dir: Path) -> dict | None:
    """The random-policy baseline an earlier start of this run already logged, if any."""
    for record in read_metrics(run_dir):
        if record.get("eval/random/return") is not None:
            return {"mean": record["eval/random/return"], "std": record.get("eval/random/return_std") or 0.0}
    return None


def save_run(run: OnlineRun, started: float) -> None:
    run.counters.train_seconds = time.time() - started
    run.counters.episodes = run.replay.episodes_added
    save_state(run.run_dir, run.cfg, run.model, run.optimizer, run.behaviour, run.counters)


def updates_owed(cfg: RunConfig, episodes: int) -> int:
    """Total model updates due once ``episodes`` episodes are in the replay (PlaNet's C per episode)."""
    return cfg.train.updates_per_episode * max(0, episodes - cfg.train.seed_episodes + 1)


def returns_from_fixed_starts(run: OnlineRun, agent, episodes: int) -> dict:
    """``episodes`` returns of ``agent`` (random actions when None) on a fresh env seeded like
    ``worldmodels eval``'s, so the agent and random actions start from the same states; the torch RNG
    is forked, so neither the training env nor the training batches see these episodes."""
    cfg = run.cfg
    env = make_env(cfg.env, seed=cfg.seed + 10_000)
    cuda = [run.device] if run.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            return evaluate(env, agent, episodes)
    finally:
        env.close()


def random_baseline(run: OnlineRun, step: int) -> dict:
    """Random actions over ``train.eval_episodes`` episodes, measured and logged once per run as
    ``eval/random/return(_std)`` beside the in-training evaluations it is compared with."""
    if run.random_baseline is None:
        baseline = run.random_baseline = returns_from_fixed_starts(run, None, run.cfg.train.eval_episodes)
        run.logger.scalars({"eval/random/return": baseline["mean"], "eval/random/return_std": baseline["std"]}, step)
    return run.random_baseline


def evaluate_returns(run: OnlineRun, step: int) -> dict[str, str]:
    """The default evaluation: ``train.eval_episodes`` episodes without exploration noise, their mean
    and std return logged as ``eval/episode/return(_std)``; every ``log.video_every``-th evaluation
    also writes ``videos/eval_episode_XXXXX.mp4``. The bar shows it as the noisy estimate it is, with
    its episode count and the random baseline: ``eval 9.5±1.2 (n=2, random 13.9)``."""
    cfg = run.cfg
    video = None
    if cfg.log.video_every and run.counters.evals % cfg.log.video_every == 0:
        video = run.run_dir / "videos" / f"eval_episode_{run.replay.episodes_added:05d}.mp4"
        video.parent.mkdir(exist_ok=True)
    agent = run.method.make_agent(cfg, run.model, run.behaviour, explore=False)
    result = evaluate(run.env, agent, cfg.train.eval_episodes, video_path=video)
    run.logger.scalars({"eval/episode/return": result["mean"], "eval/episode/return_std": result["std"]}, step)
    baseline = random_baseline(run, step)
    n = cfg.train.eval_episodes
    return {"eval": f"eval {result['mean']:.1f}±{result['std']:.1f} (n={n}, random {baseline['mean']:.1f})"}


def final_returns(run: OnlineRun, step: int) -> dict:
    """The default final evaluation: ``train.final_eval_episodes`` episodes of the agent and as many of
    random actions from the same start states, logged as ``final/episode/return(_std)`` and
    ``final/random/return(_std)``."""
    episodes = run.cfg.train.final_eval_episodes
    agent = run.method.make_agent(run.cfg, run.model, run.behaviour, explore=False)
    result = returns_from_fixed_starts(run, agent, episodes)
    random = returns_from_fixed_starts(run, None, episodes)
    run.logger.scalars({"final/episode/return": result["mean"], "final/episode/return_std": result["std"],
                        "final/random/return": random["mean"], "final/random/return_std": random["std"]}, step)  # fmt: skip
    summary = (f"final eval over {episodes} episodes: {result['mean']:.1f} ± {result['std']:.1f} "
               f"(random {random['mean']:.1f} ± {random['std']:.1f})")  # fmt: skip
    return {"summary": summary, "episodes": episodes, "mean_return": result["mean"], "std_return": result["std"],
            "returns": result["returns"], "random_mean_return": random["mean"], "random_std_return": random["std"],
            "random_returns": random["returns"]}  # fmt: skip


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
    """The progress bar (following the budget that will stop the run), the wall clock and the stop
    request of one (re)start of a run."""

    def __init__(self, run: OnlineRun):
        cfg = run.cfg
        self.stop = StopRequest().install()
        self.budget = BudgetBar(run.replay.episodes_added, cfg.train.total_episodes, "ep", cfg.train.max_minutes,
                                run.counters.train_seconds, cfg.method, cfg.log.progress,
                                rate_after=cfg.train.seed_episodes)  # fmt: skip

    @property
    def started(self) -> float:
        return self.budget.started

    def out_of_time(self) -> bool:
        return self.budget.out_of_time()

    def must_stop(self) -> bool:
        return self.out_of_time() or self.stop.requested

    def show(self, **entries: str) -> None:
        self.budget.show(**entries)

    def close(self) -> None:
        self.stop.restore()
        self.budget.close()


def collect(run: OnlineRun, progress: Progress, agent) -> None:
    """Collect one episode with ``agent`` (random actions when None) into the replay and log its return."""
    step = run.env_steps
    rollout = collect_episode(run.env, agent)  # [T], or [N, T] from env.num_envs envs
    committed = run.last_collected = run.replay.add_rollout(rollout)
    run.team.send_episodes(run.replay, committed)
    for episode_reward in episode_returns(rollout):
        run.logger.scalars({"train/episode/return": episode_reward}, step)
    progress.budget.advance(committed)
    progress.show(**{"return": f"return {episode_reward:.0f}"})


def due(run: OnlineRun, every: int) -> bool:
    """Whether the last collection crossed a multiple of ``every`` episodes (``every`` 0 = never);
    with one env that is ``episodes % every == 0``."""
    episodes = run.replay.episodes_added
    return every > 0 and episodes // every > (episodes - run.last_collected) // every


def make_up_updates(run: OnlineRun, progress: Progress) -> list[dict]:
    """Run the updates owed for the episodes in the replay, until done or asked to stop."""
    owed = updates_owed(run.cfg, run.replay.episodes_added)
    history = []
    while run.counters.updates < owed and not progress.must_stop():
        run.team.send_update(run.counters.updates)
        with run.team.averaging():
            history.append(learner_update(run.cfg, run.model, run.optimizer, run.behaviour, run.replay,
                                          run.counters.updates, run.precision))  # fmt: skip
        run.counters.updates += 1
        if len(history) % 10 == 0:
            progress.show(loss=f"loss {float(history[-1]['train/loss/total']):.1f}")
    return history


def evaluate_when_due(run: OnlineRun, progress: Progress, updated: bool) -> None:
    """Open-loop imagination and the method's evaluation, on the episodes the config names."""
    cfg, episodes, step = run.cfg, run.replay.episodes_added, run.env_steps
    if due(run, cfg.log.openloop_every) and updated:
        log_imagination(run, step)
    if due(run, run.method.eval_every(cfg)) and run.counters.last_eval != episodes:
        progress.show(**run.method.evaluate(run, step))
        run.counters.evals += 1
        run.counters.last_eval = episodes


def budget_binding(run: OnlineRun) -> str | None:
    """The budget key that is spent (a resumed run would train no further), or None."""
    cfg, episodes = run.cfg, run.replay.episodes_added
    if cfg.train.max_minutes > 0 and run.counters.train_seconds >= 60 * cfg.train.max_minutes:
        return "train.max_minutes"
    if episodes >= cfg.train.total_episodes and run.counters.updates >= updates_owed(cfg, episodes):
        return "train.total_episodes"
    return None


def train_until_budget(run: OnlineRun) -> None:
    """Seed episodes, then (updates -> evaluate -> checkpoint -> collect) until the episode or time
    budget ends the run (checkpointed), or a signal does (checkpointed, KeyboardInterrupt)."""
    cfg = run.cfg
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
            if due(run, cfg.train.checkpoint_every) or finished:
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


def final_evaluation(run: OnlineRun) -> None:
    """The method's final evaluation, after the budget stopped training (so outside ``max_minutes``),
    written to ``final_eval.json``; Ctrl-C here ends the run already checkpointed, and a resume runs it."""
    cfg, step = run.cfg, run.env_steps
    if cfg.train.final_eval_episodes:
        result = run.method.final_evaluate(run, step)
    else:
        result = {"summary": "no final evaluation (train.final_eval_episodes=0)"}
    write_final_eval(run.run_dir, result, run.counters.updates, run.replay.episodes_added)
    # Checkpointed again (same counters and weights) so that it records the metrics rows just
    # logged: a later resume cuts metrics.jsonl back to the checkpoint and would drop them.
    save_state(run.run_dir, cfg, run.model, run.optimizer, run.behaviour, run.counters)


def train_online(cfg: RunConfig | None, run_dir, method: MethodParts, resume: bool = False,
                 team: Team | None = None) -> Path:  # fmt: skip
    """Train ``cfg`` collecting its own data (or resume the run in ``run_dir``); returns the run directory.

    In a data-parallel ``team`` (torchrun) the leader runs this loop and the followers
    :func:`follow_online` it (``worldmodels.training.distributed``).

    Raises:
        BudgetSpent: a resumed run whose budget is spent and whose final evaluation is done.
        RunInterrupted: a signal stopped the run (a ``KeyboardInterrupt`` naming ``run_dir``).
    """
    team = team or Team()
    if team.is_distributed:
        cfg = team.broadcast(prepare(cfg, run_dir, resume)[0] if team.is_leader else None)
        if not team.is_leader:
            return follow_online(cfg, Path(run_dir), method, team)
    else:
        cfg, run_dir = prepare(cfg, run_dir, resume)
    run_dir = Path(run_dir)
    with interrupts_name(run_dir):
        checkpoint.seed_everything(cfg.seed)
        run = build_run(cfg, run_dir, method, team)
        try:
            if resume:
                run.counters = restore_state(run_dir, run.model, run.optimizer, run.behaviour, run.device)
            team.share_state(run.model, run.optimizer, run.behaviour)
            team.broadcast(run.counters.updates)
            team.send_episodes(run.replay, run.replay.num_episodes)
            if resume:
                spent = budget_binding(run)
                if spent and final_eval_current(run_dir, run.counters.updates, run.replay.episodes_added):
                    team.send_stop()
                    raise BudgetSpent(spent_message(run_dir, spent, cfg))
            run.env.set_seed(cfg.seed + 1000 * run.replay.episodes_added)  # a resumed run sees new initial states
            train_until_budget(run)
            final_evaluation(run)
            team.send_stop()  # only on a clean end: after an error torchrun stops the followers
        finally:
            run.logger.close()
            run.env.close()
            team.close()
    return run_dir


def follow_online(cfg: RunConfig, run_dir: Path, method: MethodParts, team: Team) -> Path:
    """A follower's online run: the leader's model, optimiser and replay (episode by episode), and
    every learner update the leader makes, on batches from this rank's own RNG stream."""
    checkpoint.seed_everything(cfg.seed)  # the same initial weights as the leader (then overwritten by its own)
    with follower_replay_dir(team) as replay_dir:
        run = build_run(cfg, run_dir, method, team, replay_dir)
        try:
            team.share_state(run.model, run.optimizer, run.behaviour)
            team.seed_follower(cfg.seed, team.broadcast(None))

            def update(index: int):
                return learner_update(cfg, run.model, run.optimizer, run.behaviour, run.replay, index, run.precision)

            follow(team, run.replay, update, lambda name: run.method.follow_evaluation(run, name))
        finally:
            run.env.close()
            team.close()
    return run_dir
