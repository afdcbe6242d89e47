"""Reference (TF) initialisation vs PyTorch's default: world-model loss after N updates, 3 seeds each.

A cheap proxy for ``model.init`` (``worldmodels/models/init.py``): real DMC rows (cartpole-swingup,
random actions, 64x64 pixels and the observation vector) are collected once; a fixed training batch
``[B, T]`` and a held-out batch from other episodes are drawn from them. For every model row and each
scheme, a model is built with seeds 0..S-1 and trained for N Adam updates (the model's own learning
rate, eps and clip) on the fixed batch; the table shows the total loss before training, after N
updates on the training batch, and on the held-out batch (mean +- std over seeds; lower is better),
and the ratio reference / torch of the final training loss.

Rows (the CPU configs' widths): PlaNet from pixels (``planet_cheetah_cpu``), DreamerV2 from pixels
(``dreamerv2_cartpole_cpu``) and DreamerV2 from the observation vector
(``dreamerv2_cartpole_state_cpu``). The loss is sampled (posterior samples, PlaNet's dequantisation
noise): seeds are shared between the schemes, so both see the same batch and noise sequence.

Usage (from the repo root)::

    python -m benchmarks.bench_init                     # 3 seeds, 40 updates
    python -m benchmarks.bench_init --seeds 5 --updates 100
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from envs.dmc import DMCEnv
from worldmodels.core.config import DreamerConfig, PlaNetConfig
from worldmodels.data.rows import steps_to_rows
from worldmodels.models.dreamer import DreamerV2
from worldmodels.models.planet import PlaNet

ROWS = {
    "planet pixels": (PlaNet, dict(deter_dim=100, stoch_dim=20, hidden_dim=100, cnn_depth=16, reward_layers=2,
                                   reward_units=100), "pixels"),
    "dreamerv2 pixels": (DreamerV2, dict(deter_dim=100, hidden_dim=100, stoch_dim=16, classes=16, cnn_depth=16,
                                         mlp_layers=2, mlp_units=100), "pixels"),
    "dreamerv2 proprio": (DreamerV2, dict(deter_dim=100, hidden_dim=100, stoch_dim=16, classes=16, mlp_layers=2,
                                          mlp_units=100, proprio_layers=3, proprio_units=100), "proprio"),
}  # fmt: skip
CONFIGS = {PlaNet: PlaNetConfig, DreamerV2: DreamerConfig}


def collect_batches(episodes: int, batch: int, length: int, seed: int = 0):
    """``(train, held_out)`` ``[B, T]`` windows of random-action cartpole-swingup episodes (64x64, repeat 8)."""
    env = DMCEnv("cartpole", "swingup", image_size=64, action_repeat=8, episode_length=8 * (length + 8), seed=seed,
                 proprio=True)  # fmt: skip
    torch.manual_seed(seed)
    rows = [steps_to_rows(env.rollout(10_000, break_when_any_done=True)) for _ in range(episodes)]
    env.close()
    gen = torch.Generator().manual_seed(seed)

    def windows(eps):
        picks = []
        for i in range(batch):
            ep = eps[i % len(eps)]
            start = int(torch.randint(0, ep.shape[0] - length + 1, (1,), generator=gen))
            picks.append(ep[start : start + length])
        return torch.stack(picks, 0)  # [B, T]

    half = episodes // 2
    return windows(rows[:half]), windows(rows[half:])


def train_once(cls, sizes: dict, observation: str, scheme: str, seed: int, train, held_out, updates: int):
    """Losses (before, after N updates, held-out after) of one model."""
    torch.manual_seed(seed)
    cfg = CONFIGS[cls](**sizes, init=scheme)
    model = cls(cfg, action_dim=1, observation=observation, proprio_dim=train["proprio"].shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps)
    with torch.no_grad():
        before = model.loss(train).loss.item()
    for _ in range(updates):
        out = model.loss(train)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    with torch.no_grad():
        torch.manual_seed(10_000 + seed)
        after = model.loss(train).loss.item()
        held = model.loss(held_out).loss.item()
    return before, after, held


def _fmt(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):9.2f} +- {sd:7.2f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.time()
    train, held_out = collect_batches(args.episodes, args.batch, args.length)
    print(f"data: {args.episodes} random cartpole-swingup episodes, batches [{args.batch}, {args.length}] "
          f"({time.time() - started:.0f} s); {args.updates} updates, seeds 0..{args.seeds - 1}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    header = f"{'row':18} {'init':9} {'loss before':>20} {'after N (train)':>20} {'held-out':>20} {'ref/torch':>9}"
    print(header)
    print("-" * len(header))
    for name in args.rows:
        cls, sizes, observation = ROWS[name]
        finals = {}
        for scheme in ("torch", "reference"):
            runs = [train_once(cls, sizes, observation, scheme, s, train, held_out, args.updates)
                    for s in range(args.seeds)]  # fmt: skip
            before, after, held = (list(x) for x in zip(*runs))
            finals[scheme] = statistics.mean(after)
            ratio = f"{finals[scheme] / finals['torch']:9.3f}" if scheme == "reference" else ""
            print(f"{name:18} {scheme:9} {_fmt(before):>20} {_fmt(after):>20} {_fmt(held):>20} {ratio:>9}", flush=True)
    print(f"total {time.time() - started:.0f} s wall, {time.process_time():.0f} s CPU")


if __name__ == "__main__":
    main()
