"""CEM / MPPI / iCEM / gradient planning recover known optima on the toy position model, respect the
bounds, the norm cap and a per-call horizon, and plan with every model; objectives score as defined."""

import dataclasses

import pytest
import torch
from tensordict import TensorDict

from planners import (
    CEMPlanner,
    GoalDistanceObjective,
    GradientPlanner,
    ICEMPlanner,
    MPPIPlanner,
    PlanningAgent,
    RewardObjective,
    SumObjective,
)
from planners.builder import PLANNERS, make_planner, sequences_per_plan
from planners.icem import colored_noise
from planners.population import bound_actions, expand_states, shift_plan
from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError
from worldmodels.core.config import CEMConfig, GradientPlannerConfig, ICEMConfig, MPPIConfig, load_config


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
ICEM_SMALL = ICEMConfig(horizon=4, iterations=10, population=400, population_decay=1.1, elites=40, noise_beta=0.5,
                        warm_start=False)
GRADIENT_SMALL = GradientPlannerConfig(horizon=4, iterations=60, lr=0.1, restarts=3, warm_start=False)
SMALL = {CEMPlanner: CEM_SMALL, MPPIPlanner: MPPI_SMALL, ICEMPlanner: ICEM_SMALL, GradientPlanner: GRADIENT_SMALL}
ALL = pytest.mark.parametrize("planner_cls", list(SMALL), ids=["cem", "mppi", "icem", "gradient"])


def small(planner_cls, **changes):
    """The planner's small test config with ``changes``."""
    return dataclasses.replace(SMALL[planner_cls], **changes)


@pytest.mark.parametrize("planner_cls, config", list(SMALL.items()), ids=["cem", "mppi", "icem", "gradient"])
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


@ALL
def test_actions_stay_in_bounds_when_optimum_is_outside(planner_cls):
    torch.manual_seed(1)
    model = make_model()
    model.target.fill_(50.0)  # unreachable: the best plan pushes at +1 everywhere
    config = {
        CEMPlanner: CEMConfig(horizon=3, iterations=3, candidates=64, top_k=8),
        MPPIPlanner: MPPIConfig(horizon=3, iterations=3, samples=64, noise_std=3.0),
        ICEMPlanner: ICEMConfig(horizon=3, iterations=3, population=64, elites=8, init_std=3.0),
        GradientPlanner: GradientPlannerConfig(horizon=3, iterations=20, lr=0.5, restarts=2),
    }[planner_cls]
    plan = planner_cls(model, RewardObjective(model), config).plan(start_state())
    assert plan.min() >= -1.0 and plan.max() <= 1.0
    assert plan.mean() > 0.8


@ALL
def test_norm_cap_bounds_every_step_and_is_reached_toward_a_far_target(planner_cls):
    torch.manual_seed(2)
    model = make_model()
    model.target.copy_(torch.tensor([50.0, -50.0]))  # far along the diagonal: the cap binds
    changes = {"iterations": 4} if planner_cls is not GradientPlanner else {"iterations": 30, "lr": 0.3}
    config = small(planner_cls, max_norm=0.5, **changes)
    plan = planner_cls(model, RewardObjective(model), config).plan(start_state())
    norms = torch.linalg.vector_norm(plan, dim=-1)  # [B,H]
    assert norms.max() <= 0.5 + 1e-5
    assert norms.mean() > 0.4
    alignment = (plan / norms[..., None] * torch.tensor([1.0, -1.0]) / 2**0.5).sum(-1)  # cos to the target
    assert alignment.mean() > 0.9 and alignment.min() > 0


def test_bound_actions_clips_then_caps_the_norm_keeping_direction():
    actions = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [-2.0, 0.0]])
    torch.testing.assert_close(bound_actions(actions), actions.clamp(-1, 1))
    capped = bound_actions(actions, max_norm=1.0)
    torch.testing.assert_close(capped, torch.tensor([[0.7071068, 0.7071068], [0.3, 0.4], [0.0, 0.0], [-1.0, 0.0]]))
    assert bound_actions(actions, max_norm=0.25)[1].norm() == pytest.approx(0.25)
    with pytest.raises(Exception, match="max_norm"):
        CEMConfig(max_norm=0.0)


