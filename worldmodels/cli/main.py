"""``worldmodels train|eval|plan|imagine|goals|collect``: argument parsing; the bodies are in ``commands``.

Torch and the library are imported only after the arguments parsed, so ``--help`` and argument
errors answer at once. Every user error (bad config key, missing file, wrong image) is printed as one sentence
(``error: ...``) with exit status 2, not as a traceback (set WORLDMODELS_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldmodels", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a world model (and its agent) on a config")
    p.add_argument("config", nargs="?", help="YAML config, e.g. configs/planet_cartpole_cpu.yaml")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.total_episodes=20")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--run-dir", help="where to write the run (default runs/<method>_<task>_<seed>_<time>)")
    p.set_defaults(command_name="train_command")

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
    p.set_defaults(command_name="eval_command")

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
    p.set_defaults(command_name="plan_command")

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
    p.set_defaults(command_name="imagine_command")

    p = sub.add_parser("goals", help="write the goal images of a goal task set (inputs for plan --goal)")
    p.add_argument("task_set", help="point_mass, reacher, roboyoga_walker or roboyoga_quadruped")
    p.add_argument("--out", required=True, help="directory for the PNGs")
    p.add_argument("--image-size", type=int, default=64)
    p.set_defaults(command_name="goals_command")

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
    p.set_defaults(command_name="collect_cli_command")

    p = sub.add_parser("repair", help="rebuild a damaged run directory's config.yaml and replay/replay.json")
    p.add_argument("run_dir", help="the run directory to repair (not while it trains)")
    p.set_defaults(command_name="repair_command")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from worldmodels.cli import commands
    from worldmodels.core.config import ConfigError
    from worldmodels.core.interface import CapabilityError
    from worldmodels.training.step import TrainingDiverged

    try:
        return getattr(commands, args.command_name)(args)
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
