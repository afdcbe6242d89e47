"""PlanningAgent / PolicyAgent: belief bookkeeping, bounds, and use as torchrl policies in env.rollout."""

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Binary, Bounded, Composite, Unbounded
from torchrl.envs import EnvBase

from planners import CEMPlanner, MPPIPlanner, PlanningAgent, PolicyAgent, RewardObjective
from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.config import CEMConfig, MPPIConfig


IMAGE = (3, 8, 8)
TARGET = torch.tensor([0.6, -0.4])
SMALL_CEM = CEMConfig(horizon=3, iterations=6, candidates=200, top_k=20)


class PositionEnv(EnvBase):
    """Minimal batched torchrl env with the toy model's own dynamics: p += 0.5 * a, pixels = render(p)."""

    def __init__(self, batch: int = 2, start: float = 0.0):
        super().__init__(batch_size=torch.Size([batch]))
        self.renderer = ToyModel(2, IMAGE, 0.5)
        self.start = start
        shape = (batch,)
        self.observation_spec = Composite(
            {
                keys.PIXELS: Bounded(0, 255, shape=(*shape, *IMAGE), dtype=torch.uint8),
                keys.IS_FIRST: Binary(n=1, shape=(*shape, 1), dtype=torch.bool),
            },
            shape=shape,
        )
        self.action_spec = Bounded(-1.0, 1.0, shape=(*shape, 2))
        self.reward_spec = Unbounded(shape=(*shape, 1))

    def _obs(self, first: bool) -> TensorDict:
        with torch.no_grad():
            pixels = self.renderer.render(self.pos)
        first_flag = torch.full((*self.batch_size, 1), first, dtype=torch.bool)
        return TensorDict({keys.PIXELS: pixels, keys.IS_FIRST: first_flag}, batch_size=self.batch_size)

    def _reset(self, tensordict=None, **kwargs):
        self.pos = torch.full((*self.batch_size, 2), self.start)
        out = self._obs(True)
        out.set(keys.DONE, torch.zeros(*self.batch_size, 1, dtype=torch.bool))
        out.set(keys.TERMINATED, torch.zeros(*self.batch_size, 1, dtype=torch.bool))
        return out

    def _step(self, tensordict):
        self.pos = (self.pos + 0.5 * tensordict[keys.ACTION].clamp(-1, 1)).clamp(-1, 1)
        out = self._obs(False)
        out.set(keys.REWARD, -((self.pos - TARGET) ** 2).sum(-1, keepdim=True))
        out.set(keys.DONE, torch.zeros(*self.batch_size, 1, dtype=torch.bool))
        out.set(keys.TERMINATED, torch.zeros(*self.batch_size, 1, dtype=torch.bool))
        return out

    def _set_seed(self, seed):
        return seed


def toy_model(**kwargs):
    return ToyModel(action_dim=2, image_shape=IMAGE, scale=0.5, target=TARGET, **kwargs)


def obs(model, positions, is_first):
    b = positions.shape[0]
    return TensorDict(
        {keys.PIXELS: model.render(positions), keys.IS_FIRST: torch.full((b, 1), is_first)}, batch_size=[b]
    )


@pytest.mark.parametrize("planner_cls", [CEMPlanner, MPPIPlanner])
def test_planning_agent_reaches_target_in_env_rollout(planner_cls):
    torch.manual_seed(0)
    model = toy_model()
    mppi = MPPIConfig(horizon=3, iterations=6, samples=200, temperature=0.05, noise_std=0.3)
    config = SMALL_CEM if planner_cls is CEMPlanner else mppi
    agent = PlanningAgent(model, planner_cls(model, RewardObjective(model), config), action_dim=2)
    agent.reset(2)
    env = PositionEnv(batch=2)
    rollout = env.rollout(4, policy=agent)
    assert rollout.batch_size == (2, 4)
    actions = rollout[keys.ACTION]
    assert actions.abs().max() <= 1.0
    # from 0, the optimum first action is (target - 0) / 0.5 = [1.2 -> clipped 1.0, -0.8]
    torch.testing.assert_close(actions[:, 0, 1], torch.full((2,), -0.8), atol=0.15, rtol=0)
    final = rollout[keys.NEXT, keys.REWARD][:, -1]
    assert (final > -0.01).all(), f"agent did not reach the target: final reward {final.flatten().tolist()}"


