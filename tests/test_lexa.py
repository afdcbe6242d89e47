"""LEXA building blocks: disagreement ensemble (explorer), temporal distance (achiever), and the objectives
that make them rewards."""

from __future__ import annotations

import itertools

import pytest
import torch
from tensordict import TensorDict

from planners.actor_critic import ImaginationActorCritic
from planners.lexa_networks import DisagreementEnsemble, TemporalDistance, shuffled_goals
from planners.objectives import (
    DisagreementObjective,
    EmbeddingCosineObjective,
    GoalDistanceObjective,
    TemporalDistanceObjective,
)
from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError
from worldmodels.core.config import ActorCriticConfig, ConfigError, DreamerConfig, LexaConfig
from worldmodels.models.dreamer import DreamerV2, preprocess


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _spread(ensemble: DisagreementEnsemble, scale: float, noise: list[torch.Tensor]) -> None:
    """Every member = member 0 + scale * noise (noise fixed across calls)."""
    with torch.no_grad():
        for p, eps in zip(list(ensemble.weights) + list(ensemble.biases), noise):
            p.copy_(p[:1].expand_as(p) + scale * eps)


def test_ensemble_std_zero_for_identical_members_and_grows_with_spread():
    torch.manual_seed(0)
    ens = DisagreementEnsemble(6, 4, members=5, layers=2, units=16)
    base = [p.detach().clone() for p in list(ens.weights) + list(ens.biases)]
    noise = [torch.randn_like(p) for p in base]
    feats = torch.randn(3, 7, 6)
    _spread(ens, 0.0, noise)
    preds = ens(feats)
    assert preds.shape == (5, 3, 7, 4)
    assert torch.equal(preds.std(0), torch.zeros(3, 7, 4))
    plain = ens.intrinsic_reward(feats, log=False)
    assert plain.shape == (3, 7, 1) and torch.equal(plain, torch.zeros(3, 7, 1))
    assert torch.allclose(ens.intrinsic_reward(feats), torch.full((3, 7, 1), torch.log(torch.tensor(1e-8)).item()))
    rewards = []
    for scale in (0.01, 0.05, 0.2, 1.0):
        with torch.no_grad():
            for p, b0, eps in zip(list(ens.weights) + list(ens.biases), base, noise):
                p.copy_(b0[:1].expand_as(p) + scale * eps)
        rewards.append(ens.intrinsic_reward(feats).mean().item())
        plain = ens.intrinsic_reward(feats, log=False)
        # log option is log(plain + eps)
        assert torch.allclose(ens.intrinsic_reward(feats), torch.log(plain + 1e-8), atol=1e-5)
    assert all(a < b for a, b in itertools.pairwise(rewards)), rewards


def test_ensemble_matches_per_member_mlp():
    torch.manual_seed(1)
    ens = DisagreementEnsemble(5, 3, members=4, layers=2, units=8, action_dim=2)
    x, a = torch.randn(2, 6, 5), torch.randn(2, 6, 2)
    out = ens(x, a)
    for k in range(4):
        h = torch.cat([x, a], -1)
        for i, (w, b) in enumerate(zip(ens.weights, ens.biases)):
            h = h @ w[k] + b[k, 0]
            if i < 2:
                h = torch.nn.functional.elu(h)
        assert torch.allclose(out[k], h, atol=1e-5)
    with pytest.raises(ValueError, match="action-conditioned"):
        ens(x)


