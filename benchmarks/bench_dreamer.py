"""Time one DreamerV2 world-model update and one imagination actor-critic update.

Usage::

    python -m benchmarks.bench_dreamer                 # dmc_vision sizes, batch 16 x 50 (from the repo root)
    python -m benchmarks.bench_dreamer --size cpu      # the small sizes a CPU config can afford
    python -m benchmarks.bench_dreamer --device cuda --repeats 10

Prints medians in seconds. The actor-critic starts from all B*T posteriors (DreamerV2) and imagines
``actor_critic.horizon`` steps. Random pixels: speed does not depend on content.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tensordict import TensorDict

from planners.actor_critic import ImaginationActorCritic
from worldmodels import keys
from worldmodels.config import ActorCriticConfig, DreamerConfig
from worldmodels.dreamer import DreamerV2
from worldmodels.factory import make_model_optimizer

SIZES = {
    "dmc_vision": (DreamerConfig(), ActorCriticConfig(), 16, 50),
    "cpu": (
        DreamerConfig(deter_dim=128, hidden_dim=128, stoch_dim=16, classes=16, cnn_depth=16, mlp_layers=2, mlp_units=200),
        ActorCriticConfig(layers=2, units=200),
        16,
        32,
    ),
}


def _batch(b: int, t: int, action_dim: int, device: torch.device) -> TensorDict:
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        {
            keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8),
            keys.PREV_ACTION: torch.rand(b, t, action_dim) * 2 - 1,
            keys.REWARD: torch.rand(b, t, 1),
            keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: torch.zeros_like(is_first),
        },
        batch_size=[b, t],
    ).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="dmc_vision")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = leave as is)")
    parser.add_argument("--action-dim", type=int, default=6)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model_cfg, ac_cfg, b, t = SIZES[args.size]
    model = DreamerV2(model_cfg, action_dim=args.action_dim).to(device)
    behaviour = ImaginationActorCritic(model, ac_cfg).to(device)
    opt = make_model_optimizer(model.config, model)
    batch = _batch(b, t, args.action_dim, device)
    wm_times, ac_times = [], []
    for _ in range(args.repeats + 1):  # the first round warms up
        _sync(device)
        t0 = time.perf_counter()
        out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), model_cfg.grad_clip)
        opt.step()
        _sync(device)
        t1 = time.perf_counter()
        behaviour.update(out.posterior)
        _sync(device)
        t2 = time.perf_counter()
        wm_times.append(t1 - t0)
        ac_times.append(t2 - t1)
    print(f"size={args.size} batch={b}x{t} device={device} threads={torch.get_num_threads()}")
    print("| update | median s |")
    print("|---|---|")
    print(f"| world model (loss + backward + step) | {statistics.median(wm_times[1:]):.3f} |")
    print(f"| actor-critic ({b * t} starts, H={ac_cfg.horizon}) | {statistics.median(ac_times[1:]):.3f} |")


if __name__ == "__main__":
    main()