def test_planning_agent_on_unbatched_dmc_env():
    dmc = pytest.importorskip("envs.dmc")
    env = dmc.DMCEnv("point_mass", "easy", image_size=32, episode_length=8)
    model = ToyModel(action_dim=env.action_spec.shape[-1], image_shape=(3, 32, 32), scale=0.2)
    agent = PlanningAgent(model, CEMPlanner(model, RewardObjective(model), SMALL_CEM), exploration_noise=0.3)
    agent.reset(1)
    rollout = env.rollout(3, policy=agent)
    assert rollout[keys.ACTION].shape == (3, model.action_dim)
    assert rollout[keys.ACTION].abs().max() <= 1.0
    assert agent.belief.batch_size == (1,)


def test_belief_resets_on_is_first_per_entry():
    torch.manual_seed(0)
    model = toy_model(observation_gain=0.5)  # the belief has memory: x = 0.5 * (x + 0.5 a) + 0.5 * enc(o)
    agent = PlanningAgent(model, CEMPlanner(model, RewardObjective(model), SMALL_CEM), 2)
    agent.reset(2)
    p0 = torch.tensor([[0.2, 0.2], [-0.2, 0.4]])
    agent.act(obs(model, p0, True))
    x0 = agent.belief[keys.LATENT].clone()
    torch.testing.assert_close(x0, 0.5 * model.encode(model.render(p0)))  # reset: prior is 0
    a0 = agent.prev_action.clone()
    p1 = torch.tensor([[0.4, -0.2], [0.0, 0.0]])
    step = obs(model, p1, False)
    step[keys.IS_FIRST][1] = True  # entry 1 starts a new episode
    agent.act(step)
    x1 = agent.belief[keys.LATENT]
    enc = model.encode(model.render(p1))
    torch.testing.assert_close(x1[0], 0.5 * (x0[0] + 0.5 * a0[0]) + 0.5 * enc[0])  # continues
    torch.testing.assert_close(x1[1], 0.5 * enc[1])  # forgot its history and prev_action


def test_exploration_noise_stays_in_bounds():
    torch.manual_seed(0)
    model = toy_model()
    agent = PlanningAgent(model, CEMPlanner(model, RewardObjective(model), SMALL_CEM), 2, exploration_noise=3.0)
    agent.reset(16)
    action = agent.act(obs(model, torch.zeros(16, 2), True))
    assert action.shape == (16, 2) and action.abs().max() <= 1.0
    assert (action.abs() == 1.0).any(), "large noise should saturate some actions"
    assert not action.is_inference()


def test_policy_agent_uses_features_and_bounds():
    model = toy_model()
    seen = []

    def policy(features):
        seen.append(features.clone())
        return (TARGET - features) / 0.5 * 10  # too large on purpose: the agent clips

    agent = PolicyAgent(model, policy)
    agent.reset(3)
    positions = torch.tensor([[0.0, 0.0], [0.5, -0.5], [0.6, -0.4]])
    action = agent.act(obs(model, positions, True))
    torch.testing.assert_close(seen[0], model.encode(model.render(positions)))
    assert action.abs().max() <= 1.0
    env = PositionEnv(batch=3)
    agent.reset(3)
    rollout = env.rollout(3, policy=agent)
    assert rollout[keys.ACTION].shape == (3, 3, 2)