@ALL
def test_plan_takes_a_shorter_horizon_per_call_and_keeps_the_warm_start(planner_cls):
    torch.manual_seed(3)
    model = make_model()
    config = small(planner_cls, warm_start=True, iterations=2)
    planner = planner_cls(model, RewardObjective(model), config)
    assert planner.plan(start_state()).shape == (3, 4, 2)
    assert planner.plan(start_state(), horizon=2).shape == (3, 2, 2)
    assert planner.plan(start_state(), horizon=6).shape == (3, 6, 2)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        planner.plan(start_state(), horizon=0)


@pytest.mark.parametrize("planner_cls", [CEMPlanner, MPPIPlanner, GradientPlanner])
def test_warm_start_with_a_horizon_shrinking_by_one_keeps_every_remaining_step(planner_cls):
    model = make_model()
    planner = planner_cls(model, RewardObjective(model), small(planner_cls, warm_start=True, iterations=1))
    first = planner.plan(start_state(), horizon=5)
    stored = planner._warm.plan
    torch.testing.assert_close(planner._warm.initial_mean(True, (3, 4, 2), torch.device("cpu")), stored[:, 1:])
    longer = planner._warm.initial_mean(True, (3, 6, 2), torch.device("cpu"))
    torch.testing.assert_close(longer[:, :4], stored[:, 1:])
    assert longer[:, 4:].abs().max() == 0 and first.shape == (3, 5, 2)


def test_agent_horizon_reaches_the_planner():
    model = make_model()
    seen = []

    class Recording(CEMPlanner):
        def plan(self, state, horizon=None):
            out = super().plan(state, horizon)
            seen.append(out.shape[1])
            return out

    agent = PlanningAgent(model, Recording(model, RewardObjective(model), small(CEMPlanner, iterations=1)))
    agent.reset(3)
    obs = TensorDict({keys.PIXELS: model.render(STARTS)}, batch_size=[3])
    agent.act(obs)
    agent.horizon = 2
    agent.act(obs)
    assert seen == [4, 2]


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


# ----------------------------------------------------------------------------- iCEM


def test_icem_population_shrinks_by_gamma_with_reused_elites_and_the_mean_in_one_call_each():
    model = make_model()
    config = ICEMConfig(horizon=4, iterations=4, population=100, elites=10, population_decay=2.0)
    planner = ICEMPlanner(model, RewardObjective(model), config)
    planner.plan(start_state())
    # N_i = max(2K, int(N / gamma^i)) = 100, 50, 25, 20; + xi*K = 3 kept elites from i = 1; + the mean at the end
    assert model.calls == [3 * 100, 3 * (50 + 3), 3 * (25 + 3), 3 * (20 + 3 + 1)]
    model.calls.clear()
    planner.plan(start_state())  # the next step adds the last step's 3 best elites, shifted
    assert model.calls[0] == 3 * (100 + 3)


class RecordingObjective(RewardObjective):
    """RewardObjective that keeps the actions of every imagined population."""

    def __init__(self, model):
        super().__init__(model)
        self.populations = []

    def __call__(self, model, imagined):
        self.populations.append(imagined[keys.ACTION].clone())
        return super().__call__(model, imagined)


