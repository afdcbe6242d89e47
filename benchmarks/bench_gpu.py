"""Learner speed on a GPU: world-model updates/s on synthetic batches at paper sizes, eager vs the
``train.compile`` / ``train.precision`` switches (``worldmodels.training.step``).

    python benchmarks/bench_gpu.py                       # CUDA, PlaNet 50x50 and DreamerV2 16x50, < 8 min
    python benchmarks/bench_gpu.py --modes eager fp16    # a subset
    python benchmarks/bench_gpu.py --tiny --device cpu   # tiny models on a CPU (what the test runs)

Rows (one per model x mode): updates/s (median of per-update times after warm-up, CUDA-synchronised),
ms per update, peak GPU memory, the loss of the last update (a sanity check that the modes
train the same thing), and the first call's seconds (compile time shows there).

* models: ``planet`` = ``PlaNet(PlaNetConfig())`` (paper sizes) on B=50 x T=50; ``dreamerv2`` =
  ``DreamerV2(DreamerConfig())`` (dmc_vision sizes) on B=16 x T=50, world model only; ``dreamerv2+ac``
  adds the imagination actor-critic update (``ActorCriticConfig()``: 4 x 400, horizon 15, from all
  B x T posteriors), DreamerV2's whole learner step.
* modes: ``eager`` float32; ``fp16`` float16 autocast + GradScaler (DreamerV2 ``precision: 16``; CUDA
  only); ``bf16`` bfloat16 autocast; ``compile`` networks compiled in place (``compile_networks``);
  ``compile+fp16``; ``graph`` the whole update (forward, backward, clip) replayed as one CUDA graph
  (``train.cuda_graph``; CUDA only), ``graph+bf16``. Compiled and graphed modes warm up longer.
* the batch is built on the device once (uint8 64x64 pixels), so the rows time the update only; the
  host-to-device copy of one replay batch is timed on its own (pageable vs pinned memory).

CUDA graphs capture the whole update, not one scan step (``worldmodels/training/cuda_graph.py`` says
why); they have never run on a GPU in this project, so their row is the first check of that path.

Needs torch, numpy, PyYAML and tensordict (the models' data format) and this repository; nothing that
needs dm_control, MuJoCo, torchrl or matplotlib is imported. Each mode stops timing after
``--seconds`` and the whole run skips what is left once ``--budget`` seconds are spent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402

MODELS = ("planet", "dreamerv2", "dreamerv2+ac")
MODES = ("eager", "fp16", "bf16", "compile", "compile+fp16", "graph", "graph+bf16")
PAPER_SIZES = {"planet": (50, 50), "dreamerv2": (16, 50), "dreamerv2+ac": (16, 50)}
"""(B, T) per model: PlaNet batch 50 x 50; DreamerV2 dmc_vision batch 16 x 50"""
ACTION_DIM = 6
TINY_PLANET = dict(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=1)
TINY_DREAMER = dict(deter_dim=16, hidden_dim=16, stoch_dim=4, classes=4, cnn_depth=4, mlp_layers=1, mlp_units=16)
TINY_AC = dict(horizon=3, layers=1, units=16)


def synthetic_batch(b: int, t: int, device) -> "TensorDict":
    """A replay-shaped batch ``[B, T]`` on ``device``: uint8 64x64 pixels, actions in [-1, 1], rewards."""
    from tensordict import TensorDict

    from worldmodels.core import keys

    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    batch = TensorDict({
        keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=g),
        keys.ACTION: torch.rand(b, t, ACTION_DIM, generator=g) * 2 - 1,
        keys.PREV_ACTION: torch.rand(b, t, ACTION_DIM, generator=g) * 2 - 1,
        keys.REWARD: torch.rand(b, t, 1, generator=g),
        keys.IS_FIRST: is_first,
        keys.IS_TERMINAL: torch.zeros_like(is_first),
    }, batch_size=[b, t])  # fmt: skip
    return batch.to(device)


def build(model_name: str, mode: str, tiny: bool, device):
    """``(update() -> loss float, parameter count)`` for one model and mode."""
    from worldmodels.core.config import ActorCriticConfig, DreamerConfig, PlaNetConfig
    from worldmodels.models.dreamer import DreamerV2
    from worldmodels.models.planet import PlaNet
    from worldmodels.training.step import Precision, compile_networks, gradient_step, make_model_optimizer

    torch.manual_seed(0)
    if model_name == "planet":
        cfg = PlaNetConfig(**(TINY_PLANET if tiny else {}))
        model = PlaNet(cfg, ACTION_DIM).to(device)
    else:
        cfg = DreamerConfig(**(TINY_DREAMER if tiny else {}))
        model = DreamerV2(cfg, ACTION_DIM).to(device)
    behaviour = None
    if model_name == "dreamerv2+ac":
        from planners.actor_critic import ImaginationActorCritic

        behaviour = ImaginationActorCritic(model, ActorCriticConfig(**(TINY_AC if tiny else {}))).to(device)
    parts = mode.split("+")
    precision = Precision(16 if "fp16" in parts else "bf16" if "bf16" in parts else 32, device)
    if "compile" in parts:
        compile_networks(model)
    if "graph" in parts:
        from worldmodels.training.cuda_graph import GraphedUpdate, check_graphable

        check_graphable(model, device, precision)
        precision.graph = GraphedUpdate(model, precision)
    optimizer = make_model_optimizer(cfg, model)
    b, t = (4, 8) if tiny else PAPER_SIZES[model_name]
    batch = synthetic_batch(b, t, device)
    params = sum(p.numel() for module in (model, behaviour) if module is not None for p in module.parameters())

    def update() -> float:
        metrics, out = gradient_step(model, optimizer, cfg.grad_clip, batch, 0, precision)
        if behaviour is not None:
            behaviour.update(out)
        return metrics["train/loss/total"]

    return update, params, (b, t)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_mode(model_name: str, mode: str, args, device) -> dict:
    """Build, warm up (the first call timed on its own: compile time) and time one model x mode."""
    row = {"model": model_name, "mode": mode}
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    update, row["params"], row["size"] = build(model_name, mode, args.tiny, device)
    start = time.perf_counter()
    update()
    sync(device)
    row["first_call_s"] = time.perf_counter() - start
    # compiled backward / optimizer graphs settle; a CUDA graph runs 3 eager updates, then captures
    warmup = args.warmup + (2 if "compile" in mode else 0) + (4 if "graph" in mode else 0)
    for _ in range(warmup):
        update()
    sync(device)
    times, loss, deadline = [], None, time.perf_counter() + args.seconds
    while len(times) < args.repeats and (len(times) < 2 or time.perf_counter() < deadline):
        start = time.perf_counter()
        loss = update()
        sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    row.update(updates=len(times), ms=1000 * median, updates_per_s=1 / median, loss=float(loss))
    if torch.device(device).type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def copy_times(b: int, t: int, device, repeats: int = 5) -> dict:
    """Milliseconds to move one replay batch's pixels ``[B, T, 3, 64, 64]`` uint8 host -> device:
    from pageable memory (what ``tensor.to(device)`` of a fresh CPU batch does) and from pinned memory."""
    pixels = torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8)
    out = {}
    for name, source in (("pageable", pixels), ("pinned", pixels.pin_memory())):
        times = []
        for _ in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            source.to(device, non_blocking=name == "pinned")
            sync(device)
            times.append(time.perf_counter() - start)
        out[name] = 1000 * statistics.median(times[1:])
    return out


def format_rows(rows: list[dict]) -> str:
    lines = ["| model | BxT | mode | updates/s | ms/update | vs eager | first call s | peak MiB | loss |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    eager = {r["model"]: r for r in rows if r["mode"] == "eager" and "ms" in r}
    for r in rows:
        size = "x".join(map(str, r.get("size", ("?", "?"))))
        if "ms" not in r:
            lines.append(f"| {r['model']} | {size} | {r['mode']} | - | - | - | - | - | {r.get('skipped', '')} |")
            continue
        ratio = f"{eager[r['model']]['ms'] / r['ms']:.2f}x" if r["model"] in eager else "-"
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-"
        lines.append(f"| {r['model']} | {size} | {r['mode']} | {r['updates_per_s']:.2f} | {r['ms']:.1f} | {ratio} | "
                     f"{r['first_call_s']:.1f} | {peak} | {r['loss']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models and batch (4 x 8): a CPU smoke run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="timed updates per row (at most)")
    parser.add_argument("--seconds", type=float, default=20.0, help="stop timing a row after this long (>= 2 updates)")
    parser.add_argument("--budget", type=float, default=360.0, help="skip the rows left after this many seconds")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; run with --tiny --device cpu for the CPU smoke run.")
    try:
        import tensordict  # noqa: F401
    except ImportError:
        raise SystemExit("bench_gpu needs tensordict (the models' data format): install it, or carry a wheel that "
                         "matches this torch, with its orjson and pyvers.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {name}, threads {torch.get_num_threads()}, tiny={args.tiny}", flush=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as training.learner_setup.prepare_learner sets it; TF32 left at torch's defaults
    started = time.perf_counter()
    # cheap modes first, so a tight budget drops compiled rows, not the baseline
    order = sorted(args.modes, key=lambda m: (m.startswith("compile"), MODES.index(m)))
    rows = []
    for mode in order:
        for model_name in args.models:
            skipped = {"model": model_name, "mode": mode, "size": (4, 8) if args.tiny else PAPER_SIZES[model_name]}
            if time.perf_counter() - started > args.budget:
                rows.append({**skipped, "skipped": f"skipped: over --budget {args.budget:g} s"})
                continue
            if "fp16" in mode and device.type != "cuda":
                rows.append({**skipped, "skipped": "skipped: float16 needs CUDA (GradScaler)"})
                continue
            if "graph" in mode and device.type != "cuda":
                rows.append({**skipped, "skipped": "skipped: CUDA graphs need CUDA"})
                continue
            try:
                row = time_mode(model_name, mode, args, device)
            except Exception as err:  # a mode that fails on this machine is a row, not the end of the run
                row = {**skipped, "skipped": f"failed: {type(err).__name__}: {str(err)[:160]}"}
            rows.append(row)
            result = f"{row['updates_per_s']:.2f} updates/s" if "ms" in row else row["skipped"]
            print(f"  {model_name:13s} {mode:13s} {result}", flush=True)
    rows.sort(key=lambda r: (args.models.index(r["model"]), MODES.index(r["mode"])))
    print()
    print(format_rows(rows))
    b, t = (4, 8) if args.tiny else PAPER_SIZES["planet"]
    copies = copy_times(b, t, device) if device.type == "cuda" else None
    if copies:
        print(f"\nhost -> device copy of one {b}x{t} pixel batch: pageable {copies['pageable']:.2f} ms, "
              f"pinned {copies['pinned']:.2f} ms")  # fmt: skip
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows, "copy_ms": copies}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
