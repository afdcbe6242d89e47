"""World-model update speed and memory: worldmodels' PlaNet vs torchrl's Dreamer world model.

Both models are built at equal sizes (deter/belief 200, stoch/state 30, hidden 200, conv depth 32,
64x64x3 images, reward MLP 3 x 300, action dim 6) and timed on the same update: loss forward,
backward and an Adam step, on a random batch of B sequences x T steps.

* ours:    ``PlaNet(PlaNetConfig(), 6).loss(batch)`` (uint8 pixels in; quantisation and the
  preprocessing are part of the timed update).
* torchrl: ``ObsEncoder``/``ObsDecoder``/``RSSMPrior``/``RSSMPosterior`` + ``MLP`` reward, wired by
  ``torchrl.trainers.helpers.models._dreamer_make_world_model`` exactly as torchrl's Dreamer
  helper (``make_dreamer``) and example do, with ``DreamerModelLoss`` (free nats 3); float pixels in.

Timing: both models are built in one process and their updates alternate (ours, torchrl, ours,
...) after ``--warmup`` updates each, so both see the same background load on this shared machine;
the speed-up is the median over rounds of (torchrl time / our time), for wall time and for process
CPU time. Compare ratios, not absolute times.

Memory: each model then runs two updates in a fresh subprocess; ``peak MiB`` is the growth of the
process's peak resident set (``VmHWM``, see :func:`peak_rss_kib`) from just before the
first update (model, optimiser and batch already built) to the end. It captures everything torch
allocates (tracemalloc does not see torch's allocator).

FLOP ceiling: the matmul and convolution FLOPs of one update (forward + backward, counted by
``torch.utils.flop_counter.FlopCounterMode``; elementwise ops, the optimiser and data movement are
not counted) divided by this machine's measured float32 matmul rate per thread (:func:`matmul_gflops`,
by CPU time so the machine's other load does not lower it) give the floor an update cannot beat;
``% of peak`` = floor / measured CPU time per thread, and ``ceiling vs torchrl`` = torchrl's CPU time /
our floor, the speed-up over torchrl if ours ran at the matmul peak.

Usage::

    python benchmarks/bench_model.py                    # sizes 16x50 and 50x50
    python benchmarks/bench_model.py --sizes 16x50 --repeats 3
    python benchmarks/bench_model.py --profile 16x50    # torch.profiler table for ours
    python benchmarks/bench_model.py --threads 1 --no-memory   # speed-up and FLOP ceiling, 1 thread
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from tensordict import TensorDict
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

ACTION_DIM = 6


def random_batch(b: int, t: int, action_dim: int) -> TensorDict:
    """A fixed-seed replay-shaped batch ``[B, T]``: 64x64 uint8 pixels, actions in [-1, 1], rewards."""
    from worldmodels.core import keys

    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        {
            keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=g),
            keys.PREV_ACTION: torch.rand(b, t, action_dim, generator=g) * 2 - 1,
            keys.REWARD: torch.rand(b, t, 1, generator=g),
            keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: torch.zeros_like(is_first),
        },
        batch_size=[b, t],
    )


def build_ours(b: int, t: int):
    from worldmodels.core.config import PlaNetConfig
    from worldmodels.models.planet import PlaNet

    model = PlaNet(PlaNetConfig(), ACTION_DIM)
    batch = random_batch(b, t, ACTION_DIM)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)

    def update():
        out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()
        return out.loss.item()

    return model, update


def build_torchrl(b: int, t: int):
    from torchrl.data import Unbounded
    from torchrl.modules import MLP
    from torchrl.modules.models.model_based import ObsDecoder, ObsEncoder, RSSMPosterior, RSSMPrior
    from torchrl.objectives import DreamerModelLoss
    from torchrl.trainers.helpers.models import _dreamer_make_world_model

    deter, stoch, hidden = 200, 30, 200
    world_model = _dreamer_make_world_model(
        ObsEncoder(channels=32, in_channels=3),
        ObsDecoder(channels=32, latent_dim=deter + stoch),
        RSSMPrior(Unbounded(ACTION_DIM), hidden_dim=hidden, rnn_hidden_dim=deter, state_dim=stoch, action_dim=ACTION_DIM),
        RSSMPosterior(hidden_dim=hidden, state_dim=stoch, rnn_hidden_dim=deter, obs_embed_dim=1024),
        MLP(in_features=deter + stoch, out_features=1, depth=3, num_cells=300, activation_class=nn.ELU),
    )
    loss_module = DreamerModelLoss(world_model)  # free_nats 3 (PlaNet)
    g = torch.Generator().manual_seed(0)
    batch = TensorDict(
        {
            "state": torch.zeros(b, t, stoch),
            "belief": torch.zeros(b, t, deter),
            "action": torch.rand(b, t, ACTION_DIM, generator=g) * 2 - 1,
            "next": {
                "pixels": torch.rand(b, t, 3, 64, 64, generator=g),
                "reward": torch.rand(b, t, 1, generator=g),
            },
        },
        batch_size=[b, t],
    )
    opt = torch.optim.Adam(world_model.parameters(), lr=1e-3, eps=1e-4)

    def update():
        losses, _ = loss_module(batch)
        loss = losses["loss_model_kl"] + losses["loss_model_reco"] + losses["loss_model_reward"]
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        nn.utils.clip_grad_norm_(world_model.parameters(), 1000.0)
        opt.step()
        return loss.item()

    return world_model, update


BUILDERS = {"ours": build_ours, "torchrl": build_torchrl}


def update_flops(name: str, b: int, t: int) -> int:
    """Matmul + convolution FLOPs of one update of ``name`` (forward and backward), by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    _, update = BUILDERS[name](b, t)
    counter = FlopCounterMode(display=False)
    with counter:
        update()
    return counter.get_total_flops()


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an ``n x n @ n x n`` matmul over ``repeats`` (on torch's current threads),
    by process CPU time per thread: on a shared machine wall time would count other processes' turns."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        a @ b
        best = min(best, (time.process_time() - start) / torch.get_num_threads())
    return 2 * n**3 / best / 1e9


def time_interleaved(names: list[str], b: int, t: int, warmup: int, repeats: int) -> dict[str, dict]:
    """Build all models in this process and alternate their updates (ours, torchrl, ours, ...).

    Alternating puts every model under the same background load (the machine is shared), so the
    per-round ratio is fair even when absolute times drift; the reported speed-up is the median of
    the per-round ratios.
    """
    updates = {}
    for name in names:
        torch.manual_seed(0)
        model, updates[name] = BUILDERS[name](b, t)
        updates[name + "/params"] = sum(p.numel() for p in model.parameters())
    for _ in range(warmup):
        for name in names:
            updates[name]()
    rows = {name: {"times": [], "cpu": [], "params": updates[name + "/params"]} for name in names}
    for _ in range(repeats):
        for name in names:
            start, cpu_start = time.perf_counter(), time.process_time()
            updates[name]()
            rows[name]["times"].append(time.perf_counter() - start)
            rows[name]["cpu"].append(time.process_time() - cpu_start)
    return rows


def peak_rss_kib() -> int:
    """Peak resident set of this process in KiB: ``VmHWM`` (reset at exec) or ``ru_maxrss``.

    ``ru_maxrss`` survives fork + exec on Linux (a child started by a big parent reports the parent's
    peak), so the per-process ``VmHWM`` from ``/proc/self/status`` is preferred where it exists.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def memory_worker(name: str, b: int, t: int) -> float:
    """Peak RSS growth (MiB) of two updates in a fresh process, measured after building model and batch."""
    torch.manual_seed(0)
    _, update = BUILDERS[name](b, t)
    before = peak_rss_kib()
    update()
    update()
    return (peak_rss_kib() - before) / 1024


def run_memory_worker(name: str, b: int, t: int, threads: int) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-worker", name, f"{b}x{t}", "--threads", str(threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def profile(b: int, t: int) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    _, update = build_ours(b, t)
    update()
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        update()
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=30))


def parse_size(text: str) -> tuple[int, int]:
    b, t = text.lower().split("x")
    return int(b), int(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["16x50", "50x50"], help="BxT batch sizes")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["ours", "torchrl"], choices=list(BUILDERS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the FLOP count and the matmul-rate measurement")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory subprocesses")
    parser.add_argument("--profile", metavar="BxT", help="print a torch.profiler table of our update and exit")
    parser.add_argument("--memory-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        name, size = args.memory_worker
        print(memory_worker(name, *parse_size(size)))
        return
    if args.profile:
        profile(*parse_size(args.profile))
        return

    print(f"torch {torch.__version__}, threads {args.threads}, load avg {os.getloadavg()[0]:.1f}")
    peak = None if args.no_ceiling or args.memory_only else matmul_gflops()
    if peak is not None:
        print(f"float32 matmul peak (1024^3, best of 5, CPU time): {peak:.1f} GFLOP/s per thread")
    table, ceiling = [], []
    for size in args.sizes:
        b, t = parse_size(size)
        if args.memory_only:
            for name in args.models:
                print(f"  {name:8s} {size:>6s}: peak +{run_memory_worker(name, b, t, args.threads):.0f} MiB", flush=True)
            continue
        rows = time_interleaved(args.models, b, t, args.warmup, args.repeats)
        for name, r in rows.items():
            times = ", ".join(f"{x:.2f}" for x in r["times"])
            print(f"  {name:8s} {size:>6s}: {times} s wall; cpu {', '.join(f'{x:.2f}' for x in r['cpu'])} s", flush=True)
            r["mem"] = None if args.no_memory else run_memory_worker(name, b, t, args.threads)
        ref = rows.get("torchrl")
        for name, r in rows.items():
            speed = cpu_speed = mem = "-"
            if ref is not None:
                speed = f"{statistics.median(x / y for x, y in zip(ref['times'], r['times'])):.2f}x"
                cpu_speed = f"{statistics.median(x / y for x, y in zip(ref['cpu'], r['cpu'])):.2f}x"
                if r["mem"] is not None and ref["mem"]:
                    mem = f"{r['mem'] / ref['mem']:.2f}x"
            mem_text = "-" if r["mem"] is None else f"{r['mem']:.0f}"
            table.append(
                f"| {size} | {name} | {r['params'] / 1e6:.2f} M | {statistics.median(r['times']):.2f} | "
                f"{statistics.median(r['cpu']):.2f} | {mem_text} | "
                f"{speed} | {cpu_speed} | {mem} |"
            )
            if peak is not None:
                flops = update_flops(name, b, t)
                floor = flops / (peak * 1e9 * args.threads)
                measured = statistics.median(r["cpu"]) / args.threads  # CPU time per thread, as the peak
                beyond = "-"
                if ref is not None and name != "torchrl":
                    beyond = f"{statistics.median(ref['cpu']) / args.threads / floor:.2f}x"
                ceiling.append(f"| {size} | {name} | {flops / 1e9:.1f} | {floor:.2f} | {measured:.2f} | "
                               f"{100 * floor / measured:.0f} % | {beyond} |")  # fmt: skip
    if args.memory_only:
        return
    print()
    print("| size | model | params | update s (median wall) | cpu s | peak MiB | speed-up vs torchrl (wall) | (cpu) | memory vs torchrl |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    if ceiling:
        print(f"\nFLOP ceiling at {peak:.1f} GFLOP/s per thread (matmul + conv FLOPs of forward + backward / measured "
              "matmul rate; times are process CPU seconds per thread):")
        print("| size | model | GFLOP per update | floor s | measured cpu s | % of peak | ceiling vs torchrl (torchrl cpu s / floor) |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(ceiling))
    print(f"\nload avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
