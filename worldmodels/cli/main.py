"""``worldmodels train|eval|plan|imagine|goals|collect`` -- thin calls into the library.

Every user error (bad config key, missing file, wrong image) is printed as one sentence
(``error: ...``) with exit status 2, not as a traceback (set WORLDMODELS_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def _train(args) -> int:
    from worldmodels.core.config import load_config
    from worldmodels.training.online import train

    if args.resume:
        if args.config or args.overrides:
            raise ValueError("--resume RUN_DIR takes no config or overrides; the run's own config.yaml is used.")
        run_dir = train(run_dir=args.resume, resume=True)
    else:
        if not args.config:
            raise ValueError("train needs a CONFIG file (see configs/), or --resume RUN_DIR.")
        cfg = load_config(args.config, args.overrides)
        run_dir = train(cfg, run_dir=args.run_dir)
    print(f"run directory: {run_dir}")
    return 0


def _eval(args) -> int:
    import torch

    from worldmodels.methods import make_agent
    from worldmodels.training.online import evaluate, load_trained

    if args.goals:
        from worldmodels.evaluation.goal_sets import evaluate_goals

        result = evaluate_goals(args.run_dir, args.goals, episodes=args.episodes, planner=args.planner,
                                video_dir=args.video, device=args.device, metric=args.metric)
        print(json.dumps(result, indent=2))
        return 0
    cfg, env, model, behaviour = load_trained(args.run_dir, device=args.device)
    if cfg.method == "lexa":
        env.close()
        raise ValueError("LEXA learns without task reward, so its runs are evaluated on goal images: "
                         "pass --goals TASKSET (point_mass, reacher, roboyoga_walker, roboyoga_quadruped).")  # fmt: skip
    if cfg.env.suite == "two_rooms":  # goal reaching from start/goal pairs (PLDM's protocol)
        from worldmodels.evaluation.two_rooms import evaluate_goal_reaching

        env.close()
        if args.planner:
            cfg = dataclasses.replace(cfg, planner=args.planner)
        result = evaluate_goal_reaching(cfg, model, episodes=args.episodes, progress=True)
        (Path(args.run_dir) / "eval.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    torch.manual_seed(args.seed)
    agent = make_agent(cfg, model, behaviour, explore=False)
    result = evaluate(env, agent, args.episodes, video_path=args.video, progress=True)
    env.close()
    out = {"episodes": args.episodes, "mean_return": result["mean"], "std_return": result["std"],
           "returns": result["returns"]}
    (Path(args.run_dir) / "eval.json").write_text(json.dumps(out, indent=2))
    print(f"return over {args.episodes} episodes: {result['mean']:.1f} +- {result['std']:.1f}")
    if args.video:
        print(f"video: {args.video}")
    return 0


def _plan(args) -> int:
    from worldmodels.evaluation.goal_sets import plan_to_goal

    result = plan_to_goal(args.run_dir, args.goal, planner=args.planner, steps=args.steps,
                          video_path=args.video, resize=args.resize, device=args.device, metric=args.metric)
    print(json.dumps(result, indent=2))
    return 0


def _imagine(args) -> int:
    from worldmodels.viz.report import imagine_run

    result = imagine_run(args.run_dir, episodes=args.episodes, context=args.context, horizon=args.horizon,
                         out=args.out, device=args.device, source=args.source, probe_steps=args.probe_steps)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _goals(args) -> int:
    from envs.goals import goal_set_names, save_goal_images

    if args.task_set not in goal_set_names():
        raise ValueError(f"Unknown goal task set {args.task_set!r}; allowed: {', '.join(goal_set_names())}.")
    for path in save_goal_images(args.task_set, args.out, image_size=args.image_size):
        print(path)
    return 0


def _collect(args) -> int:
    from worldmodels.data.collect import collect_command

    collect_command(
        domain=args.domain, task=args.task, episodes=args.episodes, out=args.out,
        image_size=args.image_size, action_repeat=args.action_repeat,
        episode_length=args.episode_length, seed=args.seed, store_pixels=not args.no_pixels,
    )
    print(f"dataset: {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldmodels", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a world model (and its agent) on a config")
    p.add_argument("config", nargs="?", help="YAML config, e.g. configs/planet_cartpole_cpu.yaml")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.total_episodes=20")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--run-dir", help="where to write the run (default runs/<method>_<task>_<seed>_<time>)")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a trained run's agent")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--video", help="write an mp4 (or, with --goals, a folder of per-goal videos)")
    p.add_argument("--goals", help="goal task set: point_mass, reacher, roboyoga_walker, roboyoga_quadruped")
    p.add_argument("--planner", choices=["cem", "mppi"], default=None)
    p.add_argument("--metric", choices=["cosine", "l2"], default=None,
                   help="latent distance to the goal when planning (default: l2 for pldm, cosine otherwise)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=_eval)

    p = sub.add_parser("plan", help="plan toward a goal image with a trained model")
    p.add_argument("run_dir")
    p.add_argument("--goal", required=True, help="goal image (PNG/JPG), same size as the model's observations")
    p.add_argument("--planner", choices=["cem", "mppi"], default=None)
    p.add_argument("--metric", choices=["cosine", "l2"], default=None,
                   help="latent distance to the goal when planning (default: l2 for pldm, cosine otherwise)")
    p.add_argument("--steps", type=int, default=None, help="agent steps to act (default: one episode)")
    p.add_argument("--video", help="mp4 of the observation beside the goal")
    p.add_argument("--resize", action="store_true", help="resize a goal image of another size to the model's")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_plan)

    p = sub.add_parser("imagine", help="open-loop imagination video and error plot for a trained run")
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=6)
    p.add_argument("--context", type=int, default=5)
    p.add_argument("--horizon", type=int, default=45)
    p.add_argument("--out", default=None, help="FILE.mp4 or FILE.gif (default RUN_DIR/videos/openloop.mp4)")
    p.add_argument("--source", choices=["random", "replay"], default="random",
                   help="held-out fresh random-action episodes (default) or the run's last replay episodes")
    p.add_argument("--probe-steps", type=int, default=2000,
                   help="training steps of the probe decoder for models without a decoder (cached in RUN_DIR/probe.pt)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=_imagine)

    p = sub.add_parser("goals", help="write the goal images of a goal task set (inputs for plan --goal)")
    p.add_argument("task_set", help="point_mass, reacher, roboyoga_walker or roboyoga_quadruped")
    p.add_argument("--out", required=True, help="directory for the PNGs")
    p.add_argument("--image-size", type=int, default=64)
    p.set_defaults(func=_goals)

    p = sub.add_parser("collect", help="collect random-policy episodes from a DMC task into an offline dataset")
    p.add_argument("--domain", default="cartpole")
    p.add_argument("--task", default="swingup")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", required=True, help="dataset directory")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--action-repeat", type=int, default=None)
    p.add_argument("--episode-length", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-pixels", action="store_true", help="store states only; render frames when loading")
    p.set_defaults(func=_collect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from worldmodels.core.interface import CapabilityError
    from worldmodels.core.config import ConfigError
    from worldmodels.training.online import TrainingDiverged

    try:
        return args.func(args)
    except (ConfigError, CapabilityError, FileNotFoundError, FileExistsError, ValueError) as err:
        if os.environ.get("WORLDMODELS_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; resume with: worldmodels train --resume RUN_DIR", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
