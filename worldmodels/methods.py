"""The one table that names methods: ``method: NAME`` in a config -> everything that differs per method.

Each :class:`Method` says which world model to build, which behaviour learner trains beside it
(none for planning methods), how the agent acts, how it reaches goal images, which loop trains it
and what an evaluation during training measures. The training loops, evaluation and the CLI only
read the entry; nothing else in the package compares method names. The model-config class of each
method is ``worldmodels.core.config.MODEL_CONFIGS`` (config loading sits below this module).

Adding a method: its model (``worldmodels/models/``), its model config (``core/config.py`` and its
``MODEL_CONFIGS`` entry), a behaviour if it has one (``planners/``), and one entry in :data:`METHODS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import torch

from envs import make_env
from planners.actor_critic import ImaginationActorCritic
from planners.agents import PolicyAgent
from planners.builder import goal_planning_agent, planning_agent
from planners.lexa_behaviour import LexaBehaviour
from worldmodels.core import keys
from worldmodels.core.config import ConfigError, RunConfig
from worldmodels.core.interface import WorldModel
from worldmodels.evaluation.lexa import achiever_agent_for, achiever_on_goal_set, lexa_scalars
from worldmodels.models.dreamer import DreamerV2
from worldmodels.models.planet import PlaNet
from worldmodels.models.pldm import PLDM
from worldmodels.training.offline import train_offline
from worldmodels.training.budget import extend_budget
from worldmodels.training.distributed import Team
from worldmodels.training.online import OnlineRun, env_observation_sizes, evaluate_returns, final_returns, train_online
from worldmodels.training.run_dir import (
    load_weights,
    open_for_writing,
    prepare,
    read_run_config,
    resolve_device,
    resolve_run_dir,
)


def actor_critic(cfg: RunConfig, model: WorldModel) -> ImaginationActorCritic:
    return ImaginationActorCritic(model, cfg.actor_critic)


def lexa_behaviour(cfg: RunConfig, model: WorldModel) -> LexaBehaviour:
    return LexaBehaviour(model, cfg.actor_critic, cfg.lexa, model_lr=cfg.model.learning_rate)


def standard_collect_agent(run: OnlineRun, episode: int):
    """The method's own agent with exploration noise collects every episode."""
    return run.method.make_agent(run.cfg, run.model, run.behaviour, explore=True)


def lexa_collect_agent(run: OnlineRun, episode: int):
    """LEXA alternates (``expl_every_ep``): the explorer collects every ``lexa.explorer_every``-th
    episode, the achiever practises a goal image drawn uniformly from the replay on the others."""
    behaviour = run.behaviour
    if episode % run.cfg.lexa.explorer_every == 0:
        return PolicyAgent(run.model, behaviour.policy(sample=True))
    goal = run.replay.sample(1, 1)[keys.PIXELS][0, 0]  # [C,H,W]
    return PolicyAgent(run.model, behaviour.achiever_policy(goal, sample=True))


def lexa_evaluate(run: OnlineRun, step: int) -> dict[str, str]:
    """LEXA learns without task reward: the achiever on the goal set, the explorer against random actions."""
    run.team.send_evaluate("goals")  # the followers run their share of the goal episodes
    scalars = lexa_scalars(run.cfg, run.model, run.behaviour, run.replay, run.team)
    run.logger.scalars(scalars, step)
    return {"success": f"goal success {scalars['eval/goal_success']:.2f} (1 episode per goal)"}


def lexa_final_evaluate(run: OnlineRun, step: int) -> dict:
    """LEXA's evaluation when the budget ends the run, logged as ``final/*`` (the same numbers as
    :func:`lexa_evaluate`; random actions reach no goal image, so the explorer is what is compared with random)."""
    task_set = run.cfg.lexa.goal_eval_set or run.cfg.env.goal_set
    if task_set is None:
        return {"summary": f"no final eval (no goal set configured); run: worldmodels eval {run.run_dir} --goals TASKSET"}
    run.team.send_evaluate("goals")
    scalars = {name.replace("eval/", "final/", 1): value for name, value in
               lexa_scalars(run.cfg, run.model, run.behaviour, run.replay, run.team).items()}  # fmt: skip
    run.logger.scalars(scalars, step)
    summary = (f"final eval on the {task_set} goals (1 episode each): success {scalars['final/goal_success']:.2f}, "
               f"reached at some step {scalars['final/goal_reached']:.2f}; explorer intrinsic reward "
               f"{scalars['final/explorer/intrinsic']:.2f} (random {scalars['final/random/intrinsic']:.2f})")  # fmt: skip
    return {"summary": summary, **scalars}


def lexa_follow_evaluation(run: OnlineRun, name: str) -> None:
    """A follower's share of LEXA's goal-set evaluation (the leader sent ``("evaluate", "goals")``)."""
    if name == "goals":
        achiever_on_goal_set(run.cfg, run.model, run.behaviour, run.team)