def test_agent_rejects_mismatched_batch_and_action_dim():
    model = toy_model()
    agent = PolicyAgent(model, lambda f: torch.zeros_like(f))
    agent.reset(2)
    agent.act(obs(model, torch.zeros(2, 2), True))
    with pytest.raises(ValueError, match="call reset\\(3\\)"):
        agent.act(obs(model, torch.zeros(3, 2), False))
    with pytest.raises(ValueError, match="does not match"):
        PlanningAgent(model, CEMPlanner(model, RewardObjective(model), SMALL_CEM), action_dim=5)


def test_new_episode_entries_do_not_inherit_warm_start():
    torch.manual_seed(0)
    model = toy_model()

    class Recording(MPPIPlanner):
        def plan(self, state):
            self.seen = None if self._warm.plan is None else self._warm.plan.clone()
            return super().plan(state)

    planner = Recording(model, RewardObjective(model), MPPIConfig(horizon=3, iterations=2, samples=32))
    agent = PlanningAgent(model, planner)
    agent.reset(2)
    agent.act(obs(model, torch.zeros(2, 2), True))
    first_plan = planner._warm.plan.clone()
    step = obs(model, torch.zeros(2, 2), False)
    step[keys.IS_FIRST][1] = True
    agent.act(step)
    torch.testing.assert_close(planner.seen[0], first_plan[0])  # kept (shifted inside plan)
    assert planner.seen[1].abs().max() == 0  # forgotten: a new episode starts from zeros


def test_planning_agent_as_torchrl_collector_policy():
    from torchrl.collectors import Collector

    torch.manual_seed(0)
    model = toy_model()
    agent = PlanningAgent(model, CEMPlanner(model, RewardObjective(model), SMALL_CEM))
    agent.reset(2)
    collector = Collector(PositionEnv(batch=2), agent, frames_per_batch=6, total_frames=6)
    try:
        (batch,) = list(collector)
    finally:
        collector.shutdown()
    assert batch.batch_size == (2, 3)
    assert batch[keys.ACTION].abs().max() <= 1.0
    assert batch[keys.IS_FIRST][:, 0].all() and not batch[keys.IS_FIRST][:, 1:].any()


@pytest.mark.parametrize("planner_name", ["cem", "mppi", "icem", "gradient"])
def test_keep_drops_batch_entries_from_belief_plan_and_goals(planner_name):
    """After ``agent.keep(rows)`` the agent acts for the kept entries only, each still toward its own goal."""
    from planners import GoalDistanceObjective
    from planners.builder import PLANNERS
    from worldmodels.core.config import GradientPlannerConfig, ICEMConfig

    torch.manual_seed(0)
    model = toy_model()
    goals = torch.tensor([[0.8, 0.8], [-0.8, 0.8], [0.8, -0.8]])  # one goal per entry
    objective = GoalDistanceObjective(model, goals, metric="l2", steps="all")  # toy features = position
    configs = {"cem": SMALL_CEM, "mppi": MPPIConfig(horizon=3, iterations=4, samples=200, temperature=0.01),
               "icem": ICEMConfig(horizon=3, iterations=4, population=200, elites=20),
               "gradient": GradientPlannerConfig(horizon=3, iterations=30, restarts=2, lr=0.1)}  # fmt: skip
    agent = PlanningAgent(model, PLANNERS[planner_name](model, objective, configs[planner_name]))
    agent.reset(3)
    agent.act(obs(model, torch.zeros(3, 2), True))
    agent.keep(torch.tensor([False, True, True]))  # entry 0 has ended
    assert agent.belief.batch_size[0] == 2 and agent.prev_action.shape == (2, 2)
    assert objective.goal.shape[0] == 2
    action = agent.act(obs(model, torch.zeros(2, 2), False))
    assert action.shape == (2, 2)
    assert action[0, 0] < 0 < action[0, 1] and action[1, 0] > 0 > action[1, 1]  # toward goals 1 and 2
    agent.keep(torch.tensor([1]))  # indices work too
    assert agent.act(obs(model, torch.zeros(1, 2), False))[0, 1] < 0  # toward goal 2
