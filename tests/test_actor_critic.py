"""Imagination actor-critic on the toy position model (known optimum: reach the target, stay)."""

import copy
import math

import pytest
import torch

from tensordict import TensorDict

from planners.action_distributions import TanhNormal, TruncatedNormal
from planners.actor_critic import ImaginationActorCritic
from planners.objectives import GoalDistanceObjective, Objective
from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.config import ActorCriticConfig
from worldmodels.core.interface import CapabilityError


class ConstantObjective(Objective):
    """r = value at every imagined step; records the batch shapes it scored."""

    def __init__(self, value: float):
        self.value, self.seen = value, []

    def per_step(self, model, imagined):
        self.seen.append(tuple(imagined.batch_size))
        return torch.full(tuple(imagined.batch_size), self.value)


def _config(**overrides):
    base = dict(
        horizon=5, layers=2, units=64, actor_lr=1e-3, critic_lr=1e-3, target_update_every=10, actor_entropy=1e-4
    )
    base.update(overrides)
    return ActorCriticConfig(**base)


def _starts(n=64, dim=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, dim, generator=gen) * 2 - 1  # positions in [-1, 1]
    return TensorDict({keys.LATENT: x}, batch_size=[n])


def _imagined_return(model, ac, start):
    with torch.no_grad():
        imagined = model.imagine(start, ac.policy(sample=False), ac.config.horizon)
        return model.reward(imagined).sum(1).mean().item()


def test_actor_critic_improves_imagined_return():
    torch.manual_seed(0)
    model = ToyModel(action_dim=2, scale=0.5)
    ac = ImaginationActorCritic(model, _config())
    actor_opt, critic_opt = ac.optimizers()
    start = _starts()
    before = _imagined_return(model, ac, start)
    for step in range(60):
        ac.train_step(_starts(seed=step + 1), actor_opt=actor_opt, critic_opt=critic_opt)
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


def test_reward_objective_override_and_goal_objectives_are_used():
    model = ToyModel(action_dim=2)
    reward = ConstantObjective(3.0)
    ac = ImaginationActorCritic(model, _config(horizon=4), reward=reward)
    _, metrics = ac.loss(_starts(5))
    assert reward.seen == [(5, 5)]  # H + 1 states, start prepended
    assert metrics["imagine/reward"].item() == pytest.approx(3.0)
    objective = GoalDistanceObjective(model, torch.zeros(1, 2), metric="l2")  # a fixed goal, unconditioned actor
    ac2 = ImaginationActorCritic(model, _config(horizon=4), reward=objective)
    _, metrics2 = ac2.loss(_starts(5))
    assert metrics2["imagine/reward"].item() <= 0.0


def test_reward_must_be_an_objective_and_defaults_to_the_reward_head():
    with pytest.raises(CapabilityError, match="ToyModel has no reward head"):
        ImaginationActorCritic(ToyModel(has_reward=False), _config())
    with pytest.raises(TypeError, match="reward must be a planners.objectives.Objective"):
        ImaginationActorCritic(ToyModel(), _config(), reward=lambda m, s: torch.ones(*s.batch_size))
    model = ToyModel(action_dim=2)
    ac = ImaginationActorCritic(model, _config(horizon=4))
    states, _ = ac.imagine(_starts(5))
    torch.testing.assert_close(ac._rewards(states, None), model.reward(states))


class _GoalRecorder(GoalDistanceObjective):
    """l2 goal objective that records the goals it was given and the per-row goals it scored with."""

    def __init__(self, model):
        super().__init__(model, metric="l2", steps="all")
        self.set_goals, self.row_goals = [], []

    def set_goal(self, goal):
        self.set_goals.append(goal.clone())
        super().set_goal(goal)

    def per_step(self, model, imagined):
        self.row_goals.append(self.goal_for(imagined.batch_size[0]))
        return super().per_step(model, imagined)


def test_goal_is_set_on_the_reward_and_each_row_scored_toward_its_own_goal():
    model = ToyModel(action_dim=2)
    reward = _GoalRecorder(model)
    ac = ImaginationActorCritic(model, _config(horizon=4), reward=reward, goal_dim=2)
    start = _starts(6).reshape(2, 3)  # [B, T] starts, flattened row-major
    goal = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2) / 10  # one goal per start
    torch.manual_seed(0)
    _, metrics = ac.loss(start, goal=goal)
    assert len(reward.set_goals) == 1 and torch.equal(reward.set_goals[0], goal.reshape(6, 2))
    torch.testing.assert_close(reward.row_goals[0], goal.reshape(6, 2))
    torch.manual_seed(0)
    states, _ = ac.imagine(start.reshape(-1), goal.reshape(6, 2))  # the same rollout
    expected = -((states[keys.LATENT] - goal.reshape(6, 1, 2)) ** 2).mean(-1)  # [N, H+1], row n toward goal n
    assert metrics["imagine/reward"].item() == pytest.approx(expected.mean().item(), rel=1e-6)
    # a goal given to a reward that takes none only conditions the actor
    plain = ImaginationActorCritic(model, _config(horizon=4), reward=ConstantObjective(1.0), goal_dim=2)
    assert torch.isfinite(plain.loss(start, goal=goal)[0])