def test_ensemble_loss_falls_and_stops_gradient():
    torch.manual_seed(2)
    b, t, f, s = 8, 10, 6, 3
    source = torch.nn.Linear(4, f)  # the features' "world model"
    proj = torch.randn(f, s)
    ens = DisagreementEnsemble(f, s, members=4, layers=2, units=32)
    opt = torch.optim.Adam(ens.parameters(), lr=3e-3)
    inputs = torch.randn(b, t, 4)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 5] = True
    losses = []
    for step in range(150):
        feats = source(inputs)
        stoch = torch.tanh(feats @ proj)  # next stoch = g(current features), learnable
        stoch = torch.cat([stoch[:, :1], stoch[:, :-1]], 1)  # stoch_{t+1} = g(feat_t)
        loss, metrics = ens.loss(feats, stoch, is_first)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert source.weight.grad is None and source.bias.grad is None
            assert set(metrics.keys()) == {"loss/disagreement", "disagreement/std"}
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_ensemble_loss_skips_pairs_across_is_first():
    torch.manual_seed(3)
    ens = DisagreementEnsemble(2, 1, members=2, layers=0, units=1)
    with torch.no_grad():
        for w in ens.weights:
            w.zero_()
        for bias in ens.biases:
            bias.zero_()
    feats = torch.zeros(1, 3, 2)
    stoch = torch.tensor([[[0.0], [1.0], [5.0]]])  # pair (1,2) crosses a reset
    is_first = torch.tensor([[[True], [False], [True]]])
    loss, _ = ens.loss(feats, stoch, is_first)
    assert torch.isclose(loss, torch.tensor(2 * 0.5 * 1.0))  # only pair (0,1), summed over 2 members
    loss_all, _ = ens.loss(feats, stoch)
    assert torch.isclose(loss_all, torch.tensor(2 * 0.5 * (1.0 + 25.0) / 2))


