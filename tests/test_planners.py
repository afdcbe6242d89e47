"""CEM / MPPI recover known optima on the toy position model; objectives score as defined."""

import pytest
import torch
from tensordict import TensorDict

from planners import CEMPlanner, GoalDistanceObjective, MPPIPlanner, RewardObjective, SumObjective
from planners.population import expand_states, shift_plan
from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError
from worldmodels.core.config import CEMConfig, MPPIConfig


TARGET = torch.tensor([0.6, 0.6])
STARTS = torch.tensor([[0.6, 0.6], [0.35, 0.3], [1.0, 0.9]])  # B = 3 start positions
SCALE = 0.5
# reward -||x - target||^2 summed over the horizon: best first action (target - x0) / scale
OPTIMA = (TARGET - STARTS) / SCALE  # [[0, 0], [0.5, 0.6], [-0.8, -0.6]]


class CountingToyModel(ToyModel):
    """ToyModel that counts imagine calls and the rows per call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def imagine(self, state, actions, horizon=None):
        self.calls.append(state.batch_size[0])
        return super().imagine(state, actions, horizon)


def make_model(**kwargs):
    return CountingToyModel(action_dim=2, image_shape=(3, 8, 8), scale=SCALE, target=TARGET, **kwargs)


def start_state():
    return TensorDict({keys.LATENT: STARTS.clone()}, batch_size=[3])


CEM_SMALL = CEMConfig(horizon=4, iterations=10, candidates=400, top_k=40)
MPPI_SMALL = MPPIConfig(horizon=4, iterations=10, samples=400, temperature=0.05, noise_std=0.3, warm_start=False)


@pytest.mark.parametrize(
    "planner_cls, config", [(CEMPlanner, CEM_SMALL), (MPPIPlanner, MPPI_SMALL)], ids=["cem", "mppi"]
)
def test_planner_recovers_known_optimum_for_a_batch(planner_cls, config):
    torch.manual_seed(0)
    model = make_model()
    planner = planner_cls(model, RewardObjective(model), config)
    plan = planner.plan(start_state())
    assert plan.shape == (3, 4, 2)
    assert plan.abs().max() <= 1.0
    torch.testing.assert_close(plan[:, 0], OPTIMA, atol=0.1, rtol=0)
    # the imagined return is near the optimum (0 here: the target is reached after one step)
    objective = RewardObjective(model)
    mine = objective(model, model.imagine(start_state(), plan))
    zeros = objective(model, model.imagine(start_state(), torch.zeros_like(plan)))
    assert (mine > -0.02).all() and mine.sum() > zeros.sum() + 1.0


@pytest.mark.parametrize(
    "planner_cls, config", [(CEMPlanner, CEM_SMALL), (MPPIPlanner, MPPI_SMALL)], ids=["cem", "mppi"]
)
def test_one_imagine_call_per_iteration_over_the_whole_population(planner_cls, config):
    model = make_model()
    planner = planner_cls(model, RewardObjective(model), config)
    planner.plan(start_state())
    population = config.candidates if planner_cls is CEMPlanner else config.samples
    assert model.calls == [3 * population] * config.iterations


@pytest.mark.parametrize("planner_cls", [CEMPlanner, MPPIPlanner])
def test_actions_stay_in_bounds_when_optimum_is_outside(planner_cls):
    torch.manual_seed(1)
    model = make_model()
    model.target.fill_(50.0)  # unreachable: the best plan pushes at +1 everywhere
    config = CEMConfig(horizon=3, iterations=3, candidates=64, top_k=8) if planner_cls is CEMPlanner else MPPIConfig(
        horizon=3, iterations=3, samples=64, noise_std=3.0
    )
    plan = planner_cls(model, RewardObjective(model), config).plan(start_state())
    assert plan.min() >= -1.0 and plan.max() <= 1.0
    assert plan.mean() > 0.8


def test_planner_rejects_unbatched_state():
    model = make_model()
    planner = CEMPlanner(model, RewardObjective(model), CEM_SMALL)
    with pytest.raises(ValueError, match="batch size \\[B\\]"):
        planner.plan(start_state()[0])


def test_reward_objective_refuses_reward_free_model():
    with pytest.raises(CapabilityError, match="has no reward head"):
        RewardObjective(ToyModel(has_reward=False))


def test_reward_objective_sums_discounted_rewards():
    model = make_model()
    imagined = model.imagine(start_state()[:1], torch.zeros(1, 3, 2))  # stays at [0.6, 0.6] = target
    assert RewardObjective(model)(model, imagined).item() == pytest.approx(0.0)
    model.target.zero_()  # reward -0.72 per step
    assert RewardObjective(model)(model, imagined).item() == pytest.approx(-0.72 * 3)
    assert RewardObjective(model, discount=0.5)(model, imagined).item() == pytest.approx(-0.72 * 1.75)


def _goal_candidates(model):
    """Three candidates from x0 = 0: ends at the goal, passes it early, never gets close."""
    goal = torch.tensor([0.5, -0.5])
    actions = torch.stack(
        [
            torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]]),  # reaches the goal at the end
            torch.tensor([[1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]),  # passes it, ends at [1.0, 0.0]
            torch.tensor([[-1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]),  # opposite side
        ]
    )
    state = TensorDict({keys.LATENT: torch.zeros(3, 2)}, batch_size=[3])
    return goal, model.imagine(state, actions)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("steps", ["final", "last_k", "all"])
def test_goal_objective_ranks_candidate_ending_at_goal_first(metric, steps):
    model = make_model()
    goal, imagined = _goal_candidates(model)
    objective = GoalDistanceObjective(model, goal_features=goal, metric=metric, steps=steps, k=2)
    scores = objective(model, imagined)
    assert scores.shape == (3,)
    if steps == "final":
        assert scores.argmax() == 0
    assert scores[0] > scores[2] and scores[1] > scores[2]


def test_goal_objective_values_by_hand():
    model = make_model()
    goal, imagined = _goal_candidates(model)
    l2 = GoalDistanceObjective(model, goal, metric="l2", steps="last_k", k=2)
    # candidate 1 sits at [1.0, 0.0] for the last 2 steps: mean_d sq. distance 0.25 each (PLDM sum)
    assert l2(model, imagined)[1].item() == pytest.approx(-(0.25 + 0.25))
    # all steps: [0.5,-0.5] (at the goal), then [1.0, 0.0] twice
    every_step = GoalDistanceObjective(model, goal, metric="l2", steps="all")
    assert every_step(model, imagined)[1].item() == pytest.approx(-0.5)
    cos = GoalDistanceObjective(model, goal, metric="cosine", steps="all")
    # candidate 0 sits at the origin (cosine 0 by eps) twice, then exactly at the goal (cosine 1)
    assert cos(model, imagined)[0].item() == pytest.approx(1.0, abs=1e-5)
    assert cos.per_step(model, imagined).shape == (3, 3)


def test_goal_objective_gives_each_batch_item_its_goal():
    model = make_model()
    goals = torch.tensor([[0.5, 0.5], [-0.5, -0.5]])  # B = 2
    objective = GoalDistanceObjective(model, goals, metric="l2")
    ends = torch.tensor([[0.5, 0.5], [0.0, 0.0], [-0.5, -0.5], [0.5, 0.5], [-0.5, -0.5], [0.0, 0.0]])
    imagined = TensorDict({keys.LATENT: ends[:, None]}, batch_size=[6, 1])  # N = B * 3 candidates
    scores = objective(model, imagined).reshape(2, 3)
    assert scores.argmax(1).tolist() == [0, 1]
    with pytest.raises(ValueError, match="multiple of B"):
        objective(model, imagined[:5])
    with pytest.raises(ValueError, match="no goal"):
        GoalDistanceObjective(model)(model, imagined)


def test_goal_objective_from_pixels_and_planner_reaches_it():
    torch.manual_seed(0)
    model = make_model(has_reward=False)
    goal_positions = torch.tensor([[0.4, -0.2], [-0.6, 0.3]])
    objective = GoalDistanceObjective(model, metric="l2", steps="final")
    objective.set_goal_pixels(model.render(goal_positions))
    state = TensorDict({keys.LATENT: torch.zeros(2, 2)}, batch_size=[2])
    config = MPPIConfig(horizon=2, iterations=8, samples=300, temperature=0.01, noise_std=0.3)
    plan = MPPIPlanner(model, objective, config).plan(state)
    reached = model.imagine(state, plan)[keys.LATENT][:, -1]
    torch.testing.assert_close(reached, goal_positions, atol=0.05, rtol=0)


def test_sum_objective_weights_terms():
    model = make_model()
    goal, imagined = _goal_candidates(model)
    reward, dist = RewardObjective(model), GoalDistanceObjective(model, goal, metric="l2")
    total = SumObjective([(2.0, reward), (0.5, dist)])
    torch.testing.assert_close(total(model, imagined), 2 * reward(model, imagined) + 0.5 * dist(model, imagined))
    assert total.per_step(model, imagined).shape == (3, 3)
    with pytest.raises(ValueError):
        SumObjective([])


@pytest.mark.parametrize("planner_cls", [CEMPlanner, MPPIPlanner])
def test_warm_start_shifts_previous_plan(planner_cls):
    torch.manual_seed(0)
    model = make_model()
    base = CEM_SMALL if planner_cls is CEMPlanner else MPPI_SMALL
    config = type(base)(**{**base.__dict__, "warm_start": True})
    planner = planner_cls(model, RewardObjective(model), config)
    first = planner.plan(start_state())
    # constant objective + tiny noise: the next plan is (almost) the shifted previous one
    planner.objective = lambda m, imagined: torch.zeros(imagined.batch_size[0])
    if planner_cls is MPPIPlanner:
        planner.config = type(base)(**{**config.__dict__, "noise_std": 1e-3, "iterations": 1})
        second = planner.plan(start_state())
        torch.testing.assert_close(second, shift_plan(first), atol=2e-3, rtol=0)
    torch.testing.assert_close(initial_mean(planner), shift_plan(planner._warm.plan))
    planner.reset()
    assert initial_mean(planner).abs().max() == 0
    assert shift_plan(first)[:, -1].abs().max() == 0 and torch.equal(shift_plan(first)[:, 0], first[:, 1])


def initial_mean(planner, batch_size=3):
    """The mean the planner's next plan would start from (the shifted previous plan or zeros)."""
    shape = (batch_size, planner.config.horizon, planner.model.action_dim)
    return planner._warm.initial_mean(planner.config.warm_start, shape, torch.device("cpu"))


