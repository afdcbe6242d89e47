"""Agent steps per second of DMC-from-pixels pipelines, side by side in one run (not a test).

Compares, at action repeat 2 and a 64x64 image (the DreamerV2 / LEXA setting):

* ``ours``          -- ``envs.dmc.DMCEnv``: 2 physics steps, ONE render with a reused
                       ``mujoco.Renderer`` (image identical to ``physics.render``);
* ``ours fast``     -- the same with ``fast_render=True`` (no shadows/reflections:
                       a DIFFERENT image, opt-in only);
* ``torchrl 64``    -- torchrl's ``DMControlWrapper(suite env, from_pixels=True,
                       pixels_only=False, render_kwargs=dict(height=64, width=64), frame_skip=2)``.
                       This is the fair torchrl pipeline: ``DMControlEnv(render_kwargs=...)`` raises
                       TypeError in torchrl 0.14.1 (the kwargs go to the task), so the suite env is
                       built here and wrapped. torchrl's ``frame_skip`` renders on EVERY inner step;
* ``torchrl dreamer`` -- what torchrl's Dreamer example builds, ``DMControlEnv(domain, task,
                       from_pixels=True, pixels_only=False, frame_skip=2)``: dm_control's default
                       240x320 render on every inner step. The example then applies
                       ``ToTensorImage`` + ``Resize(64)``; ``Resize`` needs torchvision, which does not
                       import with this CPU torch, so this row OMITS the resize (a lower bound on its
                       cost);
* ``raw``           -- plain dm_control, 2 x ``env.step`` + ``physics.render(64, 64)`` (no torch):
                       the floor for the standard image.

Pipelines are timed in interleaved rounds (the machine is shared and noisy); the table shows the
median time per agent step and the ratio to ``torchrl 64``.

Usage:
    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/bench_env.py [--steps 60] [--rounds 3]

Measured 2026-11-21 (2 vCPU, Mesa llvmpipe, load average ~9 from other jobs, so absolute times are
~2-3x a quiet machine's; ratios are what carries), ms per agent step, cheetah-run / cartpole-swingup:
ours 63.6 / 61.8 (2.1x / 2.3x torchrl 64), ours fast_render 11.5 / 11.0 (11.5x / 12.9x),
torchrl 64 132.2 / 141.7, torchrl dreamer 210.2 / 206.5 (0.63x / 0.69x), raw 78.3 / 63.6.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from dm_control import suite  # noqa: E402
from torchrl.envs.libs.dm_control import DMControlEnv, DMControlWrapper  # noqa: E402

from envs.dmc import DMCEnv  # noqa: E402
from worldmodels.core import keys  # noqa: E402

REPEAT = 2


class TorchRLStepper:
    """Steps a torchrl env with given actions, resetting at episode ends."""

    def __init__(self, env):
        self.env = env
        self.td = env.reset()

    def run(self, actions: torch.Tensor) -> None:
        for action in actions:
            self.td.set(keys.ACTION, action)
            _, self.td = self.env.step_and_maybe_reset(self.td)

    def close(self) -> None:
        self.env.close()


class RawStepper:
    """dm_control without torch: repeat the action, then one ``physics.render`` at the size."""

    def __init__(self, domain: str, task: str, size: int):
        self.env = suite.load(domain, task, task_kwargs={"random": 0})
        self.env.reset()
        self.size = size

    def run(self, actions: torch.Tensor) -> None:
        for action in actions.numpy():
            for _ in range(REPEAT):
                if self.env.step(action).last():
                    self.env.reset()
            self.env.physics.render(self.size, self.size, camera_id=0)

    def close(self) -> None:
        pass


def make_pipelines(domain: str, task: str, size: int) -> dict:
    ours = dict(image_size=size, action_repeat=REPEAT, episode_length=1000, camera=0)
    return {
        "ours": TorchRLStepper(DMCEnv(domain, task, **ours)),
        "ours fast_render": TorchRLStepper(DMCEnv(domain, task, fast_render=True, **ours)),
        "torchrl 64 (fair)": TorchRLStepper(
            DMControlWrapper(
                suite.load(domain, task, task_kwargs={"random": 0}),
                from_pixels=True,
                pixels_only=False,
                render_kwargs={"height": size, "width": size, "camera_id": 0},
                frame_skip=REPEAT,
            )
        ),
        "torchrl dreamer (240x320, no resize)": TorchRLStepper(
            DMControlEnv(domain, task, from_pixels=True, pixels_only=False, frame_skip=REPEAT)
        ),
        "raw dm_control (render once)": RawStepper(domain, task, size),
    }


def bench_task(domain: str, task: str, size: int, steps: int, rounds: int) -> dict:
    """Median ms per agent step for each pipeline on one task."""
    pipelines = make_pipelines(domain, task, size)
    action_dim = suite.load(domain, task).action_spec().shape[0]
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(steps, action_dim, generator=g) * 2 - 1
    for p in pipelines.values():  # warm-up: GL contexts, first renders, caches
        p.run(actions[:5])
    times = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, p in pipelines.items():
            start = time.perf_counter()
            p.run(actions)
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    for p in pipelines.values():
        p.close()
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="agent steps per pipeline per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median taken)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--tasks", nargs="+", default=["cheetah-run", "cartpole-swingup"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"MUJOCO_GL={os.environ['MUJOCO_GL']}, action repeat {REPEAT}, image {args.size}x{args.size}, "
        f"{args.steps} agent steps x {args.rounds} interleaved rounds, median; torch {torch.__version__}"
    )
    header = f"| {'task':<17} | {'pipeline':<37} | {'ms/step':>8} | {'steps/s':>8} | {'vs torchrl 64':>13} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name in args.tasks:
        domain, task = name.split("-", 1)
        result = bench_task(domain, task, args.size, args.steps, args.rounds)
        reference = result["torchrl 64 (fair)"]
        for pipeline, ms in result.items():
            print(
                f"| {name:<17} | {pipeline:<37} | {ms:8.1f} | {1e3 / ms:8.1f} | {reference / ms:12.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