def _ramp_trajectories(n: int, horizon: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """[N, H+1, E]: first dim a ramp t/H, the rest a per-trajectory code."""
    ramp = torch.arange(horizon + 1, dtype=torch.float32)[None, :, None].expand(n, -1, 1) / horizon
    code = torch.randn(n, 1, dim - 1, generator=gen).expand(-1, horizon + 1, -1)
    return torch.cat([ramp, code], -1)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().float(), b.argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def test_temporal_distance_learns_steps_and_negatives():
    torch.manual_seed(4)
    gen = torch.Generator().manual_seed(0)
    horizon, e = 6, 4
    td = TemporalDistance(feature_dim=3, embed_dim=e, head_layers=1, head_units=8, layers=2, units=64)
    assert td.positives == 256 and td.negatives == 25
    embeds = _ramp_trajectories(8, horizon, e, gen)
    opt = torch.optim.Adam(td.distance_net.parameters(), lr=3e-3)
    for _ in range(400):
        loss, metrics = td.distance_loss(embeds, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(metrics.keys()) == {
        "loss/distance", "distance/positive", "distance/negative", "distance/positive_mean", "distance/negative_mean"
    }
    length = horizon + 1  # L states per trajectory; labels (j - i) / L, negatives L / L
    i, j = torch.triu_indices(length, length)
    with torch.no_grad():
        pred = td.distance(embeds[0, i], embeds[0, j])[:, 0]
        neg = td.distance(embeds[0, i], embeds[1, j])[:, 0]
    rho = _spearman(pred, (j - i).float() / length)
    assert rho > 0.9, rho
    assert ((pred - (j - i).float() / length).abs().mean()) < 0.1
    assert neg.mean() > 0.8, neg.mean()
    with pytest.raises(ValueError, match="embeds must be"):
        td.distance_loss(embeds[:, :1])


def test_temporal_reward_and_embed_head_shapes():
    td = TemporalDistance(feature_dim=5, embed_dim=3, head_layers=1, head_units=8, layers=1, units=8)
    feats, goal = torch.randn(4, 6, 5), torch.randn(4, 1, 3)
    r = td.reward(feats, goal)
    assert r.shape == (4, 6, 1)
    assert torch.allclose(r, -td.distance(td.predict_embed(feats), goal.expand(4, 6, 3)))
    feats.requires_grad_(True)
    target = torch.randn(4, 6, 3, requires_grad=True)
    loss, _ = td.embed_loss(feats, target)
    loss.backward()
    assert feats.grad is None and target.grad is None  # LEXA grad_heads ['image']: head-only loss
    assert td.embed_head.net[0].weight.grad is not None
    td.embed_loss(feats, target, grad_to_model=True)[0].backward()
    assert feats.grad is not None and target.grad is None


def _ac_config() -> ActorCriticConfig:
    return ActorCriticConfig(horizon=4, layers=1, units=16)


def _start(model: ToyModel, n: int) -> TensorDict:
    start = model.initial_state(n)
    start[keys.LATENT] = torch.rand(n, model.action_dim) * 2 - 1
    return start


def test_achiever_with_temporal_reward_uses_goal_and_no_task_reward():
    torch.manual_seed(5)
    model = ToyModel(action_dim=2, has_reward=False)
    with pytest.raises(CapabilityError):
        model.reward(model.initial_state(1))
    td = TemporalDistance(feature_dim=2, embed_dim=2, head_layers=1, head_units=16, layers=2, units=16)
    ac = ImaginationActorCritic(model, _ac_config(), reward=TemporalDistanceObjective(td), goal_dim=2)
    start, goal = _start(model, 6), torch.rand(6, 2) * 2 - 1
    before = [p.detach().clone() for p in ac.actor.parameters()]
    metrics = ac.train_step(start, goal=goal)
    assert torch.isfinite(metrics["loss/actor"]) and metrics["imagine/reward"] <= 0
    assert any(not torch.equal(a, p) for a, p in zip(before, ac.actor.parameters()))
    assert all(p.requires_grad and p.grad is None for p in td.parameters())  # frozen in the loss, then unfrozen
    feats = start[keys.LATENT]
    a1 = ac.act(feats, goal=torch.full((6, 2), 0.9))
    a2 = ac.act(feats, goal=torch.full((6, 2), -0.9))
    assert not torch.allclose(a1, a2)
    # the distance network is trained on the imagined trajectories' predicted embeddings
    states, _ = ac.imagine(start.reshape(-1), goal)
    loss, _ = td.distance_loss(td.predict_embed(model.features(states)))
    loss.backward()
    assert td.distance_net.net[0].weight.grad is not None


def test_explorer_and_cosine_rewards_on_toy_model():
    torch.manual_seed(6)
    model = ToyModel(action_dim=2, has_reward=False)
    ens = DisagreementEnsemble(2, 2, members=3, layers=1, units=8)
    explorer = ImaginationActorCritic(model, _ac_config(), reward=DisagreementObjective(ens))
    assert "reward_fn.ensemble.weights.0" in explorer.state_dict()  # the checkpoint name of the ensemble
    metrics = explorer.train_step(_start(model, 5))
    assert torch.isfinite(metrics["loss/actor"])
    assert all(p.requires_grad and p.grad is None for p in ens.parameters())  # frozen: no actor gradient
    # cosine achiever on feature goals: r = cos(feat_t, feat_g)
    achiever = ImaginationActorCritic(model, _ac_config(), reward=GoalDistanceObjective(model), goal_dim=2)
    goal = torch.tensor([[1.0, 0.0]]).expand(5, 2)
    metrics = achiever.train_step(_start(model, 5), goal=goal)
    assert torch.isfinite(metrics["loss/actor"])
    states = TensorDict({keys.LATENT: torch.tensor([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]])}, batch_size=[1, 3])
    r = GoalDistanceObjective(model, torch.tensor([[1.0, 0.0]]), metric="cosine").per_step(model, states)
    assert torch.allclose(r, torch.tensor([[1.0, 0.0, -1.0]]), atol=1e-6)


def _fixed_ensemble(action_dim: int = 0) -> DisagreementEnsemble:
    """3 members, 2 -> 4 -> 3, weights set to fixed sine patterns (no RNG)."""
    ens = DisagreementEnsemble(2, 3, members=3, layers=1, units=4, action_dim=action_dim)
    with torch.no_grad():
        for i, p in enumerate([*ens.weights, *ens.biases]):
            p.copy_(torch.sin(torch.arange(p.numel(), dtype=torch.float32) * (0.7 + 0.3 * i)).reshape(p.shape))
    return ens


def _fixed_states() -> TensorDict:
    latent = torch.tensor([[[0.5, -0.25], [1.0, 0.0], [-0.5, 0.75]], [[0.0, 0.0], [0.25, 0.5], [-1.0, -1.0]]])
    action = torch.tensor([[[0.1, 0.2], [0.3, -0.4], [0.0, 0.0]], [[-0.5, 0.5], [1.0, -1.0], [0.0, 0.0]]])
    return TensorDict({keys.LATENT: latent, keys.ACTION: action}, batch_size=[2, 3])


@pytest.mark.parametrize(
    ("log", "scale", "action_dim", "expected"),
    [  # the values of the removed ExplorerReward(ensemble, log, scale)(model, states) on these inputs
        (True, 1.0, 0, [[-0.678036, -0.707008, -0.424464], [-0.610369, -0.575524, -0.591103]]),
        (False, 0.5, 0, [[0.253807, 0.246559, 0.327060], [0.271575, 0.281205, 0.276858]]),
        (True, 2.0, 2, [[-1.362409, -1.561490, -0.517619], [-0.841007, -1.124548, -1.178413]]),
    ],
)
def test_disagreement_objective_matches_the_explorer_reward(log, scale, action_dim, expected):
    model, states, ens = ToyModel(action_dim=2), _fixed_states(), _fixed_ensemble(action_dim)
    objective = DisagreementObjective(ens, log=log, scale=scale)
    reward = objective.per_step(model, states)  # [N, H]
    torch.testing.assert_close(reward, torch.tensor(expected), atol=1e-5, rtol=0)
    action = states[keys.ACTION] if action_dim else None
    std = ens(states[keys.LATENT], action).std(0, unbiased=False).mean(-1)  # mean_d std_k f_k(feat)[d]
    torch.testing.assert_close(reward, scale * (torch.log(std + 1e-8) if log else std))
    torch.testing.assert_close(objective(model, states), reward.sum(-1))


def test_temporal_distance_objective_scores_each_row_toward_its_goal():
    torch.manual_seed(8)
    td = TemporalDistance(feature_dim=2, embed_dim=3, head_layers=1, head_units=8, layers=1, units=8)
    model, states = ToyModel(action_dim=2), _fixed_states()  # N = 2 rows
    objective = TemporalDistanceObjective(td, steps="all")
    with pytest.raises(ValueError, match="no goal"):
        objective(model, states)
    goal = torch.randn(1, 3)  # B = 1 goal for both rows
    objective.set_goal(goal)
    reward = objective.per_step(model, states)
    expected = -td.distance(td.predict_embed(states[keys.LATENT]), goal[:, None].expand(2, 3, 3))[..., 0]
    torch.testing.assert_close(reward, expected)
    final = TemporalDistanceObjective(td)  # default: the final step
    final.set_goal(goal)
    torch.testing.assert_close(final(model, states), reward[:, -1])
    with pytest.raises(ValueError, match=r"goal must have shape \[B, 3\], got \[1, 2\]"):
        objective.set_goal(torch.zeros(1, 2))


def _gaussian_dreamer_and_goals(seed: int):
    """A tiny Gaussian DreamerV2 (deter 16, stoch 5), two random goal images uint8 [2,3,64,64] and their embeddings [2, E]."""
    torch.manual_seed(seed)
    model = DreamerV2(
        DreamerConfig(deter_dim=16, hidden_dim=16, stoch_dim=5, classes=0, cnn_depth=2, mlp_layers=1, mlp_units=8),
        action_dim=2,
    )
    pixels = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    return model, pixels, model.embed(pixels)


def test_embedding_cosine_objective_maps_embedding_goals_to_features():
    with pytest.raises(CapabilityError, match="ToyModel has no image embedding"):
        EmbeddingCosineObjective(ToyModel(action_dim=2))
    model, pixels, embed = _gaussian_dreamer_and_goals(seed=9)
    states = model.imagine(model.initial_state(2), torch.zeros(2, 3, 2))  # [2, 3]
    objective = EmbeddingCosineObjective(model, steps="all")  # LEXA: the posterior mean of the goal
    objective.set_goal(embed)
    first = objective.goal.clone()
    objective.set_goal(embed)  # mean goal features: the same goal gives the same features twice
    torch.testing.assert_close(objective.goal, first, rtol=0, atol=0)
    with torch.no_grad():
        features = model.features_from_embed(embed, sample=False)
        sampled = model.features_from_embed(embed)
    assert not torch.allclose(sampled, features)  # a sample differs from the mean ...
    d = 16  # ... in the stochastic part only: the goal's deter is one GRU step from zero, the same for any goal
    torch.testing.assert_close(sampled[:, :d], features[:, :d])
    torch.testing.assert_close(features[0, :d], features[1, :d])
    expected = GoalDistanceObjective(model, features, metric="cosine").per_step(model, states)
    torch.testing.assert_close(objective.per_step(model, states), expected)
    assert objective.goal.shape == (2, model.feature_dim) and not objective.goal.requires_grad
    torch.manual_seed(10)
    old = EmbeddingCosineObjective(model, steps="all", sample_goal=True)  # the option kept from before issue 16
    old.set_goal(embed)
    torch.manual_seed(10)
    torch.testing.assert_close(old.goal, model.features_from_embed(embed).detach())
    stoch = EmbeddingCosineObjective(model, steps="all", part="stoch")
    stoch.set_goal(embed)
    expected = torch.nn.functional.cosine_similarity(
        model.features(states)[..., d:], features[:, None, d:], dim=-1
    )
    torch.testing.assert_close(stoch.per_step(model, states), expected)
    with pytest.raises(ValueError, match="part must be"):
        EmbeddingCosineObjective(model, part="deter")


def test_config_and_dreamer_gaussian_integration():
    with pytest.raises(ConfigError, match="lexa.achiever_reward"):
        LexaConfig(achiever_reward="l1")
    with pytest.raises(ConfigError, match="lexa.ensemble_members"):
        LexaConfig(ensemble_members=1)
    cfg = LexaConfig(ensemble_layers=1, ensemble_units=8, temporal_pairs=16)
    torch.manual_seed(7)
    model = DreamerV2(
        DreamerConfig(deter_dim=16, hidden_dim=16, stoch_dim=5, classes=0, cnn_depth=2, mlp_layers=1, mlp_units=8),
        action_dim=2,
    )
    b, t = 2, 4
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    pixels = torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8)
    post = model.observe(pixels, torch.zeros(b, t, 2), is_first)
    feats, stoch = model.features(post), post[keys.STOCH]
    ens = DisagreementEnsemble.from_config(cfg, model.feature_dim, stoch.shape[-1])
    assert ens.members == 10
    loss, _ = ens.loss(feats, stoch, is_first)
    assert loss.ndim == 0 and torch.isfinite(loss)
    embed = model.encoder(preprocess(pixels.flatten(0, 1))).reshape(b, t, -1)
    td = TemporalDistance.from_config(cfg, model.feature_dim, embed.shape[-1])
    assert (td.positives, td.negatives) == (16, 1)
    embed_loss, _ = td.embed_loss(feats, embed)
    embed_loss.backward()  # LEXA grad_heads ['image']: the embed head does not train the model
    assert all(p.grad is None for p in model.parameters())
    cosine = EmbeddingCosineObjective(model)
    cosine.set_goal(model.embed(pixels[:, 0]))
    r = cosine.per_step(model, post[:, 0:1].expand(b, t))
    assert r.shape == (b, t) and (r <= 1 + 1e-5).all()


