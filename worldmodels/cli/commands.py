"""The bodies of ``worldmodels train|eval|plan|goals|collect`` (``imagine`` is in ``cli/imagine.py``).

Each takes the parsed arguments, calls the library, prints the result and returns the exit status.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from envs.goals import goal_set_names, num_goals, save_goal_images
from worldmodels.cli.imagine import imagine_run
from worldmodels.core import keys
from worldmodels.core.config import load_config
from worldmodels.core.paths import writable_directory, writable_file
from worldmodels.data.collect import collect_command, episode_steps
from worldmodels.evaluation.goal_images import load_goal_image
from worldmodels.evaluation.goal_sets import act_toward_goal, make_goal_set_env, run_goal_set
from worldmodels.evaluation.returns import evaluate, evaluate_seeded
from worldmodels.evaluation.two_rooms import evaluate_goal_reaching
from worldmodels.methods import load_trained, train
from worldmodels.training.budget import BudgetSpent, read_final_eval
from worldmodels.training.distributed import Team, is_follower_process
from worldmodels.training.run_dir import read_run_config, repair_run

VIDEO_SUFFIXES = (".mp4", ".gif")


def train_command(args) -> int:
    try:
        if args.resume:  # argparse reads the first KEY=VALUE after --resume RUN as the config
            overrides = ([args.config] if args.config else []) + list(args.overrides)
            run_dir = train(run_dir=args.resume, resume=True, overrides=overrides)
        else:
            if not args.config:
                raise ValueError("train needs a CONFIG file (see configs/), or --resume RUN_DIR.")
            run_dir = train(load_config(args.config, args.overrides), run_dir=args.run_dir)
    except BudgetSpent as spent:
        print(spent)
        return 0
    if is_follower_process():  # torchrun: rank 0 reports for the run
        return 0
    print(f"run directory: {run_dir}")
    final = read_final_eval(run_dir)
    if final is not None:
        print(final["summary"])
    return 0


def evaluate_goals(run_dir, task_set: str, episodes: int = 1, planner: str | None = None, video_dir=None,
                   device=None, metric: str | None = None, team=None, features: str | None = None,
                   part: str | None = None, hold: int | None = None) -> dict:  # fmt: skip
    """``worldmodels eval --goals TASKSET``: success rate per goal and overall, measured from state
    (``run_goal_set``), acting with the method's goal agent (a planner, or LEXA's achiever). With a
    ``team`` (``torchrun``) the goals' episodes are split across its ranks and gathered once."""
    trained = load_trained(run_dir, device=device)
    trained.env.close()
    agent_for = trained.method.goal_agent_for(trained.cfg, trained.model, trained.behaviour, planner, metric,
                                                features, part, hold)  # fmt: skip
    return run_goal_set(trained.cfg, task_set, agent_for, episodes, video_dir, team=team)


def check_video_path(video, folder: bool = False) -> None:
    """Refuse an unwritable ``--video`` (a file, or with ``folder`` a folder) before any work starts."""
    if video is None:
        return
    if folder:
        writable_directory(video, "--video")  # with --goals: a folder of per-goal videos
    else:
        writable_file(video, "--video", VIDEO_SUFFIXES)


def no_task_reward_message(method: str) -> str:
    """What to do with a run that learned without task reward (what eval measures by default)."""
    return (f"This {method} run learned without task reward, so it is evaluated on goal images: "
            f"pass --goals SET ({', '.join(goal_set_names())}).")  # fmt: skip


def eval_command(args) -> int:
    """``worldmodels eval``; under ``torchrun --nproc_per_node=K`` the K processes split the episodes
    (goal sets and DMC returns; Two Rooms runs on rank 0 alone) and rank 0 alone prints and writes."""
    check_video_path(args.video, folder=bool(args.goals))
    team = Team.from_environment()
    try:
        return evaluate_command(args, team)
    finally:
        team.shutdown()


