"""Planning latency per action: our CEM / MPPI vs torchrl's CEMPlanner / MPPIPlanner, same model sizes.

Both sides plan with a PlaNet-sized model (Hafner et al. 2019): RSSM deter 200, stoch 30, hidden
200, reward head 3 x 300, A = 6 (cheetah). Ours is ``worldmodels.models.planet.PlaNet`` driven by
``planners.CEMPlanner`` / ``MPPIPlanner``; torchrl's is its Dreamer model-based env
(``DreamerEnv`` over ``RSSMPrior`` + a 3 x 300 reward MLP, as in torchrl's Dreamer example)
driven by ``torchrl.modules.planners.CEMPlanner`` / ``MPPIPlanner``. Paper CEM sizes: horizon 12,
1000 candidates, 10 iterations, top 100; MPPI at the same horizon / samples / iterations.
torchrl's MPPI needs a value network and TD(lambda) advantage (a 3 x 300 MLP here); ours scores
with the reward sum only, so its MPPI row compares the planners as shipped, not equal work.

Timings are medians over ``--repeats`` calls after one warm-up, both sides in the same run. The
shared CPU machine is noisy (other processes compete for its 2 cores), so the table reports CPU
time of this process (``time.process_time``; with ``--threads 1`` it is the compute time, barely
affected by other load; median over calls) next to wall time (minimum over calls, the least
disturbed one); ratios use CPU time on CPU devices and wall time on CUDA.

Usage:
    python benchmarks/bench_planners.py [--repeats 3] [--threads 1] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planners import CEMPlanner, MPPIPlanner, RewardObjective  # noqa: E402
from worldmodels.core.config import CEMConfig, MPPIConfig, PlaNetConfig  # noqa: E402
from worldmodels.models.planet import PlaNet  # noqa: E402

ACTION_DIM = 6


def build_torchrl_env(action_dim: int, device: torch.device):
    """torchrl's Dreamer model-based env at PlaNet sizes (RSSMPrior + reward MLP 3 x 300)."""
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule
    from torchrl.data import Bounded, Composite, Unbounded
    from torchrl.envs import EnvBase
    from torchrl.envs.model_based.dreamer import DreamerEnv
    from torchrl.modules import MLP, WorldModelWrapper
    from torchrl.modules.models.model_based import RSSMPrior

    state_dim, belief_dim = 30, 200

    class SpecEnv(EnvBase):
        """Only carries the specs DreamerEnv copies (state, belief, action, reward)."""

        def __init__(self):
            super().__init__(device=device)
            self.observation_spec = Composite(state=Unbounded(state_dim), belief=Unbounded(belief_dim))
            self.action_spec = Bounded(-1.0, 1.0, (action_dim,))
            self.reward_spec = Unbounded((1,))

        def _reset(self, td=None):  # pragma: no cover - never stepped
            return TensorDict({}, [])

        def _step(self, td):  # pragma: no cover
            return td

        def _set_seed(self, seed):  # pragma: no cover
            return seed

    spec_env = SpecEnv()
    prior = RSSMPrior(
        spec_env.action_spec, hidden_dim=200, rnn_hidden_dim=belief_dim, state_dim=state_dim, action_dim=action_dim
    )
    reward = MLP(in_features=state_dim + belief_dim, out_features=1, depth=3, num_cells=300, activation_class=nn.ReLU)
    transition = TensorDictModule(prior, in_keys=["state", "belief", "action"], out_keys=["_", "_", "state", "belief"])
    reward_model = TensorDictModule(reward, in_keys=["state", "belief"], out_keys=["reward"])
    env = DreamerEnv(
        world_model=WorldModelWrapper(transition, reward_model).to(device),
        prior_shape=torch.Size([state_dim]),
        belief_shape=torch.Size([belief_dim]),
        device=device,
    )
    env.set_specs_from_env(spec_env)
    start = TensorDict(
        {"state": torch.zeros(state_dim), "belief": torch.zeros(belief_dim)}, batch_size=[], device=device
    )
    return env, start


