"""The training loop, top to bottom: seed episodes -> (update model -> collect) ... with evals.

Schedule (PlaNet, Hafner et al. 2019, Algorithm 1): collect ``seed_episodes`` random episodes,
then repeat: C = ``updates_per_episode`` updates, (evaluate,) checkpoint, collect one episode
with the agent. The loop's position is *derived* from what is durable -- the number of episodes
on disk in the replay and the update counter in the last checkpoint -- so a run killed at any
point resumes where it was: updates owed for an episode that landed just before the crash are
made up, and no completed episode is lost.

Acting never trains and training never acts: ``collect_episode``/``evaluate`` run the agent
under ``torch.inference_mode`` (inside the agent); ``update`` only touches replay batches.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tensordict import TensorDict
from tqdm.auto import tqdm

from envs import make_env
from worldmodels.training import checkpoint
from worldmodels.core import keys
from worldmodels.core.config import RunConfig, load_config, save_config, to_dict
from worldmodels.methods import make_agent, make_behaviour, make_model, make_model_optimizer, resolve_device
from worldmodels.training.logger import Logger
from worldmodels.data.collect import collect_episode, episode_frames, episode_return
from worldmodels.data.replay import SequenceReplay


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good state was checkpointed."""


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag that the loop checks between updates and episodes.

    Ctrl-C (or a scheduler's SIGTERM) then checkpoints the run at a consistent point -- never in the
    middle of an optimiser step -- and ends it with ``KeyboardInterrupt``; a second Ctrl-C stops at
    once. Outside the main thread (where handlers cannot be installed) it is a no-op flag.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


@dataclass
class Run:
    """Everything a training run holds; built by :func:`build_run`."""

    cfg: RunConfig
    run_dir: Path
    device: torch.device
    env: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    behaviour: object | None
    replay: SequenceReplay
    logger: Logger
    counters: dict = field(default_factory=lambda: {"updates": 0, "last_eval_episode": -1, "train_seconds": 0.0})


# ----------------------------------------------------------------------------- set-up


def default_run_dir(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    task = f"{cfg.env.domain}_{cfg.env.task}" if cfg.env.suite == "dmc" else cfg.env.suite
    return Path("runs") / f"{cfg.method}_{task}_{cfg.seed}_{stamp}"


def build_run(cfg: RunConfig, run_dir: Path) -> Run:
    """Construct env, model, optimiser, behaviour learner, replay and logger for ``cfg``."""
    device = resolve_device(cfg.device)
    env = make_env(cfg.env, seed=cfg.seed)
    action_dim = env.action_spec.shape[-1]
    image_shape = tuple(env.observation_spec[keys.PIXELS].shape[-3:])
    model = make_model(cfg, action_dim, image_shape).to(device)
    optimizer = make_model_optimizer(cfg.model, model)
    behaviour = make_behaviour(cfg, model)
    if behaviour is not None:
        behaviour.to(device)
    replay = SequenceReplay(
        run_dir / "replay",
        capacity=cfg.replay.capacity,
        device=device,
    )
    logger = Logger(run_dir, tensorboard=cfg.log.tensorboard)
    return Run(cfg, run_dir, device, env, model, optimizer, behaviour, replay, logger)


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "latest.pt"


def save_state(run_dir: Path, cfg: RunConfig, model, optimizer, behaviour, counters: dict) -> None:
    """Atomically checkpoint model, optimiser, behaviour learner, counters and RNG states.

    The payload is what :func:`load_trained` (eval / plan / imagine) reads, for online and offline runs.
    """
    payload = {
        "config": to_dict(cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "behaviour": behaviour.state_dict() if behaviour is not None else None,
        "counters": dict(counters),
        "rng": checkpoint.rng_state(),
    }
    checkpoint.save_atomic(payload, checkpoint_path(run_dir))


def save_run(run: Run) -> None:
    """Checkpoint an online run (see :func:`save_state`)."""
    counters = dict(run.counters, episodes=run.replay.episodes_added)
    save_state(run.run_dir, run.cfg, run.model, run.optimizer, run.behaviour, counters)


def restore_run(run: Run) -> None:
    """Load the last checkpoint into ``run`` (model, optimisers, counters, RNG)."""
    state = checkpoint.load(checkpoint_path(run.run_dir), map_location=run.device)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.behaviour is not None and state.get("behaviour") is not None:
        run.behaviour.load_state_dict(state["behaviour"])
    run.counters.update({k: v for k, v in state["counters"].items() if k != "episodes"})
    checkpoint.set_rng_state(state["rng"])


# ----------------------------------------------------------------------------- acting


def evaluate(env, agent, episodes: int, video_path: str | Path | None = None, progress: bool = False) -> dict:
    """Run ``episodes`` episodes without exploration noise; mean/std of returns (+ optional mp4).

    Returns:
        ``{"returns": [...], "mean": float, "std": float}``
    """
    returns, frames = [], []
    for _ in tqdm(range(episodes), desc="eval", disable=not progress, leave=False):
        rollout = collect_episode(env, agent)
        returns.append(episode_return(rollout))
        if video_path is not None:
            frames.append(episode_frames(rollout))
    if video_path is not None:
        from worldmodels.viz.openloop import write_video

        video = torch.cat(frames).permute(0, 2, 3, 1).numpy()
        write_video(video, video_path, fps=20)
    std = statistics.pstdev(returns) if len(returns) > 1 else 0.0
    return {"returns": returns, "mean": statistics.fmean(returns), "std": std}


# ----------------------------------------------------------------------------- learning


def updates_owed(cfg: RunConfig, episodes: int) -> int:
    """Total model updates due once ``episodes`` episodes are in the replay (PlaNet's C per episode)."""
    return cfg.train.updates_per_episode * max(0, episodes - cfg.train.seed_episodes + 1)


def _check_finite(value: torch.Tensor, what: str, update: int) -> None:
    if not torch.isfinite(value):
        raise TrainingDiverged(
            f"The {what} became {value.item()} at update {update}; the run stopped and the last good "
            "state is in checkpoints/latest.pt. Lower model.learning_rate or model.grad_clip and resume."
        )


def gradient_step(model, optimizer, grad_clip: float, batch: TensorDict, index: int):
    """One world-model gradient step on a ``[B, T]`` batch; returns ``(metrics, LossOutput)``.

    Non-finite loss or gradient norm raises :class:`TrainingDiverged` *before* the optimiser
    step, so the parameters stay at their last good values.
    """
    model.train()
    out = model.loss(batch)
    _check_finite(out.loss.detach(), "world-model loss", index)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    _check_finite(grad_norm, "world-model gradient norm", index)
    optimizer.step()
    metrics = {f"train/{k}": v for k, v in out.metrics.items()}
    metrics["train/loss/total"] = out.loss.detach()
    metrics["train/grad_norm/model"] = grad_norm
    return metrics, out


def update(run: Run) -> dict:
    """One update of the world model on a replay batch, then of the behaviour learner (if any)."""
    batch = run.replay.sample(run.cfg.replay.batch_size, run.cfg.replay.sequence_length)
    metrics, out = gradient_step(run.model, run.optimizer, run.cfg.model.grad_clip, batch, run.counters["updates"])
    if run.behaviour is not None:
        if run.cfg.method == "lexa":  # explorer + achiever from the batch's posteriors and embeddings
            behaviour_metrics = run.behaviour.update(out.posterior, out.embed)
        else:
            behaviour_metrics = run.behaviour.update(out.posterior.reshape(-1))
        metrics.update({f"train/{k}": v for k, v in behaviour_metrics.items()})
    run.counters["updates"] += 1
    return metrics


def log_imagination(run: Run, step: int) -> dict:
    """Open-loop video + per-step error curve of replay sequences to TensorBoard; returns the scalars.

    Skipped (empty dict) while no stored episode is long enough for context + horizon.
    """
    from worldmodels.viz.openloop import log_openloop

    lcfg = run.cfg.log
    length = lcfg.openloop_context + lcfg.openloop_horizon
    if int(run.replay.episode_lengths().max()) < length:
        return {}
    batch = run.replay.sample(batch_size=lcfg.openloop_sequences, sequence_length=length)
    run.model.eval()
    with torch.no_grad():
        return log_openloop(run.logger.writer, run.model, batch, step, lcfg.openloop_context, lcfg.openloop_horizon)


def mean_metrics(history: list[dict]) -> dict:
    """Average lists of metric dicts (tensors or floats) into floats, one sync at the end."""
    if not history:
        return {}
    out = {}
    for name in history[0]:
        values = torch.stack([torch.as_tensor(h[name], dtype=torch.float32).detach().cpu() for h in history])
        out[name] = float(values.mean())
    return out


# ----------------------------------------------------------------------------- the loop


def prepare(cfg: RunConfig | None, run_dir: str | Path | None, resume: bool) -> tuple[RunConfig, Path]:
    """Resolve the run directory and config (a resumed run reads its own ``config.yaml``)."""
    if resume:
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no config.yaml); cannot resume.")
        return load_config(run_dir / "config.yaml"), run_dir
    run_dir = Path(run_dir or cfg.run_dir or default_run_dir(cfg))
    if checkpoint_path(run_dir).exists():
        raise FileExistsError(f"{str(run_dir)!r} already holds a run; use --resume {run_dir} to continue it.")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    return cfg, run_dir


def train(cfg: RunConfig | None = None, run_dir: str | Path | None = None, resume: bool = False) -> Path:
    """Train ``cfg`` (or resume the run in ``run_dir``); returns the run directory.

    Methods that learn from a fixed offline dataset (``pldm``) go to
    :func:`worldmodels.training.offline.train_offline`; the others collect their own data here.
    """
    cfg, run_dir = prepare(cfg, run_dir, resume)
    if cfg.method == "pldm":
        from worldmodels.training.offline import train_offline

        return train_offline(cfg, run_dir, resume=resume)
    checkpoint.seed_everything(cfg.seed)
    run = build_run(cfg, run_dir)
    if resume and checkpoint_path(run_dir).exists():
        restore_run(run)
    # A fresh env seed per (re)start, so a resumed run does not replay the same initial states.
    run.env.set_seed(cfg.seed + 1000 * run.replay.episodes_added)
    collect_agent = make_agent(cfg, run.model, run.behaviour, explore=True)
    eval_agent = make_agent(cfg, run.model, run.behaviour, explore=False)
    tcfg = cfg.train
    started = time.time() - run.counters["train_seconds"]
    bar = tqdm(total=tcfg.total_episodes, initial=run.replay.episodes_added, desc=f"{cfg.method}",
               disable=not cfg.log.progress, dynamic_ncols=True, unit="ep")
    postfix: dict = {}
    stop = StopRequest().install()

    def must_stop() -> bool:
        out_of_time = tcfg.max_minutes > 0 and time.time() - started > 60 * tcfg.max_minutes
        return out_of_time or stop.requested

    try:
        while True:
            episodes = run.replay.episodes_added
            env_steps = (run.replay.rows_added - episodes) * run.env.action_repeat
            if episodes < tcfg.seed_episodes:
                if stop.requested:  # every finished episode is already on disk
                    raise KeyboardInterrupt("training stopped by a signal during the seed episodes")
                rollout = collect_episode(run.env, None)
                run.replay.add_rollout(rollout)
                run.logger.scalars({"train/episode/return": episode_return(rollout)}, env_steps)
                bar.update(1)
                continue
            history = []
            while run.counters["updates"] < updates_owed(cfg, episodes) and not must_stop():
                history.append(update(run))  # owed updates cut short here are made up on resume
                if len(history) % 10 == 0:
                    bar.set_postfix(postfix | {"loss": f"{float(history[-1]['train/loss/total']):.1f}"}, refresh=True)
            if history:
                run.logger.scalars(mean_metrics(history), env_steps)
            if stop.requested:  # skip evals: checkpoint now
                run.counters["train_seconds"] = time.time() - started
                save_run(run)
                raise KeyboardInterrupt("training stopped by a signal; the run was checkpointed")
            if cfg.log.openloop_every and episodes % cfg.log.openloop_every == 0 and history:
                run.logger.scalars(log_imagination(run, env_steps), env_steps)
            if cfg.method == "lexa" and cfg.lexa.goal_eval_every and episodes % cfg.lexa.goal_eval_every == 0 \
                    and run.counters["last_eval_episode"] != episodes:
                from worldmodels.training.lexa_hooks import log_goal_success

                postfix["success"] = f"{log_goal_success(run, env_steps):.2f}"
                run.counters["last_eval_episode"] = episodes
            elif tcfg.eval_every and episodes % tcfg.eval_every == 0 and run.counters["last_eval_episode"] != episodes:
                evals_done = run.counters.get("evals", 0)
                video = None
                if cfg.log.video_every and evals_done % cfg.log.video_every == 0:
                    video = run_dir / "videos" / f"eval_episode_{episodes:05d}.mp4"
                    video.parent.mkdir(exist_ok=True)
                result = evaluate(run.env, eval_agent, tcfg.eval_episodes, video_path=video)
                run.counters["evals"] = evals_done + 1
                run.counters["last_eval_episode"] = episodes
                run.logger.scalars({"eval/episode/return": result["mean"], "eval/episode/return_std": result["std"]}, env_steps)
                postfix["eval"] = f"{result['mean']:.0f}"
            run.counters["train_seconds"] = time.time() - started
            stopping = must_stop()
            if episodes % tcfg.checkpoint_every == 0 or episodes >= tcfg.total_episodes or stopping:
                save_run(run)
            if stop.requested:
                raise KeyboardInterrupt("training stopped by a signal; the run was checkpointed")
            if episodes >= tcfg.total_episodes or stopping:
                break
            if cfg.method == "lexa":
                from worldmodels.training.lexa_hooks import collect_agent as lexa_collect_agent

                collect_agent = lexa_collect_agent(run.behaviour, run.replay, episodes)
            rollout = collect_episode(run.env, collect_agent)
            run.replay.add_rollout(rollout)
            ret = episode_return(rollout)
            postfix["return"] = f"{ret:.0f}"
            run.logger.scalars({"train/episode/return": ret}, env_steps)
            bar.update(1)
            bar.set_postfix(postfix, refresh=True)
    except TrainingDiverged:
        save_run(run)
        raise
    finally:
        stop.restore()
        bar.close()
        run.logger.close()
        run.env.close()
    return run_dir


def load_trained(run_dir: str | Path, device: str | None = None):
    """Load a run's config, env and model (weights from ``checkpoints/latest.pt``) for eval/plan/imagine.

    Returns:
        ``(cfg, env, model, behaviour)``; ``behaviour`` is None for planning methods.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no config.yaml).")
    cfg = load_config(run_dir / "config.yaml")
    dev = resolve_device(device or cfg.device)
    state = checkpoint.load(checkpoint_path(run_dir), map_location=dev)
    env = make_env(cfg.env, seed=cfg.seed + 10_000)
    model = make_model(cfg, env.action_spec.shape[-1], tuple(env.observation_spec[keys.PIXELS].shape[-3:])).to(dev)
    model.load_state_dict(state["model"])
    model.eval()
    behaviour = make_behaviour(cfg, model)
    if behaviour is not None:
        behaviour.to(dev)
        behaviour.load_state_dict(state["behaviour"])
    return cfg, env, model, behaviour
