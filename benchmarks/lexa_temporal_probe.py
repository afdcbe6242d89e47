"""Why LEXA's temporal reward read ~1 almost everywhere (issue 7's closing note, issue 16): a short probe.

    python benchmarks/lexa_temporal_probe.py configs/lexa_reacher_cpu.yaml --minutes 1.5
    python benchmarks/lexa_temporal_probe.py configs/lexa_reacher_cpu.yaml --run-dir RUN   # a trained run

1. Counts, for the config's replay batch [B, T] and imagination horizon H, which share of the achiever's
   training goals (``shuffled_goals``: the batch's frames permuted) lies in the start's own replay sequence
   at most H-1 steps ahead -- the only pairs D's positives cover. Every other goal is, to D, a negative.
2. Trains a tiny LEXA run (or loads ``--run-dir``), freezes its world model and achiever, and trains two
   fresh distance networks on the same imagined rollouts for ``--steps`` steps: the faithful one
   (BatchNorm, linear output, negatives from other replay sequences, every start) and the old one
   (sigmoid, no BatchNorm, negatives from other rollouts, 64 starts). Then reads both on the achiever's
   training pairs (start, shuffled goal), split by where the goal lies, and reports the mean D, the share
   with D > 0.9 and the size of the reward's gradient |dD/d e_hat| that the achiever learns from.
3. Reads the cosine reward on the same pairs over the full features and over the stochastic part only.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from planners.lexa_behaviour import distance_rollouts
from planners.lexa_networks import TemporalDistance, shuffled_goals
from worldmodels.core import keys
from worldmodels.core.config import load_config
from worldmodels.data.replay import SequenceReplay
from worldmodels.methods import load_trained, train


def horizon_share(batch: int, length: int, horizon: int) -> float:
    """Share of (start row, goal row) pairs of a [B, T] batch with the goal in the same sequence and
    0 <= t_goal - t_start <= H - 1 (goals drawn uniformly from the B*T rows, as a permutation does)."""
    steps = torch.arange(length)
    ahead = steps[None, :] - steps[:, None]  # [T,T]
    within = ((ahead >= 0) & (ahead < horizon)).sum().item()
    return within / (batch * length) ** 2 * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--steps", type=int, default=200, help="training steps of each fresh distance network")
    parser.add_argument("--head-steps", type=int, default=0, help="first train the run's embed head this many steps")
    parser.add_argument("--batches", type=int, default=4, help="replay batches whose rollouts D is trained on")
    args = parser.parse_args()
    t0 = time.time()
    overrides = ["lexa.achiever_reward=temporal", "lexa.goal_eval_every=0", "train.seed_episodes=2",
                 "env.episode_length=200", "train.updates_per_episode=20", f"train.max_minutes={args.minutes}"]
    cfg = load_config(args.config, overrides + args.overrides)
    b, t, h = cfg.replay.batch_size, cfg.replay.sequence_length, cfg.actor_critic.horizon
    print(f"1. goals within H-1={h - 1} steps ahead in the same sequence, batch [{b}, {t}]: "
          f"{horizon_share(b, t, h):.3f}   (LEXA [45, 50], H=15: {horizon_share(45, 50, 15):.4f})")
    if args.run_dir and (Path(args.run_dir) / "checkpoints" / "latest.pt").exists():
        run_dir = Path(args.run_dir)
    else:
        run_dir = train(cfg, run_dir=args.run_dir or f"runs/lexa_probe_{time.strftime('%Y%m%d-%H%M%S')}")
    trained = load_trained(run_dir)
    trained.env.close()
    cfg, model, behaviour = trained.cfg, trained.model, trained.behaviour
    replay = SequenceReplay.from_config(cfg.replay, Path(run_dir) / "replay", device=model.device)
    torch.manual_seed(0)
    if args.head_steps:  # train the run's embed head further on replay (LEXA trains it with every model update)
        opt = torch.optim.Adam(behaviour.temporal.embed_head.parameters(), cfg.model.learning_rate)
        for _ in range(args.head_steps):
            batch = replay.sample(b, t)
            with torch.no_grad():
                posterior = model.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
                target = model.embed(batch[keys.PIXELS])
            loss, _ = behaviour.temporal.embed_loss(model.features(posterior), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"   embed head trained {args.head_steps} more steps on replay: loss {loss.item():.3f}")
    variants = {
        "faithful": dataclasses.replace(cfg.lexa),
        "old (sigmoid, no BN, rollout negatives, 64 starts)": dataclasses.replace(
            cfg.lexa, distance_output="sigmoid", distance_batchnorm=False, distance_negatives="trajectory",
            distance_starts=64),
    }
    pool = []  # the achiever's rollouts from every start of a few replay batches, shared by both variants
    for _ in range(args.batches):
        batch = replay.sample(b, t)
        with torch.no_grad():
            posterior = model.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
            goals = shuffled_goals(model.embed(batch[keys.PIXELS]))
            states, ids = distance_rollouts(behaviour.achiever, posterior, goals)
            pool.append((behaviour.temporal.predict_embed(model.features(states)), ids))  # [B*T,H,E], [B*T]
    print(f"   rollouts of {args.batches} replay batches imagined ({time.time() - t0:.0f} s so far)")
    nets = {}
    for name, lexa in variants.items():
        td = TemporalDistance.from_config(lexa, model.feature_dim, model.embed_dim).to(model.device)
        td.embed_head.load_state_dict(behaviour.temporal.embed_head.state_dict())  # the run's trained head
        opt = torch.optim.Adam(td.distance_net.parameters(), lexa.distance_lr * 10)  # 10x lr: a short probe
        for i in range(args.steps):
            embeds, ids = pool[i % len(pool)]
            if lexa.distance_starts:
                pick = torch.randperm(embeds.shape[0])[: lexa.distance_starts]
                embeds, ids = embeds[pick], ids[pick]
            loss, metrics = td.distance_loss(embeds, ids if lexa.distance_negatives == "sequence" else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets[name] = (td, metrics)
    # the achiever's training pairs: start row r, goal row perm[r]
    batch = replay.sample(b, t)
    with torch.no_grad():
        posterior = model.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
        embed = model.embed(batch[keys.PIXELS]).reshape(b * t, -1)
    perm = torch.randperm(b * t)
    seq, step = torch.arange(b * t) // t, torch.arange(b * t) % t
    ahead = step[perm] - step
    same = seq[perm] == seq
    groups = {
        "same sequence, 0..H-1 ahead": same & (ahead >= 0) & (ahead < h),
        "same sequence, further or behind": same & ~((ahead >= 0) & (ahead < h)),
        "another sequence": ~same,
    }
    features = model.features(posterior).reshape(b * t, -1)
    print(f"\n2. D on the achiever's training pairs, {b * t} starts, run {run_dir} ({time.time() - t0:.0f} s so far)")
    print("| D variant | pairs | share | mean D | D > 0.9 | mean abs dD/de_hat |")
    print("|---|---|---|---|---|---|")
    for name, (td, metrics) in nets.items():
        e_hat = td.predict_embed(features).detach().requires_grad_(True)
        d = td.distance(e_hat, embed[perm])[:, 0]
        (grad,) = torch.autograd.grad(d.sum(), e_hat)
        for group, mask in groups.items():
            if mask.any():
                print(f"| {name} | {group} | {mask.float().mean():.3f} | {d[mask].mean():.3f} | "
                      f"{(d[mask] > 0.9).float().mean():.2f} | {grad[mask].abs().mean():.2e} |")
        with torch.no_grad():  # goal = the start's own frame: real embedding e_t vs predicted e_hat_t (D's inputs)
            own_real = td.distance(e_hat, embed)[:, 0]
            own_pred = td.distance(e_hat, e_hat)[:, 0]
            running = {k: v.clone() for k, v in td.distance_net.state_dict().items()}
            own_batch = td.distance(e_hat, e_hat, batch_stats=True)[:, 0]  # this batch's BatchNorm statistics
            td.distance_net.load_state_dict(running)  # (undo the running-statistics update)
        for group, values in (("own frame, goal = real e_t (label 0)", own_real),
                              ("own frame, goal = predicted e_hat_t (label 0)", own_pred),
                              ("same, BatchNorm on this batch's statistics", own_batch)):  # fmt: skip
            print(f"| {name} | {group} | - | {values.mean():.3f} | {(values > 0.9).float().mean():.2f} | - |")
        print(f"| {name} | trained: pos MSE {metrics['distance/positive']:.3f}, neg MSE "
              f"{metrics.get('distance/negative', float('nan')):.3f} | | | | |")
    with torch.no_grad():
        e_hat = behaviour.temporal.predict_embed(features)
        head_error = (e_hat - embed).norm(dim=-1).mean().item()
        frame_gap = (embed[perm] - embed).norm(dim=-1).mean().item()
    print(f"\nembed head: |e_hat_t - e_t| = {head_error:.2f} on average, |e_goal - e_t| between shuffled frames = "
          f"{frame_gap:.2f}")
    with torch.no_grad():  # 3. the cosine reward on the same pairs: full features vs the stochastic part only
        goal_feat = model.features_from_embed(embed[perm], sample=False)  # [N,F], posterior mean (LEXA)
        s_dim = posterior[keys.STOCH].reshape(b * t, -1).shape[-1]
        near = groups["same sequence, 0..H-1 ahead"]
        print(f"\n3. cosine reward cos(feat_t, feat_g) on the same pairs "
              f"({model.feature_dim - s_dim} deter + {s_dim} stoch dims)")
        print("| compared | mean | std over pairs | mean, goal 0..H-1 ahead | mean, other goals |")
        print("|---|---|---|---|---|")
        for part, dims in (("full (LEXA)", slice(0, None)), ("stoch only", slice(-s_dim, None))):
            cos = torch.nn.functional.cosine_similarity(features[:, dims], goal_feat[:, dims], dim=-1)
            print(f"| {part} | {cos.mean():.3f} | {cos.std():.3f} | {cos[near].mean():.3f} | {cos[~near].mean():.3f} |")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