def test_shuffled_goals_is_a_row_permutation():
    embed = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    goals = shuffled_goals(embed, torch.Generator().manual_seed(0))
    assert goals.shape == (6, 4)
    assert sorted(goals[:, 0].tolist()) == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    assert torch.equal(goals[:, 1:] - goals[:, :1], torch.tensor([[1.0, 2.0, 3.0]]).expand(6, 3))


def test_goal_hold_filters_the_goal_image_held_still():
    model, pixels, embed = _gaussian_dreamer_and_goals(seed=11)
    d = 16
    with torch.no_grad():
        once = model.features_from_embed(embed, sample=False)
        held = model.features_from_embed(embed, sample=False, hold=4)
        # by hand: the posterior mean filtered step by step, the same embedding, zero actions
        state = model.initial_state(2)
        for t in range(4):
            first = torch.full((2, 1, 1), t == 0)
            state = model.rssm.observe(embed[:, None], torch.zeros(2, 1, 2), first, state, sample=False)[:, -1]
        by_hand = model.features(state)
    torch.testing.assert_close(held, by_hand)
    torch.testing.assert_close(model.features_from_embed(embed, sample=False, hold=1), once)
    torch.testing.assert_close(once[0, :d], once[1, :d])  # one step: the same deter for every goal ...
    assert (held[0, :d] - held[1, :d]).abs().max() > 1e-3  # ... held: each goal's own
    objective = EmbeddingCosineObjective(model, steps="all", goal_hold=4)
    objective.set_goal(embed)
    torch.testing.assert_close(objective.goal, held)
    planner_goal = GoalDistanceObjective(model, metric="l2", features="mean", goal_hold=4)
    planner_goal.set_goal_pixels(pixels)
    torch.testing.assert_close(planner_goal.goal, held)
    with pytest.raises(ValueError, match="hold must be >= 1"):
        model.features_from_embed(embed, hold=0)
    with pytest.raises(ValueError, match="goal_hold must be >= 1"):
        GoalDistanceObjective(model, goal_hold=0)
    with pytest.raises(ConfigError, match="lexa.goal_hold"):
        LexaConfig(goal_hold=0)