def test_icem_carries_shifted_elites_into_the_next_step_and_forgets_them_for_reset_entries():
    torch.manual_seed(4)
    model = make_model()
    objective = RecordingObjective(model)
    config = ICEMConfig(horizon=4, iterations=2, population=40, elites=10)
    planner = ICEMPlanner(model, objective, config)
    planner.plan(start_state())
    elites = planner.elites.clone()  # [B,K,H,A], best first
    objective.populations.clear()
    planner.reset(3, entries=torch.tensor([False, True, False]))
    planner.plan(start_state())
    first = objective.populations[0].reshape(3, 43, 4, 2)  # N = 40 sampled + xi*K = 3 shifted elites
    torch.testing.assert_close(first[[0, 2], 40:, :3], elites[[0, 2], :3, 1:])
    assert not torch.allclose(first[1, 40:, :3], elites[1, :3, 1:])  # a new episode: fresh samples there
    torch.testing.assert_close(planner._memory(3, 4, 2, "cpu")[0][:, :3], planner.mean[:, 1:])


def test_icem_warm_start_repeats_the_last_mean_step_and_execute_mean_returns_the_mean():
    model = make_model()
    config = dataclasses.replace(ICEM_SMALL, iterations=2, execute="mean", warm_start=True)
    planner = ICEMPlanner(model, RewardObjective(model), config)
    plan = planner.plan(start_state())
    torch.testing.assert_close(plan, planner.mean)
    warm, remembered = planner._memory(3, 4, 2, "cpu")
    torch.testing.assert_close(warm, torch.cat([plan[:, 1:], plan[:, -1:]], 1))
    assert remembered.all()
    planner.reset()
    assert planner._memory(3, 4, 2, "cpu")[0].abs().max() == 0


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_colored_noise_has_unit_variance_and_power_law_spectrum(beta):
    torch.manual_seed(5)
    steps = 64
    noise = colored_noise(beta, (4000,), steps)  # [4000, 64]
    assert noise.shape == (4000, steps)
    assert noise.var().item() == pytest.approx(1.0, rel=0.05)
    power = torch.fft.rfft(noise).abs().pow(2).mean(0)[1:-1]  # skip DC and Nyquist
    freqs = torch.fft.rfftfreq(steps)[1:-1]
    x, y = freqs.log(), power.log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert slope.item() == pytest.approx(-beta, abs=0.15)
    assert colored_noise(beta, (3,), 1).shape == (3, 1) and colored_noise(beta, (3,), 5).isfinite().all()


# ----------------------------------------------------------------------------- gradient planner


def test_gradient_planner_leaves_model_parameters_untouched_and_returns_a_normal_tensor():
    model = make_model()
    planner = GradientPlanner(model, RewardObjective(model), GRADIENT_SMALL)
    with torch.inference_mode():
        state = start_state().apply(lambda t: t.clone())  # inference tensors, as an agent's belief
        plan = planner.plan(state)
    assert not plan.is_inference() and not plan.requires_grad
    assert model.scale.grad is None
    torch.testing.assert_close(plan[:, 0], OPTIMA, atol=0.05, rtol=0)
    assert model.calls == [3 * 3] * (GRADIENT_SMALL.iterations + 1)


def test_gradient_planner_keeps_the_best_restart():
    torch.manual_seed(6)
    model = make_model()
    objective = RewardObjective(model)
    config = GradientPlannerConfig(horizon=4, iterations=0, restarts=16, init_std=1.0, warm_start=False)
    plan = GradientPlanner(model, objective, config).plan(start_state())  # no steps: the best start
    zeros = objective(model, model.imagine(start_state(), torch.zeros_like(plan)))
    assert (objective(model, model.imagine(start_state(), plan)) >= zeros).all()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_gradient_planner_acts_through_an_agent_under_inference_mode(metric):
    torch.manual_seed(7)
    model = make_model(has_reward=False)
    goals = torch.tensor([[0.4, -0.2], [-0.6, 0.3], [0.9, 0.9]])
    objective = GoalDistanceObjective(model, metric=metric, steps="final")
    with torch.inference_mode():
        objective.set_goal_pixels(model.render(goals))  # an inference-tensor goal
    config = GradientPlannerConfig(horizon=2, iterations=60, lr=0.1, restarts=2)
    agent = PlanningAgent(model, GradientPlanner(model, objective, config))
    agent.reset(3)
    obs = TensorDict({keys.PIXELS: model.render(torch.zeros(3, 2))}, batch_size=[3])
    action = agent.act(obs)
    assert action.shape == (3, 2) and action.abs().max() <= 1.0
    plan = agent.planner._warm.plan  # the whole best plan, [B,H,A]
    torch.testing.assert_close(plan[:, 0], action)
    reached = model.imagine(agent.belief.clone(), plan)[keys.LATENT][:, -1]
    if metric == "l2":
        torch.testing.assert_close(reached, goals, atol=0.05, rtol=0)
    else:  # cosine: the direction of the goal
        assert torch.nn.functional.cosine_similarity(reached, goals, dim=-1).min() > 0.99
    assert model.scale.grad is None