class _Terminating(ToyModel):
    """ToyModel with a continuation head c(s) = 0.5; ``has_continuation`` set per instance."""

    def __init__(self, declared: bool):
        super().__init__(action_dim=2)
        self.has_continuation = declared
        self.calls = 0

    def continuation(self, state):
        self.calls += 1
        return torch.full((*state.batch_size, 1), 0.5)


@pytest.mark.parametrize("declared", [True, False])
def test_continuation_head_is_used_exactly_when_declared(declared):
    model = _Terminating(declared)
    ac = ImaginationActorCritic(model, _config(horizon=4, discount=0.9), reward=ConstantObjective(1.0))
    states, _ = ac.imagine(_starts(3))
    gamma = 0.9 * (0.5 if declared else 1.0)
    torch.testing.assert_close(ac._discounts(states, None), torch.full((3, 5, 1), gamma))
    terminal = torch.tensor([[True], [False], [False]])
    first = ac._discounts(states, terminal)[:, 0, 0]
    torch.testing.assert_close(first, torch.tensor([0.0, 0.9, 0.9]))  # replay's first discount
    ac.loss(_starts(3))
    assert model.calls == (3 if declared else 0)


def test_update_is_train_step_on_the_flattened_posteriors():
    model = ToyModel(action_dim=2, observation_gain=0.5)
    pixels = model.render(torch.rand(2, 4, 2) * 2 - 1)
    is_first = torch.zeros(2, 4, 1, dtype=torch.bool)
    is_first[:, 0] = True
    batch = TensorDict(
        {keys.PIXELS: pixels, keys.PREV_ACTION: torch.zeros(2, 4, 2), keys.IS_FIRST: is_first}, batch_size=[2, 4]
    )
    out = model.loss(batch)
    ac = ImaginationActorCritic(model, _config(horizon=4))
    twin = copy.deepcopy(ac)
    torch.manual_seed(3)
    via_update = ac.update(out)
    torch.manual_seed(3)
    via_train_step = twin.train_step(out.posterior.reshape(-1))
    assert set(via_update.keys()) == set(via_train_step.keys())
    for name in via_update.keys():
        torch.testing.assert_close(via_update[name], via_train_step[name])


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
        ac.train_step(_starts(8, seed=step), actor_opt=actor_opt, critic_opt=critic_opt)
        history.append(same())
    # copies happen after updates 0, 3, 6 (DreamerV2 update_slow_target: updates % N == 0)
    assert history == [True, False, False, True, False, False, True]
    assert int(ac.updates) == 7 and "updates" in ac.state_dict()


def test_policy_shapes_bounds_and_goal_conditioning():
    model = ToyModel(action_dim=3, image_shape=(3, 16, 16))
    ac = ImaginationActorCritic(model, _config(actor_dist="tanh_normal", exploration_noise=0.3))
    feats = torch.randn(4, 3)
    for sample in (True, False):
        a = ac.policy(sample=sample)(feats)
        assert a.shape == (4, 3) and a.abs().max() <= 1.0 and not a.requires_grad
    torch.testing.assert_close(ac.act(feats), ac.act(feats))  # the mode is deterministic
    goal_ac = ImaginationActorCritic(model, _config(), goal_dim=2)
    goal = torch.randn(8, 2)
    loss, _ = goal_ac.loss(_starts(8, dim=3), goal=goal)
    assert torch.isfinite(loss)
    assert goal_ac.policy(goal=goal[:4])(feats).shape == (4, 3)
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
        ac.train_step(_starts(8, seed=step))  # owned optimisers
    state = copy.deepcopy(ac.state_dict())  # as after torch.save / torch.load (no shared tensors)
    fresh = ImaginationActorCritic(model, _config(target_update_every=2))
    fresh.load_state_dict(state)
    assert int(fresh.updates) == 3
    for a, b in zip(ac.target_critic.parameters(), fresh.target_critic.parameters()):
        assert torch.equal(a, b)
    moments = fresh.actor_opt.state_dict()["state"]
    assert len(moments) > 0 and int(moments[0]["step"]) == 3
    torch.manual_seed(5)
    m1 = ac.train_step(_starts(8, seed=9))
    torch.manual_seed(5)
    m2 = fresh.train_step(_starts(8, seed=9))
    torch.testing.assert_close(m1["loss/actor"], m2["loss/actor"])
    for a, b in zip(ac.actor_parameters(), fresh.actor_parameters()):
        torch.testing.assert_close(a, b)


def test_loss_targets_are_lambda_returns_of_rewards_and_slow_values():
    model = ToyModel(action_dim=2)
    ac = ImaginationActorCritic(model, _config(horizon=4), reward=ConstantObjective(1.0))
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
