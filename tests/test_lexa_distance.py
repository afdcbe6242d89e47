"""LEXA made faithful (issue 16): temporal-distance targets and pairs, BatchNorm + linear output, negatives
from another replay sequence, D trained on every start, mean goal features; the loss falls on a tiny run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from planners.lexa_behaviour import LexaBehaviour
from planners.lexa_networks import TemporalDistance, distance_pairs, replay_windows
from tests.test_lexa_training import TINY_AC, TINY_LEXA, TINY_MODEL, _batch
from worldmodels.core.config import ConfigError, LexaConfig, load_config
from worldmodels.models.dreamer import DreamerV2


def test_positive_targets_are_steps_over_the_length_and_negatives_one():
    gen = torch.Generator().manual_seed(0)
    pairs = distance_pairs(trajectories=6, length=4, positives=400, negatives=50, generator=gen)
    pos, neg = slice(0, 400), slice(400, 450)
    # hand values: L = 4 states s_0..s_3, label (j - i) / 4 -> {0, 1/4, 2/4, 3/4}; a negative is 4 / 4 = 1
    assert set(pairs.label[pos].tolist()) == {0.0, 0.25, 0.5, 0.75}
    assert (pairs.label[neg] == 1.0).all() and pairs.label.shape == (450,)
    torch.testing.assert_close(pairs.label[pos], (pairs.goal_step[pos] - pairs.cur_step[pos]).float() / 4)
    assert (pairs.cur_traj[pos] == pairs.goal_traj[pos]).all() and (pairs.goal_step[pos] >= pairs.cur_step[pos]).all()
    assert (pairs.cur_step < 4).all() and (pairs.goal_step < 4).all()
    # every (i <= j) pair is drawn: 10 of them for L = 4
    assert len(set(zip(pairs.cur_step[pos].tolist(), pairs.goal_step[pos].tolist()))) == 10


def test_negatives_come_from_another_replay_sequence():
    gen = torch.Generator().manual_seed(1)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])  # 3 replay sequences x 3 starts (rows b*T + t)
    pairs = distance_pairs(9, 5, positives=8, negatives=300, sequence_ids=ids, generator=gen)
    neg = slice(8, None)
    assert (ids[pairs.cur_traj[neg]] != ids[pairs.goal_traj[neg]]).all()
    assert set(pairs.goal_traj[neg].tolist()) == set(range(9))  # any rollout of another sequence
    # the old variant (another *rollout*) pairs neighbouring starts of the same sequence as negatives
    old = distance_pairs(9, 5, positives=8, negatives=300, generator=gen)
    assert (ids[old.cur_traj[neg]] == ids[old.goal_traj[neg]]).any()
    assert (old.cur_traj[neg] != old.goal_traj[neg]).all()
    one_sequence = distance_pairs(4, 5, positives=8, negatives=30, sequence_ids=torch.zeros(4, dtype=torch.long))
    assert one_sequence.label.shape == (8,)  # no other sequence: no negatives


def test_distance_loss_matches_hand_targets_for_a_constant_distance():
    torch.manual_seed(0)
    td = TemporalDistance(feature_dim=3, embed_dim=2, head_layers=1, head_units=4, layers=2, units=8, positives=64)
    last = td.distance_net.net[-1]
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, 0.3)  # D = 0.3 everywhere
    embeds = torch.randn(6, 5, 2)
    ids = torch.arange(3).repeat_interleave(2)
    loss, metrics = td.distance_loss(embeds, ids, generator=torch.Generator().manual_seed(2))
    pairs = distance_pairs(6, 5, 64, 6, ids, torch.Generator().manual_seed(2))
    expected_pos = ((0.3 - pairs.label[:64]) ** 2).mean()
    assert td.negatives == 6
    torch.testing.assert_close(metrics["distance/positive"], expected_pos)
    torch.testing.assert_close(metrics["distance/negative"], torch.tensor(0.49))  # (0.3 - 1)^2
    torch.testing.assert_close(loss, expected_pos + 0.49)


def test_distance_net_is_lexa_gc_distance_batchnorm_and_linear_output():
    td = TemporalDistance(feature_dim=3, embed_dim=2, layers=4, units=16)
    modules = list(td.distance_net.net)
    assert [type(m) for m in modules] == [nn.Linear, nn.ReLU, nn.BatchNorm1d] * 4 + [nn.Linear]
    assert not any(isinstance(m, nn.Sigmoid) for m in td.distance_net.modules())
    with torch.no_grad():
        td.distance_net.net[-1].bias.fill_(3.0)
    e = torch.randn(5, 2)
    assert (td.distance(e, e) > 1.0).all()  # linear: not squashed into [0, 1]
    # rewards use the running statistics: a row's reward does not depend on the other rows of its batch
    torch.testing.assert_close(td.distance(e[:2], e[:2]), td.distance(e, e)[:2])
    old = TemporalDistance(feature_dim=3, embed_dim=2, layers=2, units=8, output="sigmoid", batchnorm=False)
    assert isinstance(old.distance_net.net[-1], nn.Sigmoid)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in old.distance_net.modules())


def _behaviour(**lexa) -> tuple[DreamerV2, LexaBehaviour]:
    torch.manual_seed(0)
    model = DreamerV2(TINY_MODEL, action_dim=2)
    return model, LexaBehaviour(model, TINY_AC, LexaConfig(**{**TINY_LEXA.__dict__, **lexa}))


def test_distance_trained_on_every_start_with_sequence_ids():
    model, behaviour = _behaviour()
    b, t = 3, 5
    with torch.no_grad():
        posterior = model.loss(_batch(b, t)).posterior  # [B, T]
    goals = torch.randn(b * t, model.embed_dim)
    embeds, ids = behaviour.distance_data(posterior, goals)
    assert embeds.shape == (b * t, TINY_AC.horizon, model.embed_dim)  # s_0..s_{H-1} of every start
    torch.testing.assert_close(ids, torch.tensor([0] * t + [1] * t + [2] * t))
    _, subset = _behaviour(distance_starts=4, distance_negatives="trajectory")
    embeds, ids = subset.distance_data(posterior, goals)
    assert embeds.shape[0] == 4 and ids is None


def test_behaviour_goal_features_are_the_posterior_mean():
    model, behaviour = _behaviour(achiever_reward="cosine")
    objective = behaviour.achiever.reward_fn
    embed = torch.randn(2, model.embed_dim)
    objective.set_goal(embed)
    first = objective.goal.clone()
    objective.set_goal(embed)
    torch.testing.assert_close(objective.goal, first, rtol=0, atol=0)
    _, sampled = _behaviour(achiever_reward="cosine", goal_features="sample", cosine_part="stoch")
    assert sampled.achiever.reward_fn.sample_goal and sampled.achiever.reward_fn.part == "stoch"


def test_temporal_distance_loss_falls_on_a_tiny_run():
    model, behaviour = _behaviour(temporal_pairs=256, distance_lr=1e-3)  # LEXA lr 8e-5 needs longer
    batch = _batch(3, 6)
    losses = []
    for _ in range(40):
        with torch.no_grad():
            out = model.loss(batch)
        losses.append(behaviour.update(out)["temporal/loss/distance"].item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses  # measured: 1.20 -> 0.52
    with pytest.raises(ValueError, match="sequence_ids must have shape"):
        behaviour.temporal.distance_loss(torch.randn(4, 3, model.embed_dim), torch.zeros(3))


def test_runs_from_before_issue_16_load_with_the_old_options():
    from planners.lexa_networks import DistanceNet
    from worldmodels.models.networks import MLP

    torch.manual_seed(0)
    old = MLP(8, 1, 16, 3, "relu")  # the distance network before issue 16 (a sigmoid after it)
    new = DistanceNet(8, 16, 3, batchnorm=False, output="sigmoid")
    new.load_state_dict(old.state_dict())  # strict: same parameter names and shapes
    x = torch.randn(5, 8)
    torch.testing.assert_close(new(x), torch.sigmoid(old(x)))


def test_replay_windows_cut_runs_of_h_steps_and_drop_the_tail():
    x = torch.arange(2 * 7, dtype=torch.float32).reshape(2, 7, 1)  # B = 2 sequences of T = 7 steps
    runs, ids = replay_windows(x, 3)  # 7 // 3 = 2 runs per sequence, step 6 dropped
    assert runs.shape == (4, 3, 1)
    torch.testing.assert_close(runs[:, :, 0], torch.tensor([[0.0, 1, 2], [3, 4, 5], [7, 8, 9], [10, 11, 12]]))
    torch.testing.assert_close(ids, torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="cannot be cut into runs of 8"):
        replay_windows(x, 8)


def test_distance_loss_takes_goals_from_goal_embeds():
    td = TemporalDistance(feature_dim=3, embed_dim=2, layers=1, units=4, positives=32)
    seen = {}

    def record(cur, goal, batch_stats=False):
        seen["cur"], seen["goal"] = cur, goal
        return torch.zeros(cur.shape[0], 1)

    td.distance = record
    embeds, goal_embeds, ids = torch.randn(4, 3, 2), torch.randn(4, 3, 2), torch.tensor([0, 0, 1, 1])
    td.distance_loss(embeds, ids, torch.Generator().manual_seed(5), goal_embeds=goal_embeds)
    pairs = distance_pairs(4, 3, 32, td.negatives, ids, torch.Generator().manual_seed(5))
    torch.testing.assert_close(seen["cur"], embeds[pairs.cur_traj, pairs.cur_step])
    torch.testing.assert_close(seen["goal"], goal_embeds[pairs.goal_traj, pairs.goal_step])
    with pytest.raises(ValueError, match="goal_embeds must match"):
        td.distance_loss(embeds, ids, goal_embeds=goal_embeds[:2])


def test_distance_replay_pairs_predicted_states_with_real_goals_and_learns():
    model, behaviour = _behaviour(distance_replay=True, temporal_pairs=256, distance_lr=1e-3)
    batch = _batch(3, 9)  # T = 9, H = 4: two runs per sequence
    with torch.no_grad():
        out = model.loss(batch)
    features = model.features(out.posterior)
    seen = {}
    distance = behaviour.temporal.distance

    def record(cur, goal, batch_stats=False):
        seen["cur"], seen["goal"] = cur, goal
        return distance(cur, goal, batch_stats)

    behaviour.temporal.distance = record
    behaviour.replay_distance_loss(features, out.embed)
    predicted = behaviour.temporal.predict_embed(features).detach()
    rows = lambda x: x[:, :8].reshape(6, 4, -1)  # runs of H = 4 steps, step 8 dropped
    match = lambda got, table: (got[:, None, None, :] == table[None]).all(-1).flatten(1).any(1).all()
    assert match(seen["cur"], rows(predicted)) and match(seen["goal"], rows(out.embed))
    assert not match(seen["goal"], rows(predicted))
    del behaviour.temporal.distance
    losses = []
    for _ in range(40):
        with torch.no_grad():
            out = model.loss(batch)
        metrics = behaviour.update(out)
        losses.append(metrics["temporal/replay/loss/distance"].item())
    assert torch.isfinite(metrics["temporal/loss/distance"])
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses
    _, plain = _behaviour()
    assert not any(k.startswith("temporal/replay/") for k in plain.update(out).keys())


def test_distance_replay_needs_windows_of_h_steps():
    with pytest.raises(ConfigError, match="replay.sequence_length"):
        load_config(None, ["method=lexa", "lexa.distance_replay=true", "replay.sequence_length=10",
                           "actor_critic.horizon=15"])  # fmt: skip
    cfg = load_config(None, ["method=lexa", "lexa.distance_replay=true", "replay.sequence_length=15"])
    assert cfg.lexa.distance_replay


def test_distance_window_labels_steps_over_w_for_imagined_and_replay_pairs():
    pairs = distance_pairs(6, 4, positives=400, negatives=20, generator=torch.Generator().manual_seed(3), scale=8)
    # hand values: L = 4, W = 8 -> labels {0, 1/8, 2/8, 3/8}; negatives stay 1
    assert set(pairs.label[:400].tolist()) == {0.0, 0.125, 0.25, 0.375} and (pairs.label[400:] == 1).all()
    with pytest.raises(ValueError, match="label scale must be >= the trajectory length 4, got 3"):
        distance_pairs(6, 4, positives=4, negatives=0, scale=3)
    model, behaviour = _behaviour(distance_replay=True, distance_window=8)  # TINY_AC.horizon = 4
    assert behaviour.window == 8
    batch = _batch(3, 9)  # T = 9, W = 8: one run of 8 steps per sequence
    with torch.no_grad():
        out = model.loss(batch)
    labels, lengths = [], []
    original = behaviour.temporal.distance_loss

    def record(embeds, ids=None, generator=None, goal_embeds=None, label_scale=None):
        lengths.append(embeds.shape[1])
        labels.append(label_scale)
        return original(embeds, ids, generator, goal_embeds, label_scale)

    behaviour.temporal.distance_loss = record
    metrics = behaviour.update(out)
    assert lengths == [4, 8] and labels == [8, 8]  # imagined H = 4 steps, replay runs of W = 8, one scale
    assert torch.isfinite(metrics["temporal/replay/loss/distance"])
    with pytest.raises(ConfigError, match="lexa.distance_window"):
        LexaConfig(distance_window=20)  # without distance_replay
    with pytest.raises(ConfigError, match=r"in \[actor_critic.horizon, replay.sequence_length\] = \[15, 32\]"):
        load_config(None, ["method=lexa", "lexa.distance_replay=true", "replay.sequence_length=32",
                           "lexa.distance_window=40"])  # fmt: skip
    cfg = load_config(None, ["method=lexa", "lexa.distance_replay=true", "replay.sequence_length=32",
                             "lexa.distance_window=32"])  # fmt: skip
    assert cfg.lexa.distance_window == 32
