"""LEXA training: explorer + achiever updates on a real DreamerV2 (Gaussian) model, no task reward
anywhere, goal-conditioned acting, and a tiny run end to end on the reacher goal set."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict

from worldmodels.training import checkpoint
from worldmodels.core import keys
from worldmodels.cli.main import main
from worldmodels.core.config import ActorCriticConfig, ConfigError, LexaConfig, LexaModelConfig, load_config
from worldmodels.models.dreamer import DreamerV2
from worldmodels.training.step import make_model_optimizer
from worldmodels.cli.commands import evaluate_goals
from planners.lexa_behaviour import LexaBehaviour
from tests.toy_model import ToyModel
from worldmodels.core.interface import CapabilityError
from worldmodels.training.logger import read_metrics
from worldmodels.methods import train
from worldmodels.training.online import updates_owed
from worldmodels.training.run_dir import checkpoint_path
from worldmodels.training.step import gradient_step

TINY_MODEL = LexaModelConfig(deter_dim=16, hidden_dim=16, stoch_dim=6, cnn_depth=4, mlp_layers=1, mlp_units=16)
TINY_AC = ActorCriticConfig(horizon=4, layers=1, units=16)
TINY_LEXA = LexaConfig(ensemble_members=3, ensemble_layers=1, ensemble_units=16, temporal_pairs=16)


def _batch(b: int = 3, t: int = 5, reward: float = 0.0) -> TensorDict:
    gen = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    return TensorDict(
        {
            keys.PIXELS: torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=gen),
            keys.PREV_ACTION: torch.rand(b, t, 2, generator=gen) * 2 - 1,
            keys.REWARD: torch.full((b, t, 1), reward),
            keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: torch.zeros_like(is_first),
        },
        batch_size=[b, t],
    )


def _build(achiever_reward: str = "temporal"):
    torch.manual_seed(0)
    model = DreamerV2(TINY_MODEL, action_dim=2)
    lexa = LexaConfig(**{**TINY_LEXA.__dict__, "achiever_reward": achiever_reward})
    return model, make_model_optimizer(TINY_MODEL, model), LexaBehaviour(model, TINY_AC, lexa)


def _params(*modules) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("achiever_reward", ["temporal", "cosine"])
def test_update_trains_every_learner_and_never_the_world_model(achiever_reward):
    model, _, lexa = _build(achiever_reward)
    batch = _batch()
    out = model.loss(batch)
    assert out.embed.shape == (3, 5, model.embed_dim)
    model_before = _params(model)
    learners = [lexa.ensemble, lexa.explorer.actor, lexa.explorer.critic, lexa.achiever.actor, lexa.achiever.critic]
    if lexa.temporal is not None:
        learners += [lexa.temporal.embed_head, lexa.temporal.distance_net]
    before = [_params(m) for m in learners]
    metrics = lexa.update(out)
    for name in ("ensemble/loss/disagreement", "explorer/imagine/reward", "achiever/imagine/reward"):
        assert torch.isfinite(metrics[name]), name
    if achiever_reward == "temporal":
        assert torch.isfinite(metrics["temporal/loss/distance"]) and torch.isfinite(metrics["temporal/loss/embed"])
        assert metrics["temporal/distance/positive_mean"] != metrics["temporal/distance/negative_mean"]
    else:
        assert -1 <= float(metrics["achiever/imagine/reward"]) <= 1  # cosine
    for module, old in zip(learners, before):
        assert any(not torch.equal(a, b) for a, b in zip(old, module.parameters())), type(module).__name__
    assert all(torch.equal(a, b) for a, b in zip(model_before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_no_gradient_from_task_rewards():
    """Two batches that differ only in their rewards give bit-identical world models and behaviours."""
    results = []
    for reward in (0.0, 123.0):
        model, opt, lexa = _build()
        torch.manual_seed(1)
        _, out = gradient_step(model, opt, TINY_MODEL.grad_clip, _batch(reward=reward), 0)
        lexa.update(out)
        results.append(_params(model, lexa))
    assert all(torch.equal(a, b) for a, b in zip(*results))
    assert not DreamerV2(TINY_MODEL, action_dim=2).has_reward  # nothing may plan or learn on its reward head


def test_update_refuses_a_loss_output_without_embeddings_and_models_without_embedding():
    model, _, lexa = _build()
    out = model.loss(_batch())
    with pytest.raises(ValueError, match="needs LossOutput.embed.*must declare has_embedding"):
        lexa.update(out._replace(embed=None))
    with pytest.raises(CapabilityError, match="ToyModel has no image embedding"):
        LexaBehaviour(ToyModel(action_dim=2), TINY_AC, TINY_LEXA)


def test_policy_is_the_explorers_and_checkpoint_names_are_kept():
    model, _, lexa = _build()
    features = torch.randn(3, model.feature_dim)
    torch.testing.assert_close(lexa.policy(sample=False)(features), lexa.explorer.act(features))
    names = lexa.state_dict().keys()  # names written by checkpoints before rewards became objectives
    for name in (
        "explorer.reward_fn.ensemble.weights.0",
        "achiever.reward_fn.temporal.embed_head.net.0.weight",
        "achiever.reward_fn.temporal.distance_net.net.0.weight",
        "ensemble.weights.0",
        "temporal.embed_head.net.0.weight",
        "explorer.actor.net.0.weight",
        "achiever.target_critic.net.0.weight",
    ):
        assert name in names, name


def test_achiever_policy_takes_the_goal_image():
    model, _, lexa = _build()
    assert lexa.achiever.actor.net[0].in_features == model.feature_dim + model.embed_dim
    features = torch.randn(1, model.feature_dim)
    pixels = _batch()[keys.PIXELS]
    a1 = lexa.achiever_policy(pixels[0, 0])(features)
    a2 = lexa.achiever_policy(pixels[1, 3])(features)
    assert a1.shape == (1, 2) and not torch.allclose(a1, a2)
    assert torch.equal(lexa.achiever_policy(pixels[0, 0])(features), a1)  # mode: deterministic


def test_explorer_vs_random_compares_the_same_starts():
    model, _, lexa = _build()
    start = model.loss(_batch()).posterior.reshape(-1)
    runs = []
    for _ in range(2):
        torch.manual_seed(1)  # the prior's latent samples; the random actions come from `generator`
        runs.append(lexa.explorer_vs_random(start, generator=torch.Generator().manual_seed(0)))
    scores = runs[0]
    assert set(scores) == {"explorer", "random"} and all(map(torch.isfinite, map(torch.tensor, scores.values())))
    assert runs[1] == scores
    with torch.no_grad():  # identical members: zero disagreement for any policy, log(eps) for both
        for weights in (*lexa.ensemble.weights, *lexa.ensemble.biases):
            weights.copy_(weights[:1].expand_as(weights))
    flat = lexa.explorer_vs_random(start)
    assert flat["explorer"] == pytest.approx(flat["random"]) == pytest.approx(float(torch.log(torch.tensor(1e-8))))


def test_config_defaults_and_refusals():
    cfg = load_config(None, ["method=lexa"])
    assert isinstance(cfg.model, LexaModelConfig)
    assert (cfg.model.classes, cfg.model.stoch_dim, cfg.model.cnn_depth, cfg.model.kl_balance, cfg.model.kl_free) == (
        0, 50, 32, 0.8, 1.0,
    )  # fmt: skip
    assert cfg.lexa.ensemble_members == 10 and cfg.lexa.explorer_every == 2
    with pytest.raises(ConfigError, match="model.reward_scale"):
        load_config(None, ["method=lexa", "model.reward_scale=1.0"])
    with pytest.raises(ConfigError, match="goal task set"):
        load_config(None, ["method=lexa", "lexa.goal_eval_every=2"])


def tiny_lexa_run(goal_eval_every: int, total_episodes: int) -> list[str]:
    """Overrides of a tiny LEXA reacher run (seconds on a CPU), shared with the torchrun LEXA test."""
    return [
        "method=lexa", "env.domain=reacher", "env.task=easy", "env.goal_set=reacher",
        "env.episode_length=16", "env.action_repeat=2",
        "model.deter_dim=16", "model.hidden_dim=16", "model.stoch_dim=6", "model.cnn_depth=4",
        "model.mlp_layers=1", "model.mlp_units=16",
        "actor_critic.horizon=3", "actor_critic.layers=1", "actor_critic.units=16",
        "lexa.ensemble_members=3", "lexa.ensemble_layers=1", "lexa.ensemble_units=16", "lexa.temporal_pairs=8",
        f"lexa.goal_eval_every={goal_eval_every}",
        "replay.batch_size=2", "replay.sequence_length=6", "replay.capacity=1000",
        "train.seed_episodes=1", f"train.total_episodes={total_episodes}", "train.updates_per_episode=2",
        "train.eval_every=0", "log.progress=false", "log.tensorboard=false", "device=cpu",
    ]  # fmt: skip


def test_tiny_lexa_run_end_to_end_then_eval_goals(tmp_path, capsys):
    cfg = load_config(None, tiny_lexa_run(goal_eval_every=3, total_episodes=3))
    run_dir = train(cfg, run_dir=tmp_path / "run")
    records = read_metrics(run_dir)
    assert any("train/explorer/imagine/reward" in r and "train/achiever/imagine/reward" in r for r in records)
    success = [r["eval/goal_success"] for r in records if "eval/goal_success" in r]
    assert len(success) == 1 and 0.0 <= success[0] <= 1.0
    assert all(r["eval/explorer/intrinsic"] < 10 and r["eval/random/intrinsic"] < 10 for r in records
               if "eval/goal_success" in r)
    state = checkpoint.load(checkpoint_path(run_dir))
    assert state["counters"]["updates"] == updates_owed(cfg, 3)
    assert state["behaviour"]["_extra_state"]["ensemble_opt"]["state"], "ensemble optimiser not checkpointed"

    result = evaluate_goals(run_dir, "reacher", episodes=1, video_dir=tmp_path / "videos")
    assert len(result["per_goal"]) == 8 and 0.0 <= result["success_rate"] <= 1.0
    for g in result["per_goal"]:  # true-state distances: reacher's fingertip reaches 0.21 m from the centre
        assert 0.0 < g["initial_distance"] < 0.45 and 0.0 <= g["min_distance"] <= g["final_distance"] < 0.45
        assert g["moved_closer_rate"] == float(g["final_distance"] < g["initial_distance"])
    assert len(list((tmp_path / "videos").glob("goal_*.mp4"))) == 8
    with pytest.raises(ValueError, match="domain"):
        evaluate_goals(run_dir, "point_mass")
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 2  # no task reward: eval needs --goals
    assert "pass --goals SET" in capsys.readouterr().err


def test_resumed_behaviour_state_matches(tmp_path):
    model, _, lexa = _build()
    out = model.loss(_batch())
    lexa.update(out)
    clone = copy.deepcopy(lexa)
    lexa.load_state_dict(clone.state_dict())
    assert lexa.ensemble_opt.state_dict()["state"].keys() == clone.ensemble_opt.state_dict()["state"].keys()
    fresh = _build()[2]
    fresh.load_state_dict(lexa.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), lexa.parameters()))
    assert fresh.temporal_opt.state_dict()["state"], "optimiser state not restored"