@dataclass(frozen=True)
class Method:
    """Everything that differs between methods; the loops and the CLI read only this."""

    name: str
    model_class: type
    """world model, built as ``model_class(cfg.model, action_dim=A, image_shape=(C, H, W))`` (+ ``observation``,
    ``proprio_dim`` for a model that reads the observation vector, :meth:`make_model`)"""
    behaviour: Callable[[RunConfig, WorldModel], object] | None = None
    """behaviour learner updated after every model update (``update(loss_output) -> metrics``,
    ``policy(sample)``); None = the agent plans with ``cfg.planner`` on predicted reward"""
    loop: Literal["online", "offline"] = "online"
    """``online``: collects its own episodes (PlaNet Algorithm 1); ``offline``: a fixed dataset"""
    goal_metric: Literal["cosine", "l2"] = "cosine"
    """latent distance when planning toward a goal image (LEXA: cosine; PLDM: squared L2)"""
    goal_steps: Literal["final", "last_k", "all"] = "all"
    """which imagined steps the goal distance sums (LEXA: all; PLDM: the last 3)"""
    goal_features: Literal["sample", "mean"] = "sample"
    """imagined states' features compared with a goal sample (``sample``) or means with the goal's mean"""
    goal_part: Literal["full", "stoch"] = "full"
    """all features, or the stochastic part only (a goal image's ``deter`` is the same for every goal)"""
    goal_hold: int = 1
    """filtering steps of the goal image held still before its features are read (1: from the initial state)"""
    goal_policy: Callable | None = None
    """``(model, behaviour) -> agent_for(goal_pixels)`` when a learned policy reaches goals (LEXA's
    achiever); None = plan toward the goal's latent"""
    task_reward: bool = True
    """False: the method learns without task reward and is evaluated on goal images only"""
    collect: Callable[[OnlineRun, int], object] = standard_collect_agent
    """the agent collecting training episode number ``episode``"""
    training_eval: Callable[[OnlineRun, int], dict] = evaluate_returns
    """the evaluation run during online training"""
    training_eval_every: Callable[[RunConfig], int] = lambda cfg: cfg.train.eval_every
    """its period in collected episodes (0 = never)"""
    final_eval: Callable[[OnlineRun, int], dict] = final_returns
    """the evaluation when the budget ends an online run (returns a dict with a one-line ``summary``)"""
    follow_eval: Callable[[OnlineRun, str], None] | None = None
    """a follower's share of a sharded evaluation the leader announced with ``Team.send_evaluate(name)``"""

    # -- what the online loop asks (training.online.MethodParts)
    def make_model(
        self, cfg: RunConfig, action_dim: int, image_shape: tuple[int, int, int], proprio_dim: int = 0
    ) -> WorldModel:
        """The world model; ``proprio_dim`` P (the env's ``keys.PROPRIO`` size) is passed with
        ``cfg.env.observation`` when the model observes the vector (``proprio`` or ``both``)."""
        if cfg.env.observation == "pixels":
            return self.model_class(cfg.model, action_dim=action_dim, image_shape=image_shape)
        return self.model_class(cfg.model, action_dim=action_dim, image_shape=image_shape,
                                observation=cfg.env.observation, proprio_dim=proprio_dim)  # fmt: skip

    def make_behaviour(self, cfg: RunConfig, model: WorldModel):
        return None if self.behaviour is None else self.behaviour(cfg, model)

    def make_agent(self, cfg: RunConfig, model: WorldModel, behaviour, explore: bool):
        """The acting agent: the behaviour's policy when there is one, else a planner on predicted reward."""
        if behaviour is not None:
            return PolicyAgent(model, behaviour.policy(sample=explore))
        return planning_agent(cfg, model, explore=explore)

    def collect_agent(self, run: OnlineRun, episode: int):
        return self.collect(run, episode)

    def eval_every(self, cfg: RunConfig) -> int:
        return self.training_eval_every(cfg)

    def evaluate(self, run: OnlineRun, step: int) -> dict[str, str]:
        return self.training_eval(run, step)

    def final_evaluate(self, run: OnlineRun, step: int) -> dict:
        return self.final_eval(run, step)

    def follow_evaluation(self, run: OnlineRun, name: str) -> None:
        if self.follow_eval is not None:
            self.follow_eval(run, name)

    # -- goal images
    def goal_agent_for(self, cfg: RunConfig, model: WorldModel, behaviour=None, planner: str | None = None,
                       metric: str | None = None, features: str | None = None, part: str | None = None,
                       hold: int | None = None):  # fmt: skip
        """``agent_for(goal_pixels [C, H, W]) -> agent`` acting toward that goal image (a new agent per goal).

        ``metric``, ``features``, ``part`` and ``hold`` (the goal's ``goal_hold``) choose the latent distance
        (``GoalDistanceObjective``); None takes the method's default. A learned goal policy (LEXA's achiever) ignores them."""
        if self.goal_policy is not None:
            return self.goal_policy(model, behaviour)
        metric = metric or self.goal_metric
        features, part = features or self.goal_features, part or self.goal_part
        hold = hold or self.goal_hold
        return lambda goal_pixels: goal_planning_agent(cfg, model, goal_pixels, metric, self.goal_steps, name=planner,
                                                       features=features, part=part, goal_hold=hold)  # fmt: skip

    def train(self, cfg: RunConfig | None, run_dir, resume: bool, team: Team | None = None) -> Path:
        if self.loop == "offline":
            return train_offline(cfg, run_dir, self, resume=resume, team=team)
        return train_online(cfg, run_dir, self, resume=resume, team=team)