# ----------------------------------------------------------------------------- every planner x every model

TINY_PLANNERS = {
    "cem": CEMConfig(horizon=3, iterations=2, candidates=8, top_k=2),
    "mppi": MPPIConfig(horizon=3, iterations=2, samples=8),
    "icem": ICEMConfig(horizon=3, iterations=2, population=8, elites=2),
    "gradient": GradientPlannerConfig(horizon=3, iterations=2, restarts=2),
}


def test_every_planner_is_registered_and_has_a_tiny_test_config():
    assert set(PLANNERS) == set(TINY_PLANNERS)
    assert load_config(None, ["planner=icem", "icem.noise_beta=2.0"]).icem.noise_beta == 2.0
    assert load_config(None, ["planner=gradient", "gradient.max_norm=0.7"]).gradient.max_norm == 0.7


@pytest.mark.parametrize("planner", sorted(TINY_PLANNERS))
@pytest.mark.parametrize("method", ["planet", "dreamerv2", "lexa", "pldm", "toy"])
def test_every_planner_plans_toward_goals_with_every_model(method, planner):
    """Any planner with any model: from a filtered belief toward goal images, batch of 2, in bounds."""
    from tests.test_methods import TINY
    from worldmodels.methods import method_of

    torch.manual_seed(8)
    if method == "toy":
        model, shape = make_model(), (3, 8, 8)
        cfg = load_config(None, [f"planner={planner}"])
    else:
        cfg = load_config(None, [f"method={method}", f"planner={planner}", *TINY[method]])
        model, shape = method_of(cfg).make_model(cfg, action_dim=2, image_shape=(3, 64, 64)), (3, 64, 64)
    model.eval()
    objective = GoalDistanceObjective(model, metric="l2", steps="last_k", k=2)
    objective.set_goal_pixels(torch.randint(0, 255, (2, *shape), dtype=torch.uint8))
    agent = PlanningAgent(model, make_planner(cfg, model, objective, config=TINY_PLANNERS[planner]))
    agent.reset(2)
    obs = TensorDict({keys.PIXELS: torch.randint(0, 255, (2, *shape), dtype=torch.uint8)}, batch_size=[2])
    for steps_left in (3, 2):
        agent.horizon = steps_left
        action = agent.act(obs)
        assert action.shape == (2, 2) and action.isfinite().all() and action.abs().max() <= 1.0
    assert all(p.grad is None for p in model.parameters())
    if planner == "gradient":  # gradients reach the actions through this model's imagine
        from_zeros = GradientPlannerConfig(horizon=3, iterations=2, restarts=1, warm_start=False)
        assert make_planner(cfg, model, objective, config=from_zeros).plan(agent.belief).abs().max() > 0
    if model.has_reward:
        reward_planner = make_planner(cfg, model, RewardObjective(model), config=TINY_PLANNERS[planner])
        with torch.inference_mode():
            plan = reward_planner.plan(agent.belief)
        assert plan.shape == (2, 3, 2) and plan.isfinite().all()


