"""Imagination actor-critic on the toy position model (known optimum: reach the target, stay)."""

import copy
import math

import pytest
import torch

from planners.action_distributions import TanhNormal, TruncatedNormal
from planners.actor_critic import ImaginationActorCritic
from planners.objectives import GoalDistanceObjective
from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.config import ActorCriticConfig



def _config(**overrides):
    base = dict(
        horizon=5, layers=2, units=64, actor_lr=1e-3, critic_lr=1e-3, target_update_every=10, actor_entropy=1e-4
    )
    base.update(overrides)
    return ActorCriticConfig(**base)


def _starts(n=64, dim=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, dim, generator=gen) * 2 - 1  # positions in [-1, 1]
    from tensordict import TensorDict

    return TensorDict({keys.LATENT: x}, batch_size=[n])


def _imagined_return(model, ac, start):
    with torch.no_grad():
        imagined = model.imagine(start, ac.act_fn(sample=False), ac.config.horizon)
        return model.reward(imagined).sum(1).mean().item()


def test_actor_critic_improves_imagined_return():
    torch.manual_seed(0)
    model = ToyModel(action_dim=2, scale=0.5)
    ac = ImaginationActorCritic(model, _config())
    actor_opt, critic_opt = ac.optimizers()
    start = _starts()
    before = _imagined_return(model, ac, start)
    for step in range(60):
        ac.update(_starts(seed=step + 1), actor_opt, critic_opt)
    after = _imagined_return(model, ac, start)
    # A random actor scores ~ -3.6 (seed 0); the optimum (reach the target in 1-2 steps) ~ -0.1.
    assert after > before + 1.0, (before, after)
    assert after > -0.8, after


def test_world_model_gets_no_gradient_but_dynamics_reach_the_actor():
    model = ToyModel(action_dim=2, scale=0.5)
    ac = ImaginationActorCritic(model, _config(actor_entropy=0.0))  # only the dynamics path remains
    loss, metrics = ac.loss(_starts(8))
    loss.backward()
    assert model.scale.grad is None
    assert model.scale.requires_grad  # restored after the loss
    actor_grad = sum(p.grad.abs().sum() for p in ac.actor_parameters())
    critic_grad = sum(p.grad.abs().sum() for p in ac.critic_parameters())
    assert actor_grad > 0 and critic_grad > 0
    assert all(p.grad is None for p in ac.target_critic.parameters())
    for name in ("loss/actor", "loss/critic", "actor/entropy", "critic/target", "imagine/reward"):
        assert metrics[name].dim() == 0 and not metrics[name].requires_grad


def test_imagine_receives_a_policy_and_the_horizon():
    calls = []

    class Recording(ToyModel):
        def imagine(self, state, actions, horizon=None):
            calls.append((callable(actions), horizon, state.batch_size))
            return super().imagine(state, actions, horizon)

    model = Recording(action_dim=2)
    ac = ImaginationActorCritic(model, _config(horizon=4))
    start = _starts(6).reshape(2, 3)  # [B, T] starts are flattened
    ac.loss(start)
    assert calls == [(True, 4, torch.Size([6]))]
    # the returned rollout: start prepended, actions taken at s_0..s_{H-1}, actor outputs reusable
    states, actor_out = ac.imagine(start.reshape(-1))
    assert states.batch_size == (6, 5) and actor_out.shape == (6, 4, 4)
    torch.testing.assert_close(states[keys.LATENT][:, 0], start.reshape(-1)[keys.LATENT])
    step = states[keys.LATENT][:, 1:] - states[keys.LATENT][:, :-1]  # x_{h+1} - x_h = scale * a_h
    torch.testing.assert_close(step, model.scale.detach() * states[keys.ACTION][:, :-1].clamp(-1, 1))
    torch.testing.assert_close(actor_out, ac.actor(states[keys.LATENT][:, :-1]))


def test_reward_fn_override_and_objectives_are_used():
    model = ToyModel(action_dim=2)
    seen = {}

    def reward_fn(m, states):
        seen["shape"] = tuple(states.batch_size)
        return torch.full((*states.batch_size, 1), 3.0)

    ac = ImaginationActorCritic(model, _config(horizon=4), reward_fn=reward_fn)
    _, metrics = ac.loss(_starts(5))
    assert seen["shape"] == (5, 5)  # H + 1 states, start prepended
    assert metrics["imagine/reward"].item() == pytest.approx(3.0)
    # constant reward 3 and gamma 0.99: lambda-returns are the discounted sums bootstrapped by v
    objective = GoalDistanceObjective(model, torch.zeros(1, 2), metric="l2")
    ac2 = ImaginationActorCritic(model, _config(horizon=4), reward_fn=objective)
    _, metrics2 = ac2.loss(_starts(5))
    assert metrics2["imagine/reward"].item() <= 0.0


def test_model_without_reward_needs_a_reward_fn():
    with pytest.raises(ValueError, match="reward_fn"):
        ImaginationActorCritic(ToyModel(has_reward=False), _config())


@pytest.mark.parametrize("actor_grad", ["reinforce", "both"])
def test_reinforce_and_mixed_gradients(actor_grad):
    model = ToyModel(action_dim=2)
    ac = ImaginationActorCritic(model, _config(actor_grad=actor_grad, actor_entropy=0.0))
    loss, _ = ac.loss(_starts(16))
    loss.backward()
    assert model.scale.grad is None
    assert sum(p.grad.abs().sum() for p in ac.actor_parameters()) > 0