def build_torchrl_planners(env, cem: CEMConfig, mppi: MPPIConfig, device):
    from torchrl.modules import MLP, ValueOperator
    from torchrl.modules.planners import CEMPlanner as TorchRLCEM
    from torchrl.modules.planners import MPPIPlanner as TorchRLMPPI
    from torchrl.objectives.value import TDLambdaEstimator

    their_cem = TorchRLCEM(env, cem.horizon, cem.iterations, cem.candidates, cem.top_k)
    value_net = MLP(in_features=230, out_features=1, depth=3, num_cells=300, activation_class=nn.ReLU).to(device)
    advantage = TDLambdaEstimator(
        gamma=0.99, lmbda=0.95, value_network=ValueOperator(value_net, in_keys=["state", "belief"])
    )
    their_mppi = TorchRLMPPI(
        env, advantage, temperature=1.0 / mppi.temperature, planning_horizon=mppi.horizon,
        optim_steps=mppi.iterations, num_candidates=mppi.samples, top_k=mppi.samples // 10,
    )
    return their_cem, their_mppi


def _timed(fn, device: torch.device) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.process_time() - c0, time.perf_counter() - w0


def measure(fns: list, repeats: int, device: torch.device) -> list[tuple[float, float]]:
    """Per function: (median cpu seconds, min wall seconds) over ``repeats`` calls after a warm-up.

    The functions are called interleaved (a, b, a, b, ...) so that load changes on a shared
    machine hit both sides alike; the minimum wall time is the least disturbed call.
    """
    for fn in fns:
        fn()  # warm-up
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            samples[i].append(_timed(fn, device))
    return [(statistics.median(c for c, _ in s), min(w for _, w in s)) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4, help="batch of states for our batched planning row")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test of the script)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    if args.quick:
        cem = CEMConfig(horizon=4, iterations=2, candidates=50, top_k=5)
        mppi = MPPIConfig(horizon=4, iterations=2, samples=50)
    else:
        cem = CEMConfig(horizon=12, iterations=10, candidates=1000, top_k=100)  # PlaNet
        mppi = MPPIConfig(horizon=12, iterations=10, samples=1000)

    model = PlaNet(PlaNetConfig(), action_dim=ACTION_DIM).to(device).eval()
    objective = RewardObjective(model)
    ours_cem = CEMPlanner(model, objective, cem)
    ours_mppi = MPPIPlanner(model, objective, mppi)
    env, start = build_torchrl_env(ACTION_DIM, device)
    their_cem, their_mppi = build_torchrl_planners(env, cem, mppi, device)

    one = model.initial_state(1)
    batch = model.initial_state(args.batch)
    print(
        f"Planning latency per action, PlaNet-sized model (deter 200, stoch 30, hidden 200, reward 3x300), "
        f"A={ACTION_DIM}, device={device}, threads={args.threads}, {args.repeats} calls each (cpu: median, wall: min)\n"
        f"CEM: H {cem.horizon}, {cem.candidates} candidates, {cem.iterations} iterations, top {cem.top_k}; "
        f"MPPI: H {mppi.horizon}, {mppi.samples} samples, {mppi.iterations} iterations",
        flush=True,
    )
    key = 1 if device.type == "cuda" else 0  # which time the ratio uses
    print(f"{'planner':<16}{'ours cpu/wall (s)':>20}{'torchrl cpu/wall (s)':>23}{'speed-up':>10}", flush=True)
    with torch.inference_mode():
        cases = [
            ("CEM, 1 state", lambda: ours_cem.plan(one), lambda: their_cem.planning(start.clone())),
            ("MPPI, 1 state", lambda: ours_mppi.plan(one), lambda: their_mppi.planning(start.clone())),
        ]
        results = {}
        for name, ours_fn, their_fn in cases:
            ours, theirs = measure([ours_fn, their_fn], args.repeats, device)
            results[name] = (ours, theirs)
            print(
                f"{name:<16}{ours[0]:>10.3f} /{ours[1]:>7.3f}{theirs[0]:>13.3f} /{theirs[1]:>7.3f}"
                f"{theirs[key] / ours[key]:>9.2f}x",
                flush=True,
            )
        (ours_b,) = measure([lambda: ours_cem.plan(batch)], args.repeats, device)
        try:
            their_cem.planning(start.expand(args.batch).clone())
            their_batch = "runs"
        except Exception as err:  # torchrl's GRUCell prior rejects [B, K, F] inputs
            their_batch = f"raises {type(err).__name__}"
    per_state = ours_b[key] / args.batch
    their_one = results["CEM, 1 state"][1][key]
    print(
        f"{f'CEM, {args.batch} states':<16}{ours_b[0]:>10.3f} /{ours_b[1]:>7.3f}{'n/a':>23}"
        f"   ({per_state:.3f} s per state, {their_one / per_state:.2f}x torchrl's 1-state time; "
        f"torchrl with a batch of states: {their_batch})",
        flush=True,
    )


if __name__ == "__main__":
    main()
