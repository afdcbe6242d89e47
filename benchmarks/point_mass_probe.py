"""Why goal images of point_mass are hard from 64x64 pixels: measurements that need no trained model.

    MUJOCO_GL=egl python benchmarks/point_mass_probe.py [--image-size 64] [--camera 0] [--json out.json]

Prints one table of facts of the standard render (issue 16's hypotheses):

* ball footprint: pixels that change when the mass is hidden (max channel difference > 8/255), at
  each of the 9 goal positions, and the reconstruction loss the ball is worth: PlaNet's image loss
  ``0.5 * sum (x - x_hat)^2`` over pixels in [-0.5, 0.5] units, for a decoder that draws the
  arena without the ball, against the same loss for the whole frame drawn as mid-grey (the scale a
  decoder starts from);
* the success radius in pixels: centroid shift of the ball's footprint for a 0.03 m move;
* how far the mass gets: displacement under full force along x (from rest at the centre) after
  ``--horizons`` agent steps at the env's action repeat, against the goals' mean distance from
  random starts (uniform in the arena, as the env's reset);
* how much of the frame changes at all across random positions (the background is static: only
  the ball moves, so every pixel-space signal about the state is the ball's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def render_at(env, xy, hide_mass: bool = False) -> np.ndarray:
    """uint8 ``[H, W, 3]`` of the mass at rest at ``xy`` (target hidden, as goal images)."""
    physics = env.physics
    rgba = physics.named.model.geom_rgba
    alpha = float(rgba["pointmass", 3])
    if hide_mass:
        rgba["pointmass", 3] = 0.0
    state = np.zeros(physics.get_state().shape)
    state[:2] = xy
    env.set_state(state)
    image = env.render().permute(1, 2, 0).numpy().copy()
    rgba["pointmass", 3] = alpha
    return image


def footprint(with_ball: np.ndarray, without: np.ndarray) -> np.ndarray:
    """Bool ``[H, W]``: pixels where the ball changes the image (max channel difference > 8/255)."""
    return np.abs(with_ball.astype(np.int16) - without.astype(np.int16)).max(-1) > 8


def loss_units(a: np.ndarray, b: np.ndarray) -> float:
    """PlaNet's image loss between two uint8 images: ``0.5 * sum((a - b) / 255)^2`` over pixels and channels."""
    d = (a.astype(np.float64) - b.astype(np.float64)) / 255.0
    return float(0.5 * (d**2).sum())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--camera", type=int, default=0, help="dm_control camera id (point_mass: 0 = overhead)")
    parser.add_argument("--horizons", type=int, nargs="+", default=[5, 10, 20, 40, 60, 80])
    parser.add_argument("--starts", type=int, default=200, help="random starts for the mean goal distance")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from envs.dmc import DMCEnv
    from envs.goals import goal_states, place_target

    env = DMCEnv("point_mass", "easy", image_size=args.image_size, camera=args.camera, seed=0)
    env.reset()
    place_target(env, "point_mass", np.zeros(2), visible=False)
    goals = goal_states("point_mass")[:, :2]
    background = render_at(env, goals[0], hide_mass=True)
    grey = np.full_like(background, 128)
    pixels, ball_loss, centroids = [], [], []
    for xy in goals:
        image = render_at(env, xy)
        mask = footprint(image, background)
        pixels.append(int(mask.sum()))
        ball_loss.append(loss_units(image, background))
        ys, xs = np.nonzero(mask)
        centroids.append((xs.mean(), ys.mean()) if len(xs) else (np.nan, np.nan))
    frame_loss = loss_units(render_at(env, goals[4]), grey)

    shift = []
    for xy in goals:
        a, b = render_at(env, xy), render_at(env, xy + np.array([0.03, 0.0]))
        ma, mb = footprint(a, background), footprint(b, background)
        ca = np.array(np.nonzero(ma)[::-1]).mean(1)
        cb = np.array(np.nonzero(mb)[::-1]).mean(1)
        shift.append(float(np.linalg.norm(cb - ca)))
    px_per_m = float(np.mean(shift)) / 0.03

    # how far full force moves the mass from rest at the centre, per planning horizon
    physics = env.physics
    repeat = env.action_repeat
    reach = {}
    for h in args.horizons:
        env.set_state(np.zeros(physics.get_state().shape))
        for _ in range(h * repeat):
            physics.set_control(np.array([1.0, 0.0]))
            physics.step()
        reach[h] = float(physics.data.qpos[0])
    rng = np.random.default_rng(0)
    starts = rng.uniform(-0.29, 0.29, size=(args.starts, 2))
    goal_dist = float(np.linalg.norm(starts[:, None] - goals[None], axis=-1).mean())

    # whole-frame change across random positions: which pixels ever differ from the background
    changed = np.zeros(background.shape[:2], bool)
    for xy in rng.uniform(-0.25, 0.25, size=(50, 2)):
        changed |= footprint(render_at(env, xy), background)
    env.close()

    result = {
        "image_size": args.image_size, "camera": args.camera, "action_repeat": repeat,
        "ball_pixels": pixels, "ball_loss": ball_loss, "frame_loss_vs_grey": frame_loss,
        "success_radius_px": 0.03 * px_per_m, "px_per_m": px_per_m,
        "full_force_displacement_m": reach, "mean_goal_distance_m": goal_dist,
        "frame_fraction_ever_changed": float(changed.mean()),
    }  # fmt: skip
    h, w = background.shape[:2]
    print(f"point_mass at {w}x{h}, camera {args.camera}, action repeat {repeat}")
    print("| fact | value |\n|---|---|")
    print(f"| ball footprint (pixels changed by the mass, 9 goals) | {min(pixels)}-{max(pixels)} of {h * w} "
          f"({100 * np.mean(pixels) / (h * w):.2f} %) |")
    print(f"| image loss the ball is worth (0.5 sum sq, [-0.5,0.5] units) | {np.mean(ball_loss):.2f} |")
    print(f"| image loss of a mid-grey frame (scale at initialisation) | {frame_loss:.1f} |")
    print(f"| success radius 0.03 m in pixels | {0.03 * px_per_m:.2f} px ({px_per_m:.0f} px/m) |")
    for k, v in reach.items():
        print(f"| full-force displacement after {k} agent steps ({k * repeat} env steps) | {v:.3f} m |")
    print(f"| mean start-to-goal distance (random starts) | {goal_dist:.3f} m |")
    print(f"| pixels that ever change across 50 random positions | {100 * changed.mean():.1f} % of the frame |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