def test_target_critic_hard_copied_every_n_updates():
    model = ToyModel(action_dim=2)
    ac = ImaginationActorCritic(model, _config(target_update_every=3))
    actor_opt, critic_opt = ac.optimizers()

    def same():
        return all(torch.equal(a, b) for a, b in zip(ac.critic.parameters(), ac.target_critic.parameters()))

    history = []
    for step in range(7):
        ac.update(_starts(8, seed=step), actor_opt, critic_opt)
        history.append(same())
    # copies happen after updates 0, 3, 6 (DreamerV2 update_slow_target: updates % N == 0)
    assert history == [True, False, False, True, False, False, True]
    assert int(ac.updates) == 7 and "updates" in ac.state_dict()


def test_act_fn_shapes_bounds_and_goal_conditioning():
    model = ToyModel(action_dim=3, image_shape=(3, 16, 16))
    ac = ImaginationActorCritic(model, _config(actor_dist="tanh_normal", exploration_noise=0.3))
    feats = torch.randn(4, 3)
    for sample in (True, False):
        a = ac.act_fn(sample=sample)(feats)
        assert a.shape == (4, 3) and a.abs().max() <= 1.0 and not a.requires_grad
    torch.testing.assert_close(ac.act(feats), ac.act(feats))  # the mode is deterministic
    goal_ac = ImaginationActorCritic(model, _config(), goal_dim=2)
    goal = torch.randn(8, 2)
    loss, _ = goal_ac.loss(_starts(8, dim=3), goal=goal)
    assert torch.isfinite(loss)
    assert goal_ac.act_fn(goal=goal[:4])(feats).shape == (4, 3)
    with pytest.raises(ValueError, match="goal"):
        goal_ac.loss(_starts(8, dim=3))


def test_truncated_normal_density_entropy_and_support():
    torch.manual_seed(0)
    loc, scale = torch.tensor([[0.3, -0.9]]), torch.tensor([[0.5, 1.5]])
    dist = TruncatedNormal(loc, scale)
    grid = torch.linspace(-1, 1, 4001)[:, None].expand(-1, 2)
    single = [TruncatedNormal(loc[:, i : i + 1], scale[:, i : i + 1]) for i in range(2)]
    for i, d in enumerate(single):
        density = d.log_prob(grid[:, i : i + 1]).exp()
        assert torch.trapezoid(density, grid[:, i]).item() == pytest.approx(1.0, abs=1e-3)
    samples = TruncatedNormal(loc.expand(20000, 2), scale.expand(20000, 2)).rsample()
    assert samples.abs().max() < 1.0
    mc_entropy = -dist.log_prob(samples).mean()
    assert dist.entropy().item() == pytest.approx(mc_entropy.item(), abs=0.03)
    # reparameterised: the sample mean moves with loc
    loc_p = loc.clone().requires_grad_()
    TruncatedNormal(loc_p.expand(100, 2), scale.expand(100, 2)).rsample().sum().backward()
    assert (loc_p.grad > 0).all()


def test_tanh_normal_log_prob_matches_change_of_variables():
    mean, std = torch.tensor([[0.2]]), torch.tensor([[0.7]])
    dist = TanhNormal(mean, std)
    y = torch.tensor([[0.5]])
    pre = torch.atanh(y)
    expected = torch.distributions.Normal(mean, std).log_prob(pre) - torch.log(1 - y**2)
    torch.testing.assert_close(dist.log_prob(y), expected[..., 0])
    assert math.isfinite(dist.entropy().item())


def test_owned_optimisers_are_checkpointed_in_state_dict():
    model = ToyModel(action_dim=2)
    ac = ImaginationActorCritic(model, _config(target_update_every=2))
    for step in range(3):
        ac.update(_starts(8, seed=step))  # owned optimisers
    state = copy.deepcopy(ac.state_dict())  # as after torch.save / torch.load (no shared tensors)
    fresh = ImaginationActorCritic(model, _config(target_update_every=2))
    fresh.load_state_dict(state)
    assert int(fresh.updates) == 3
    for a, b in zip(ac.target_critic.parameters(), fresh.target_critic.parameters()):
        assert torch.equal(a, b)
    moments = fresh.actor_opt.state_dict()["state"]
    assert len(moments) > 0 and int(moments[0]["step"]) == 3
    torch.manual_seed(5)
    m1 = ac.update(_starts(8, seed=9))
    torch.manual_seed(5)
    m2 = fresh.update(_starts(8, seed=9))
    torch.testing.assert_close(m1["loss/actor"], m2["loss/actor"])
    for a, b in zip(ac.actor_parameters(), fresh.actor_parameters()):
        torch.testing.assert_close(a, b)


def test_loss_targets_are_lambda_returns_of_rewards_and_slow_values():
    model = ToyModel(action_dim=2)
    ac = ImaginationActorCritic(model, _config(horizon=4), reward_fn=lambda m, s: torch.ones(*s.batch_size, 1))
    with torch.no_grad():  # slow critic outputs v = 2 everywhere
        last = ac.target_critic.net[-1]
        last.weight.zero_()
        last.bias.fill_(2.0)
    _, metrics = ac.loss(_starts(3))
    # R_3 = 1 + 0.99 * 2 (bootstrap v_4); R_t = 1 + 0.99 * (0.05 * 2 + 0.95 * R_{t+1})
    returns = [1 + 0.99 * 2]
    for _ in range(3):
        returns.insert(0, 1 + 0.99 * (0.05 * 2 + 0.95 * returns[0]))
    assert metrics["critic/target"].item() == pytest.approx(sum(returns) / 4, rel=1e-5)