def evaluate_command(args, team: Team) -> int:
    if args.goals:
        result = evaluate_goals(args.run_dir, args.goals, episodes=args.episodes, planner=args.planner,
                                video_dir=args.video, device=args.device, metric=args.metric, team=team,
                                features=args.features, part=args.part, hold=args.goal_hold)  # fmt: skip
        if team.is_leader:
            print(json.dumps(result, indent=2))
        return 0
    if not team.is_leader and read_run_config(args.run_dir).env.suite == "two_rooms":
        return 0  # Two Rooms' goal reaching is not split: rank 0 runs it alone
    trained = load_trained(args.run_dir, device=args.device, render=bool(args.video))
    cfg, env = trained.cfg, trained.env
    if cfg.env.suite == "two_rooms":  # goal reaching from start/goal pairs (PLDM's protocol)
        env.close()
        if args.planner:
            cfg = dataclasses.replace(cfg, planner=args.planner)
        result = evaluate_goal_reaching(cfg, trained.model, episodes=args.episodes, progress=True)
        (Path(args.run_dir) / "eval.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    if not (trained.method.task_reward and trained.model.has_reward):  # e.g. LEXA, or PLDM on a DMC task
        env.close()
        raise ValueError(no_task_reward_message(cfg.method))
    agent = trained.method.make_agent(cfg, trained.model, trained.behaviour, explore=False)
    try:
        if env.batch_size.numel() == 1:  # episode i from env seed cfg.seed + 10_000 + i, torch seed --seed + i
            result = evaluate_seeded(env, agent, args.episodes, cfg.seed + 10_000, args.seed, team=team,
                                     video_path=args.video if team.is_leader else None, progress=True)  # fmt: skip
        elif team.is_distributed:
            raise ValueError("torchrun splits eval episodes across processes of one env each; "
                             "pass env.num_envs=1 to the run's config or run eval in one process.")  # fmt: skip
        else:  # env.num_envs > 1: N episodes at a time on the run's workers
            torch.manual_seed(args.seed)
            result = evaluate(env, agent, args.episodes, video_path=args.video, progress=True)
    finally:
        env.close()
    if not team.is_leader:
        return 0
    out = {"episodes": args.episodes, "mean_return": result["mean"], "std_return": result["std"],
           "returns": result["returns"]}  # fmt: skip
    (Path(args.run_dir) / "eval.json").write_text(json.dumps(out, indent=2))
    print(f"return over {args.episodes} episodes: {result['mean']:.1f} +- {result['std']:.1f}")
    if args.video:
        print(f"video: {args.video}")
    return 0


def plan_to_goal(run_dir, goal: str, planner: str | None = None, steps: int | None = None, video_path=None,
                 resize: bool = False, device=None, metric: str | None = None, features: str | None = None,
                 part: str | None = None, hold: int | None = None) -> dict:  # fmt: skip
    """``worldmodels plan``: act toward a goal image; report the latent distances (and success).

    ``goal`` is an image file, or ``TASKSET:INDEX`` (e.g. ``point_mass:3``) to use a goal of a goal
    task set, in which case success is measured from the true state. Planning methods plan toward
    the goal's latent (CEM/MPPI); LEXA runs act with their achiever.
    """
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be an integer >= 1, got {steps}.")
    task_set, goal_index = parse_goal(goal)
    check_video_path(video_path)
    trained = load_trained(run_dir, device=device)
    cfg, env, model = trained.cfg, trained.env, trained.model
    if task_set is not None:
        env.close()
        env = make_goal_set_env(cfg, task_set, goal_index)
        goal_pixels = env.reset()[keys.GOAL_PIXELS]
    else:
        goal_pixels = load_goal_image(goal, model.image_shape, resize=resize)
    agent_for = trained.method.goal_agent_for(cfg, model, trained.behaviour, planner, metric, features, part, hold)
    agent = agent_for(goal_pixels)
    try:
        return act_toward_goal(env, model, agent, goal_pixels, steps or episode_steps(env), task_set, goal_index,
                               video_path)  # fmt: skip
    finally:
        env.close()


def parse_goal(goal: str) -> tuple[str | None, int | None]:
    """``--goal``: ``(None, None)`` for an image file, ``(task set, index)`` for ``TASKSET:INDEX``.

    Raises ValueError (one sentence) for a missing file that is no ``TASKSET:INDEX`` either, an
    unknown task set, or an index that is not an integer in the set's range.
    """
    if Path(goal).exists() or ":" not in goal:
        return None, None  # an image file (load_goal_image says if it is missing or unreadable)
    task_set, index = goal.split(":", 1)
    if task_set not in goal_set_names():
        raise ValueError(f"--goal {goal!r} is neither an existing image file nor TASKSET:INDEX with a goal task set "
                         f"({', '.join(goal_set_names())}).")  # fmt: skip
    last = num_goals(task_set) - 1
    if not (index.strip().isdigit() and int(index) <= last):
        raise ValueError(f"--goal {goal!r}: the goal index after ':' must be an integer 0..{last}, e.g. {task_set}:3.")
    return task_set, int(index)


def plan_command(args) -> int:
    result = plan_to_goal(args.run_dir, args.goal, planner=args.planner, steps=args.steps, video_path=args.video,
                          resize=args.resize, device=args.device, metric=args.metric, features=args.features,
                          part=args.part, hold=args.goal_hold)  # fmt: skip
    print(json.dumps(result, indent=2))
    return 0


def imagine_command(args) -> int:
    result = imagine_run(args.run_dir, episodes=args.episodes, context=args.context, horizon=args.horizon,
                         out=args.out, device=args.device, source=args.source, probe_steps=args.probe_steps)  # fmt: skip
    print(json.dumps(result, indent=2, default=str))
    return 0


def goals_command(args) -> int:
    if args.task_set not in goal_set_names():
        raise ValueError(f"Unknown goal task set {args.task_set!r}; allowed: {', '.join(goal_set_names())}.")
    writable_directory(args.out, "--out")
    for path in save_goal_images(args.task_set, args.out, image_size=args.image_size):
        print(path)
    return 0


def collect_cli_command(args) -> int:
    collect_command(domain=args.domain, task=args.task, episodes=args.episodes, out=args.out,
                    image_size=args.image_size, action_repeat=args.action_repeat,
                    episode_length=args.episode_length, seed=args.seed, store_pixels=not args.no_pixels)  # fmt: skip
    print(f"dataset: {args.out}")
    return 0


def repair_command(args) -> int:
    for line in repair_run(args.run_dir):
        print(line)
    return 0
