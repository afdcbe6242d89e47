"""The RoboYoga LEXA configs against orybkin/lexa ``configs.yaml`` (defaults + lexa_temporal; methods.md 2.4, 3.3)."""

from __future__ import annotations

import pytest

from worldmodels.core.config import load_config


@pytest.mark.parametrize("body", ["walker", "quadruped"])
def test_roboyoga_configs_match_lexa_settings(body):
    cfg = load_config(f"configs/lexa_{body}_goals.yaml")
    assert cfg.method == "lexa" and cfg.env.goal_set == f"roboyoga_{body}" and cfg.env.domain == body
    env, model, ac, lexa, train = cfg.env, cfg.model, cfg.actor_critic, cfg.lexa, cfg.train
    assert (env.image_size, env.action_repeat, env.episode_length) == (64, 2, 1000)  # time_limit 1000 -> 500 steps
    assert (model.stoch_dim, model.deter_dim, model.hidden_dim, model.classes, model.cnn_depth) == (50, 200, 200, 0, 32)
    assert (model.kl_balance, model.kl_free, model.kl_scale, model.learning_rate) == (0.8, 1.0, 1.0, 3e-4)
    assert model.weight_decay == 0.0 and ac.weight_decay == 0.0  # LEXA defaults (1e-6 is its v2 variant)
    assert (ac.horizon, ac.discount, ac.lambda_, ac.actor_lr, ac.critic_lr) == (15, 0.99, 0.95, 8e-5, 8e-5)
    assert (ac.actor_entropy, ac.target_update_every, ac.actor_grad, ac.actor_dist) == (
        1e-4, 100, "dynamics", "trunc_normal")
    assert (ac.layers, ac.units) == (4, 400)
    assert (cfg.replay.batch_size, cfg.replay.sequence_length) == (45, 50)
    steps_per_episode = env.episode_length // env.action_repeat
    assert train.seed_episodes * steps_per_episode == 2500  # prefill 2500
    assert steps_per_episode / train.updates_per_episode == 5  # train_every 5
    assert lexa.achiever_reward == "temporal" and (lexa.temporal_pairs, lexa.negative_fraction) == (256, 0.1)
    assert (lexa.ensemble_members, lexa.ensemble_layers, lexa.ensemble_units, lexa.disag_log) == (10, 4, 400, True)
    assert lexa.explorer_every == 2 and lexa.distance_lr == 8e-5
    faithful = ("linear", True, "sequence", 0, "mean", "full")
    assert (lexa.distance_output, lexa.distance_batchnorm, lexa.distance_negatives, lexa.distance_starts,
            lexa.goal_features, lexa.cosine_part) == faithful  # fmt: skip
