"""DreamerV2 update speed: worldmodels next to torchrl's own Dreamer modules at equal sizes.

Four rows, each timed ours / torchrl interleaved in one process (``benchmarks.bench_model.time_interleaved``:
``--warmup`` updates each, then rounds ours, torchrl, ours, ... so both see the same background load):

* ``wm dreamerv2``: world-model update (loss + backward + clip + Adam step) of our
  ``DreamerV2(DreamerConfig())`` -- **categorical** latent 32 x 32, deter 200, hidden 200, conv depth
  48, reward head 4 x 400 (dmc_vision) -- next to torchrl's Dreamer world model
  (``_dreamer_make_world_model``: ``ObsEncoder``/``ObsDecoder``/``RSSMPrior``/``RSSMPosterior`` +
  reward ``MLP``) with ``DreamerModelLoss`` at the same widths. torchrl's (v1) Dreamer has only a
  **Gaussian** latent; it gets ``state_dim = stoch * classes`` (1024) so that the feature width
  (deter + 1024), the decoder, the reward head and the actor/critic inputs are equal. The latent heads
  differ (torchrl outputs mean and std, 2 x 1024; ours 1024 logits), and our loss does DreamerV2's
  KL balancing (two KL terms) where torchrl's has one: this row is close, not identical.
* ``wm planet``: the exactly-equal row, ``bench_model.build_ours`` / ``build_torchrl`` unchanged
  (our Gaussian ``PlaNet(PlaNetConfig())``: stoch 30, deter 200, hidden 200, depth 32, reward
  3 x 300 -- torchrl's Dreamer latent). CPU only (those builders make CPU tensors).
* ``ac dreamerv2`` / ``ac planet``: one actor-critic update from all B*T posterior starts:
  imagination of H steps, lambda returns, actor + critic losses, backward, clip, both steps. Ours:
  ``ImaginationActorCritic(model, ActorCriticConfig(...)).train_step(posterior)`` on the row's world
  model. torchrl: ``DreamerActorLoss`` (rollout of ``DreamerActor`` through the model-based
  ``DreamerEnv`` built by ``_dreamer_make_mbenv``, TD(lambda) targets) + ``DreamerValueLoss``, each
  loss backward + clip + Adam step, exactly as torchrl's Dreamer example runs them. Actor and critic
  MLPs have the same depth and width on both sides (``ActorCriticConfig.layers`` x ``units``; torchrl's
  helper hard-codes depth 3, so the modules are built here with the config's depth), same H and
  starts. The world model under the torchrl row is torchrl's at the row's sizes (as above).

The starts (posterior states of a random batch) are computed once, outside the timing. Random pixels:
speed does not depend on content. The ratio column is the median over rounds of (torchrl time / our
time), wall and process CPU time; > 1 means ours is faster. Compare ratios, not absolute times.

Measured (CPU, 1 thread, torch 2.13, torchrl 0.14.1, dmc_vision, 16 x 50): world model 1.96x (DreamerV2
row) and 1.58x (PlaNet row); actor-critic 1.05-1.10x. The world-model gap is mostly torchrl's decoder:
its first transposed conv on a 1 x 1 input (1536 -> 192, 5 x 5) takes ~4.6 s of its ~13 s update in
torch.profiler. The actor-critic update is matmul-bound (~60 % of its time in mm/addmm on both
sides), so equal MLPs give equal times.

Usage (from the repo root)::

    python -m benchmarks.bench_dreamer                  # dmc_vision sizes, batch 16 x 50
    python -m benchmarks.bench_dreamer --size cpu       # small sizes, minutes on a busy CPU
    python -m benchmarks.bench_dreamer --rows ac-dreamerv2 --repeats 5 --threads 1
    python -m benchmarks.bench_dreamer --device cuda    # the ``wm planet`` row is then skipped
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import statistics

import torch
from tensordict import TensorDict
from torch import nn

from benchmarks import bench_model
from planners.actor_critic import ImaginationActorCritic
from worldmodels.core.config import ActorCriticConfig, DreamerConfig, PlaNetConfig
from worldmodels.models.dreamer import DreamerV2
from worldmodels.training.step import make_model_optimizer
from worldmodels.models.planet import PlaNet

SIZES = {
    "dmc_vision": (DreamerConfig(), ActorCriticConfig(), 16, 50),
    "cpu": (
        DreamerConfig(deter_dim=128, hidden_dim=128, stoch_dim=16, classes=16, cnn_depth=16, mlp_layers=2, mlp_units=200),
        ActorCriticConfig(layers=2, units=200),
        16,
        32,
    ),
}
ROWS = ("wm-dreamerv2", "wm-planet", "ac-dreamerv2", "ac-planet")


@dataclasses.dataclass(frozen=True)
class Dims:
    """Sizes shared by our model and torchrl's: deter (torchrl belief), stoch (torchrl state; for a
    categorical latent ``stoch * classes``), RSSM hidden, conv depth, reward MLP layers x units."""

    deter: int
    stoch: int
    hidden: int
    cnn: int
    reward_layers: int
    reward_units: int


def dreamer_dims(cfg: DreamerConfig) -> Dims:
    stoch = cfg.stoch_dim * cfg.classes if cfg.classes else cfg.stoch_dim
    return Dims(cfg.deter_dim, stoch, cfg.hidden_dim, cfg.cnn_depth, cfg.mlp_layers, cfg.mlp_units)


def planet_dims(cfg: PlaNetConfig) -> Dims:
    return Dims(cfg.deter_dim, cfg.stoch_dim, cfg.hidden_dim, cfg.cnn_depth, cfg.reward_layers, cfg.reward_units)


def _batch(b: int, t: int, action_dim: int, device: torch.device) -> TensorDict:
    return bench_model.random_batch(b, t, action_dim).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------- ours
def build_ours_wm(cfg: DreamerConfig, action_dim: int, device: torch.device, b: int, t: int):
    """Our DreamerV2 world-model update: loss, backward, clip, AdamW step (``make_model_optimizer``)."""
    model = DreamerV2(cfg, action_dim=action_dim).to(device)
    opt = make_model_optimizer(cfg, model)
    batch = _batch(b, t, action_dim, device)

    def update() -> float:
        out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        return out.loss.item()  # .item() synchronises a GPU

    return model, update


def build_ours_ac(model_cfg, ac_cfg: ActorCriticConfig, action_dim: int, device: torch.device, b: int, t: int):
    """Our actor-critic update from the B*T posteriors of a random batch (DreamerV2 or PlaNet model)."""
    model_cls = DreamerV2 if isinstance(model_cfg, DreamerConfig) else PlaNet
    model = model_cls(model_cfg, action_dim).to(device)
    behaviour = ImaginationActorCritic(model, ac_cfg).to(device)
    with torch.no_grad():
        posterior = model.loss(_batch(b, t, action_dim, device)).posterior

    def update() -> float:
        return behaviour.train_step(posterior)["loss/actor"].item()

    return nn.ModuleList([behaviour.actor, behaviour.critic]), update


# ---------------------------------------------------------------------------------------- torchrl
def torchrl_world_model(dims: Dims, action_dim: int):
    """torchrl's Dreamer world model at ``dims``, wired as ``bench_model.build_torchrl`` and torchrl's
    ``make_dreamer`` wire it. Returns ``(world_model, modules)`` with the raw modules by name."""
    from torchrl.data import Unbounded
    from torchrl.modules import MLP
    from torchrl.modules.models.model_based import ObsDecoder, ObsEncoder, RSSMPosterior, RSSMPrior
    from torchrl.trainers.helpers.models import _dreamer_make_world_model

    modules = {
        "encoder": ObsEncoder(channels=dims.cnn, in_channels=3),
        "decoder": ObsDecoder(channels=dims.cnn, latent_dim=dims.deter + dims.stoch),
        "prior": RSSMPrior(
            Unbounded(action_dim), hidden_dim=dims.hidden, rnn_hidden_dim=dims.deter, state_dim=dims.stoch,
            action_dim=action_dim,
        ),
        "posterior": RSSMPosterior(
            hidden_dim=dims.hidden, state_dim=dims.stoch, rnn_hidden_dim=dims.deter, obs_embed_dim=32 * dims.cnn
        ),
        "reward": MLP(
            in_features=dims.deter + dims.stoch, out_features=1, depth=dims.reward_layers,
            num_cells=dims.reward_units, activation_class=nn.ELU,
        ),
    }
    world_model = _dreamer_make_world_model(*(modules[k] for k in ("encoder", "decoder", "prior", "posterior", "reward")))
    return world_model, modules


def _torchrl_batch(dims: Dims, action_dim: int, device: torch.device, b: int, t: int) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    return TensorDict(
        {
            "state": torch.zeros(b, t, dims.stoch),
            "belief": torch.zeros(b, t, dims.deter),
            "action": torch.rand(b, t, action_dim, generator=g) * 2 - 1,
            "next": {"pixels": torch.rand(b, t, 3, 64, 64, generator=g), "reward": torch.rand(b, t, 1, generator=g)},
        },
        batch_size=[b, t],
    ).to(device)


def build_torchrl_wm(dims: Dims, grad_clip: float, action_dim: int, device: torch.device, b: int, t: int):
    """torchrl's world-model update: ``DreamerModelLoss`` (defaults), backward, clip, Adam step."""
    from torchrl.objectives import DreamerModelLoss

    world_model, _ = torchrl_world_model(dims, action_dim)
    world_model = world_model.to(device)
    loss_module = DreamerModelLoss(world_model)
    batch = _torchrl_batch(dims, action_dim, device, b, t)
    opt = torch.optim.Adam(world_model.parameters(), lr=3e-4, eps=1e-5)

    def update() -> float:
        losses, _ = loss_module(batch)
        loss = (losses["loss_model_kl"] + losses["loss_model_reco"] + losses["loss_model_reward"]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(world_model.parameters(), grad_clip)
        opt.step()
        return loss.item()

    return world_model, update


class _ProofEnv:
    """The specs torchrl's Dreamer helpers read from a "proof environment" (action, reward, done, and
    the ``state``/``belief`` observations its ``TensorDictPrimer`` adds), without simulating anything."""

    def __init__(self, dims: Dims, action_dim: int):
        from torchrl.data import Bounded, Categorical, Composite, Unbounded

        self.batch_size = torch.Size([])
        self.action_spec = Bounded(-1.0, 1.0, (action_dim,))
        done = Categorical(2, (1,), dtype=torch.bool)
        self.output_spec = Composite(
            full_observation_spec=Composite(state=Unbounded(dims.stoch), belief=Unbounded(dims.deter)),
            full_reward_spec=Composite(reward=Unbounded(1)),
            full_done_spec=Composite(done=done, terminated=done.clone()),
        )
        self.input_spec = Composite(full_action_spec=Composite(action=self.action_spec), full_state_spec=Composite())


def build_torchrl_ac(
    dims: Dims, ac_cfg: ActorCriticConfig, action_dim: int, device: torch.device, b: int, t: int
):
    """torchrl's Dreamer actor + value update from the B*T posterior states of a random batch."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type
    from torchrl.modules import MLP, SafeModule
    from torchrl.modules.models.model_based import DreamerActor
    from torchrl.objectives import DreamerActorLoss, DreamerValueLoss, ValueEstimators
    from torchrl.trainers.helpers.models import _dreamer_make_actor_sim, _dreamer_make_mbenv

    world_model, m = torchrl_world_model(dims, action_dim)
    world_model = world_model.to(device)
    proof = _ProofEnv(dims, action_dim)
    mbenv = _dreamer_make_mbenv(m["reward"], m["prior"], m["decoder"], proof, False, dims.stoch, dims.deter)
    # The helper's TensorDictPrimer (zero state/belief for an env without them) cannot reset a batch of
    # [N] starts (its value is unbatched); the starts carry state and belief, so the bare DreamerEnv is used.
    mbenv = mbenv.base_env.to(device)
    actor = _dreamer_make_actor_sim(
        "action", proof, DreamerActor(action_dim, depth=ac_cfg.layers, num_cells=ac_cfg.units, activation_class=nn.ELU)
    ).to(device)
    value = SafeModule(  # _dreamer_make_value_model with the config's depth instead of 3
        MLP(out_features=1, depth=ac_cfg.layers, num_cells=ac_cfg.units, activation_class=nn.ELU),
        in_keys=["state", "belief"], out_keys=["state_value"],
    ).to(device)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):  # materialise the lazy layers
        value(actor(mbenv.fake_tensordict().unsqueeze(-1).to(device)))
        starts = world_model(_torchrl_batch(dims, action_dim, device, b, t)).select("state", "belief").reshape(-1)
    actor_loss = DreamerActorLoss(actor, value, mbenv, imagination_horizon=ac_cfg.horizon)
    actor_loss.make_value_estimator(ValueEstimators.TDLambda, gamma=ac_cfg.discount, lmbda=ac_cfg.lambda_)
    value_loss = DreamerValueLoss(value, gamma=ac_cfg.discount)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=ac_cfg.actor_lr, eps=ac_cfg.adam_eps)
    value_opt = torch.optim.Adam(value.parameters(), lr=ac_cfg.critic_lr, eps=ac_cfg.adam_eps)

    def update() -> float:
        actor_td, fake_data = actor_loss(starts)
        value_td, _ = value_loss(fake_data)
        actor_opt.zero_grad(set_to_none=True)
        actor_td["loss_actor"].backward()
        nn.utils.clip_grad_norm_(actor.parameters(), ac_cfg.grad_clip)
        actor_opt.step()
        value_opt.zero_grad(set_to_none=True)
        value_td["loss_value"].backward()
        nn.utils.clip_grad_norm_(value.parameters(), ac_cfg.grad_clip)
        value_opt.step()
        return actor_td["loss_actor"].item()

    return nn.ModuleList([actor, value]), update


# ---------------------------------------------------------------------------------------- table
def row_builders(row: str, size: str, action_dim: int, device: torch.device) -> tuple[str, dict]:
    """``(description, {"ours": builder(b, t), "torchrl": builder(b, t)})`` for one table row."""
    model_cfg, ac_cfg, _, _ = SIZES[size]
    planet_cfg = PlaNetConfig()
    ddims, pdims = dreamer_dims(model_cfg), planet_dims(planet_cfg)
    latent = f"ours categorical {model_cfg.stoch_dim}x{model_cfg.classes}, torchrl Gaussian {ddims.stoch}"
    p = functools.partial
    if row == "wm-dreamerv2":
        return f"world model, DreamerV2 ({latent})", {
            "ours": p(build_ours_wm, model_cfg, action_dim, device),
            "torchrl": p(build_torchrl_wm, ddims, model_cfg.grad_clip, action_dim, device),
        }
    if row == "wm-planet":
        return "world model, PlaNet (both Gaussian 30; bench_model builders)", {
            "ours": bench_model.build_ours,
            "torchrl": bench_model.build_torchrl,
        }
    h, mlp = ac_cfg.horizon, f"{ac_cfg.layers}x{ac_cfg.units}"
    if row == "ac-dreamerv2":
        return f"actor-critic H={h} {mlp}, DreamerV2 model ({latent})", {
            "ours": p(build_ours_ac, model_cfg, ac_cfg, action_dim, device),
            "torchrl": p(build_torchrl_ac, ddims, ac_cfg, action_dim, device),
        }
    if row == "ac-planet":
        return f"actor-critic H={h} {mlp}, PlaNet model (both Gaussian 30)", {
            "ours": p(build_ours_ac, planet_cfg, ac_cfg, action_dim, device),
            "torchrl": p(build_torchrl_ac, pdims, ac_cfg, action_dim, device),
        }
    raise ValueError(f"unknown row {row!r}; allowed: {', '.join(ROWS)}.")


def time_row(builders: dict, b: int, t: int, warmup: int, repeats: int) -> dict[str, dict]:
    """Interleaved timing of one row through ``bench_model.time_interleaved`` (its builder registry)."""
    names = []
    for name, build in builders.items():
        key = f"bench_dreamer/{name}"
        bench_model.BUILDERS[key] = build
        names.append(key)
    try:
        rows = bench_model.time_interleaved(names, b, t, warmup, repeats)
    finally:
        for key in names:
            bench_model.BUILDERS.pop(key, None)
    return {key.split("/", 1)[1]: r for key, r in rows.items()}


def ratio(ref: list[float], ours: list[float]) -> float:
    """Median over rounds of torchrl time / our time (> 1: ours faster)."""
    return statistics.median(x / y for x, y in zip(ref, ours))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="dmc_vision")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per row (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates of each side first")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = leave as is)")
    parser.add_argument("--action-dim", type=int, default=bench_model.ACTION_DIM)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    _, _, b, t = SIZES[args.size]
    print(
        f"size={args.size} batch={b}x{t} device={device} threads={torch.get_num_threads()} "
        f"torch {torch.__version__} load avg {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    lines = []
    for row in args.rows:
        if row == "wm-planet" and (device.type != "cpu" or args.action_dim != bench_model.ACTION_DIM):
            print(f"  skip {row}: bench_model's builders are CPU-only with action dim {bench_model.ACTION_DIM}")
            continue
        text, builders = row_builders(row, args.size, args.action_dim, device)
        r = time_row(builders, b, t, args.warmup, args.repeats)
        ours, ref = r["ours"], r["torchrl"]
        for name in ("ours", "torchrl"):
            walls = ", ".join(f"{x:.2f}" for x in r[name]["times"])
            cpus = ", ".join(f"{x:.2f}" for x in r[name]["cpu"])
            print(f"  {row:13s} {name:8s}: {walls} s wall; cpu {cpus} s", flush=True)
        lines.append(
            f"| {text} | {ours['params'] / 1e6:.2f} / {ref['params'] / 1e6:.2f} M | "
            f"{statistics.median(ours['times']):.3f} | {statistics.median(ref['times']):.3f} | "
            f"{ratio(ref['times'], ours['times']):.2f}x | {statistics.median(ours['cpu']):.3f} | "
            f"{statistics.median(ref['cpu']):.3f} | {ratio(ref['cpu'], ours['cpu']):.2f}x |"
        )
    print()
    print(
        "| update (batch {b}x{t}, {n} starts) | params ours / torchrl | ours wall s | torchrl wall s | "
        "torchrl/ours wall | ours cpu s | torchrl cpu s | torchrl/ours cpu |".format(b=b, t=t, n=b * t)
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print(f"\nmedians of {args.repeats} interleaved rounds after {args.warmup} warm-up; load avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