METHODS: dict[str, Method] = {
    "planet": Method("planet", PlaNet),
    "dreamerv2": Method("dreamerv2", DreamerV2, behaviour=actor_critic),
    "lexa": Method(
        "lexa", DreamerV2, behaviour=lexa_behaviour, goal_policy=achiever_agent_for, task_reward=False,
        collect=lexa_collect_agent, training_eval=lexa_evaluate, training_eval_every=lambda cfg: cfg.lexa.goal_eval_every,
        final_eval=lexa_final_evaluate, follow_eval=lexa_follow_evaluation,
    ),
    "pldm": Method("pldm", PLDM, loop="offline", goal_metric="l2", goal_steps="all"),  # PLDM MPPI: running cost
}
"""Every method by its config name. LEXA's model is DreamerV2's with LEXA's defaults (``LexaModelConfig``)."""


def method_of(cfg: RunConfig) -> Method:
    if cfg.method not in METHODS:
        raise ConfigError(f"Unknown method {cfg.method!r}; allowed: {', '.join(METHODS)}.")
    return METHODS[cfg.method]


def train(cfg: RunConfig | None = None, run_dir: str | Path | None = None, resume: bool = False,
          overrides: list[str] = ()) -> Path:  # fmt: skip
    """Train ``cfg`` (or resume the run in ``run_dir``) with its method's loop; returns the run directory.

    The whole run holds the run directory's writer lock (``training.run_dir.open_for_writing``), so a
    second ``train`` on the same directory is refused while this one lives. ``overrides`` (resume
    only) extend the run's budget (``training.budget.BUDGET_KEYS``) in its ``config.yaml``, under
    the lock; a resumed run with nothing left to do raises ``training.budget.BudgetSpent``.

    Started by ``torchrun --nproc_per_node=K``, the K processes train one run data-parallel
    (``training.distributed``): rank 0 reads the config and run directory, holds the lock and writes
    everything; the other ranks get what they need from it.
    """
    team = Team.from_environment()
    try:
        name = None
        if team.is_leader:
            if resume:  # the run's own config names the method
                cfg, _ = prepare(None, run_dir, resume=True)
            elif overrides:
                raise ValueError("overrides without resume belong in load_config(path, overrides).")
            else:
                run_dir = resolve_run_dir(cfg, run_dir)
            name = method_of(cfg).name
        name, run_dir = team.broadcast((name, run_dir))
        with open_for_writing(run_dir) if team.is_leader else contextlib.nullcontext():
            if team.is_leader and resume and overrides:
                extend_budget(run_dir, list(overrides))
            return METHODS[name].train(cfg if not resume else None, run_dir, resume, team)
    finally:
        team.shutdown()


@dataclass
class TrainedRun:
    """What ``eval``, ``plan`` and ``imagine`` need from a finished (or running) run."""

    cfg: RunConfig
    method: Method
    env: object
    model: WorldModel
    behaviour: object | None


def load_trained(run_dir: str | Path, device: str | None = None, render: bool = False) -> TrainedRun:
    """A run's config, a fresh env, and its model and behaviour with the weights of ``checkpoints/latest.pt``
    (``previous.pt``, with a warning, when latest.pt is unreadable). ``render``: the env renders pixels
    even where the run's did not (``env.observation: proprio``; for videos)."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    method = method_of(cfg)
    target = resolve_device(device or cfg.device)
    env_cfg = dataclasses.replace(cfg.env, render=True) if render and not cfg.env.renders() else cfg.env
    env = make_env(env_cfg, seed=cfg.seed + 10_000)
    model = method.make_model(cfg, env.action_spec.shape[-1], *env_observation_sizes(env)).to(target)
    behaviour = method.make_behaviour(cfg, model)
    if behaviour is not None:
        behaviour.to(target)
    load_weights(run_dir, model, behaviour, target)
    return TrainedRun(cfg, method, env, model, behaviour)