def test_cem_without_warm_start_restarts_from_zero_mean():
    model = make_model()
    planner = CEMPlanner(model, RewardObjective(model), CEM_SMALL)
    planner.plan(start_state())
    assert initial_mean(planner).abs().max() == 0


def test_expand_states_is_row_major():
    state = start_state()
    big = expand_states(state, 4)
    assert big.batch_size == (12,)
    torch.testing.assert_close(big[keys.LATENT], STARTS.repeat_interleave(4, 0))


@pytest.mark.parametrize("planner_cls", [CEMPlanner, MPPIPlanner])
def test_reset_entries_forgets_only_those_rows(planner_cls):
    model = make_model()
    base = CEM_SMALL if planner_cls is CEMPlanner else MPPI_SMALL
    planner = planner_cls(model, RewardObjective(model), type(base)(**{**base.__dict__, "warm_start": True}))
    plan = planner.plan(start_state())
    planner.reset(3, entries=torch.tensor([False, True, False]))
    warm = initial_mean(planner)
    torch.testing.assert_close(warm[[0, 2]], shift_plan(plan)[[0, 2]])
    assert warm[1].abs().max() == 0


def test_reward_objective_chunks_give_the_same_values():
    model = make_model()
    torch.manual_seed(0)
    state = TensorDict({keys.LATENT: torch.randn(7, 2)}, batch_size=[7])
    imagined = model.imagine(state, torch.rand(7, 5, 2) * 2 - 1)
    whole = RewardObjective(model, chunk_rows=10_000)
    chunked = RewardObjective(model, chunk_rows=4)
    torch.testing.assert_close(chunked.per_step(model, imagined), whole.per_step(model, imagined))
    torch.testing.assert_close(RewardObjective(model, chunk_rows=3)(model, imagined), whole(model, imagined))
