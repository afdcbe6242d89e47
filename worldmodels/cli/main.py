"""``worldmodels train|eval|plan|imagine|goals|collect``: argument parsing; the bodies are in ``commands``.

Torch and the library are imported only after the arguments parsed, so ``--help`` and argument
errors answer at once. Every user error (bad config key, missing file, wrong image) is printed as one sentence
(``error: ...``) with exit status 2, not as a traceback (set WORLDMODELS_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

DESCRIPTION = (
    "Latent world models from pixels: train one, evaluate it, plan toward goal images, watch its "
    "imagination, write goal images, collect datasets."
)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--episodes 0`` or ``--steps -1`` would do nothing or fail late)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _device(text: str) -> str:
    """argparse type: a torch device name the toolkit accepts (auto, cpu, cuda, cuda:N)."""
    from worldmodels.core.config import DEVICE_CHOICES, is_device_name  # no torch: config needs only yaml

    if not is_device_name(text):
        raise argparse.ArgumentTypeError(f"must be {DEVICE_CHOICES}, got {text!r}")
    return text


DEVICE_HELP = "auto (a GPU when present), cpu, cuda or cuda:N (default: the run's config)"
RUN_DIR_HELP = "a run directory written by 'worldmodels train' (holds config.yaml and checkpoints/)"
METRIC_HELP = "latent distance to the goal when planning (default: l2 for pldm, cosine otherwise)"
FEATURES_HELP = ("sample: imagined features against a posterior sample of the goal; mean: imagined means/modes "
                 "against the goal's posterior mean (default: the method's, sample)")
PART_HELP = ("full: all features; stoch: the stochastic part only, since a goal image's deterministic state is the "
             "same for every goal (default: the method's, full)")
HOLD_HELP = ("filter the goal image K times, held still with zero actions, before reading its features (RSSM "
             "models), so its deterministic state is the goal's own at rest (default: the method's, 1)")
PLANNER_HELP = "planner toward the goal (default: the run's config; LEXA runs act with their achiever)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldmodels", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a world model (and its agent) on a config")
    p.add_argument("config", nargs="?", help="YAML config, e.g. configs/planet_cheetah_cpu.yaml")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.total_episodes=20")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its last checkpoint; budget overrides after it extend a finished run "
                        "(train.total_episodes=N, train.max_minutes=M, offline.updates=U)")  # fmt: skip
    p.add_argument("--run-dir", help="where to write the run (default runs/<method>_<task>_<seed>_<time>)")
    p.set_defaults(command_name="train_command")

    p = sub.add_parser("eval", help="evaluate a trained run's agent")
    p.add_argument("run_dir", help=RUN_DIR_HELP)
    p.add_argument("--episodes", type=_positive_int, default=5,
                   help="episodes to run (with --goals: episodes per goal) (default: 5)")  # fmt: skip
    p.add_argument("--video", help="write an mp4 (or, with --goals, a folder of per-goal videos)")
    p.add_argument("--goals", metavar="SET", help="goal task set: point_mass, reacher, roboyoga_walker, roboyoga_quadruped")
    p.add_argument("--planner", choices=["cem", "mppi", "icem", "gradient"], default=None,
                   help="how the agent acts (default: the run's config)")  # fmt: skip
    p.add_argument("--metric", choices=["cosine", "l2"], default=None, help=METRIC_HELP)
    p.add_argument("--features", choices=["sample", "mean"], default=None, help=FEATURES_HELP)
    p.add_argument("--part", choices=["full", "stoch"], default=None, help=PART_HELP)
    p.add_argument("--goal-hold", type=_positive_int, default=None, metavar="K", help=HOLD_HELP)
    p.add_argument("--seed", type=int, default=0, help="torch seed of the agent's sampling (default: 0)")
    p.add_argument("--device", type=_device, default=None, help=DEVICE_HELP)
    p.set_defaults(command_name="eval_command")

    p = sub.add_parser("plan", help="plan toward a goal image with a trained model")
    p.add_argument("run_dir", help=RUN_DIR_HELP)
    p.add_argument("--goal", required=True,
                   help="goal image (PNG/JPG/.npy, same size as the model's observations), or TASKSET:INDEX, "
                        "e.g. point_mass:3, for a goal of a goal task set (success measured from state)")  # fmt: skip
    p.add_argument("--planner", choices=["cem", "mppi", "icem", "gradient"], default=None, help=PLANNER_HELP)
    p.add_argument("--metric", choices=["cosine", "l2"], default=None, help=METRIC_HELP)
    p.add_argument("--features", choices=["sample", "mean"], default=None, help=FEATURES_HELP)
    p.add_argument("--part", choices=["full", "stoch"], default=None, help=PART_HELP)
    p.add_argument("--goal-hold", type=_positive_int, default=None, metavar="K", help=HOLD_HELP)
    p.add_argument("--steps", type=_positive_int, default=None, help="agent steps to act (default: one episode)")
    p.add_argument("--video", help="mp4 or gif of the observation beside the goal")
    p.add_argument("--resize", action="store_true", help="resize a goal image of another size to the model's")
    p.add_argument("--device", type=_device, default=None, help=DEVICE_HELP)
    p.set_defaults(command_name="plan_command")

    p = sub.add_parser("imagine", help="open-loop imagination video and error plot for a trained run")
    p.add_argument("run_dir", help=RUN_DIR_HELP)
    p.add_argument("--episodes", type=_positive_int, default=6, help="sequences shown side by side (default: 6)")
    p.add_argument("--context", type=_positive_int, default=5,
                   help="frames the model observes before imagining (default: 5)")  # fmt: skip
    p.add_argument("--horizon", type=_positive_int, default=45, help="open-loop prediction steps (default: 45)")
    p.add_argument("--out", default=None, help="FILE.mp4 or FILE.gif (default RUN_DIR/videos/openloop.mp4)")
    p.add_argument("--source", choices=["random", "replay"], default="random",
                   help="held-out fresh random-action episodes (default) or the run's last replay episodes")
    p.add_argument("--probe-steps", type=int, default=2000,
                   help="training steps of the probe decoder for models without a decoder (cached in RUN_DIR/probe.pt)")
    p.add_argument("--device", type=_device, default=None, help=DEVICE_HELP)
    p.set_defaults(command_name="imagine_command")

    p = sub.add_parser("goals", help="write the goal images of a goal task set (inputs for plan --goal)")
    p.add_argument("task_set", help="point_mass, reacher, roboyoga_walker or roboyoga_quadruped")
    p.add_argument("--out", required=True, help="directory for the PNGs")
    p.add_argument("--image-size", type=int, default=64, help="square image side in pixels (default: 64)")
    p.set_defaults(command_name="goals_command")

    p = sub.add_parser("collect", help="collect random-policy episodes from a DMC task into an offline dataset")
    p.add_argument("--domain", default="cartpole", help="dm_control domain (default: cartpole)")
    p.add_argument("--task", default="swingup", help="task of the domain (default: swingup)")
    p.add_argument("--episodes", type=_positive_int, default=10, help="episodes to collect (default: 10)")
    p.add_argument("--out", required=True, help="dataset directory (appended to if it holds a dataset)")
    p.add_argument("--image-size", type=int, default=64, help="square image side in pixels (default: 64)")
    p.add_argument("--action-repeat", type=_positive_int, default=None,
                   help="env steps per agent step (default: PlaNet's value for the domain)")  # fmt: skip
    p.add_argument("--episode-length", type=_positive_int, default=1000,
                   help="env steps per episode (default: 1000)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the env and the random actions (default: 0)")
    p.add_argument("--no-pixels", action="store_true", help="store states only; render frames when loading")
    p.set_defaults(command_name="collect_cli_command")

    p = sub.add_parser("repair", help="rebuild a damaged run directory's config.yaml and replay/replay.json")
    p.add_argument("run_dir", help="the run directory to repair (not while it trains)")
    p.set_defaults(command_name="repair_command")
    return parser


class _DropLogRecord(logging.Filter):
    """Drops log records whose message contains ``fragment``."""

    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _quiet_third_party() -> None:
    """Silence, for the command only, what says nothing to its user (after the library imported
    torchrl, which sets its logger's level when imported): dm_control's absl warning that cheetah's
    XML uses the deprecated ``settotalmass`` attribute (a record of absl's logger, not a Python
    warning, so a logging filter drops it and absl's other warnings stay), and torchrl's INFO lines
    (written to stdout, inside the progress bar and the JSON a command prints; its warnings stay)."""
    absl = logging.getLogger("absl")
    if not any(isinstance(f, _DropLogRecord) for f in absl.filters):
        absl.addFilter(_DropLogRecord("'settotalmass' is deprecated"))
    logging.getLogger("torchrl").setLevel(logging.WARNING)


def _plain_library_warnings() -> None:
    """Show the library's own warnings (e.g. a checkpoint fallback) as one ``warning: ...`` line,
    without the file, line and source text Python prints; other warnings keep their format."""
    import warnings

    default = warnings.showwarning
    if getattr(default, "plain_library_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("worldmodels."):
            print(f"warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    show.plain_library_warnings = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options too (``train CONFIG --run-dir RUN a.b=1``), which argparse
    # alone does not allow once an option has ended the positional run
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from worldmodels.cli import commands
    from worldmodels.core.config import ConfigError
    from worldmodels.core.interface import CapabilityError
    from worldmodels.training.step import RunInterrupted, TrainingDiverged

    _quiet_third_party()
    _plain_library_warnings()
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
    except RunInterrupted as err:
        print(f"interrupted; resume with: worldmodels train --resume {err.run_dir}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