@pytest.mark.parametrize("name", sorted(TINY_PLANNERS))
def test_sequences_per_plan_counts_what_imagine_sees(name):
    model = make_model()
    config = {"cem": CEM_SMALL, "mppi": MPPI_SMALL, "icem": ICEMConfig(horizon=4, iterations=4, population=100, elites=10),
              "gradient": GRADIENT_SMALL}[name]  # fmt: skip
    planner = make_planner(load_config(None, []), model, RewardObjective(model), name=name, config=config)
    planner.plan(start_state())
    model.calls.clear()
    planner.plan(start_state())  # steady state (iCEM: with the previous step's elites)
    assert sum(model.calls) == 3 * sequences_per_plan(name, config)


def _tiny_dreamer(classes: int):
    from worldmodels.core.config import DreamerConfig
    from worldmodels.models.dreamer import DreamerV2

    torch.manual_seed(3)
    cfg = DreamerConfig(deter_dim=16, hidden_dim=16, stoch_dim=5, classes=classes, cnn_depth=2, mlp_layers=1, mlp_units=8)
    return DreamerV2(cfg, action_dim=2).eval()


@pytest.mark.parametrize("classes", [0, 4], ids=["gaussian", "categorical"])
def test_goal_objective_mean_and_stoch_variants_on_an_rssm(classes):
    model = _tiny_dreamer(classes)
    goal_pixels = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    pixels = torch.randint(0, 256, (2, 1, 3, 64, 64), dtype=torch.uint8)
    first = torch.ones(2, 1, 1, dtype=torch.bool)
    with torch.no_grad():
        post = model.observe(pixels, torch.zeros(2, 1, 2), first)
        # at the first step the mean features of a sampled posterior are the sample=False posterior's
        torch.testing.assert_close(model.mean_features(post)[:, 0],
                                   model.features_from_embed(model.embed(pixels[:, 0]), sample=False))
        imagined = model.imagine(post[:, 0], torch.rand(2, 3, 2) * 2 - 1)  # [2, 3]
    mean = GoalDistanceObjective(model, metric="l2", steps="all", features="mean")
    mean.set_goal_pixels(goal_pixels)
    goal = mean.goal.clone()
    mean.set_goal_pixels(goal_pixels)
    torch.testing.assert_close(mean.goal, goal, rtol=0, atol=0)  # the mean goal is deterministic
    expected = -((model.mean_features(imagined) - goal[:, None]) ** 2).mean(-1)
    torch.testing.assert_close(mean.per_step(model, imagined), expected)
    sampled = GoalDistanceObjective(model, metric="l2", features="sample")
    sampled.set_goal_pixels(goal_pixels)
    assert not torch.allclose(sampled.goal, goal)  # the default draws a posterior sample

    d = model.rssm.deter_dim
    stoch = GoalDistanceObjective(model, goal, metric="l2", steps="all", features="mean", part="stoch")
    expected = -((model.mean_features(imagined)[..., d:] - goal[:, None, d:]) ** 2).mean(-1)
    torch.testing.assert_close(stoch.per_step(model, imagined), expected)
    moved = imagined.clone()
    moved[keys.DETER] = moved[keys.DETER] + 5.0  # another history, the same stochastic state
    torch.testing.assert_close(stoch.per_step(model, moved), stoch.per_step(model, imagined))
    assert not torch.allclose(mean.per_step(model, moved), mean.per_step(model, imagined))


def test_goal_objective_variants_refuse_what_a_model_lacks():
    model = make_model()  # toy model: a deterministic latent, no stochastic part
    with pytest.raises(CapabilityError, match="no 'stoch' part"):
        GoalDistanceObjective(model, part="stoch")
    with pytest.raises(ValueError, match="features must be 'sample' or 'mean'"):
        GoalDistanceObjective(model, features="mode")
    with pytest.raises(ValueError, match="part must be 'full' or 'stoch'"):
        GoalDistanceObjective(model, part="deter")
    goal, imagined = _goal_candidates(model)
    torch.testing.assert_close(  # a deterministic model's mean features are its features
        GoalDistanceObjective(model, goal, metric="l2", features="mean")(model, imagined),
        GoalDistanceObjective(model, goal, metric="l2")(model, imagined))
