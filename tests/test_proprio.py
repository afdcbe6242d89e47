"""Vector observations (``keys.PROPRIO``, ``env.observation: proprio | both``) for the RSSM models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from envs import make_env
from planners.agents import PlanningAgent
from planners.cem import CEMPlanner
from planners.objectives import RewardObjective
from worldmodels.core import keys
from worldmodels.core.config import CEMConfig, ConfigError, DreamerConfig, EnvConfig, PlaNetConfig, load_config
from worldmodels.core.interface import CapabilityError, check_world_model
from worldmodels.data.replay import SequenceReplay
from worldmodels.models.dreamer import DreamerV2
from worldmodels.models.planet import PlaNet

P, A = 5, 1  # cartpole: position (3,) + velocity (2,); one action
TINY = {
    PlaNet: PlaNetConfig(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=1,
                         proprio_units=32, proprio_layers=2),
    DreamerV2: DreamerConfig(deter_dim=16, stoch_dim=4, classes=4, hidden_dim=16, cnn_depth=4, mlp_units=16,
                             mlp_layers=1, proprio_units=32, proprio_layers=2, kl_free=0.0),
}  # fmt: skip
MODES = ["proprio", "both"]


def make(cls, observation, proprio_dim=P):
    torch.manual_seed(0)
    return cls(TINY[cls], action_dim=A, observation=observation, proprio_dim=proprio_dim)


def fixed_batch(b=4, t=8, seed=0):
    """A [B, T] batch whose vector is a smooth function of time (learnable) and pixels to match."""
    gen = torch.Generator().manual_seed(seed)
    phase = torch.rand(b, 1, 1, generator=gen) * 6.28
    steps = torch.arange(t, dtype=torch.float32)[None, :, None]  # [1,T,1]
    vector = torch.cat([torch.sin(phase + 0.3 * steps * (k + 1)) for k in range(P)], -1)  # [B,T,P]
    pixels = ((vector[..., :1, None, None] + 1) * 127).clamp(0, 255).to(torch.uint8).expand(b, t, 3, 64, 64)
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    prev_action = torch.rand(b, t, A, generator=gen) * 2 - 1
    prev_action[:, 0] = 0
    return TensorDict(
        {
            keys.PIXELS: pixels.contiguous(), keys.PROPRIO: vector, keys.PREV_ACTION: prev_action,
            keys.ACTION: torch.zeros(b, t, A), keys.REWARD: vector[..., :1].clone(), keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: torch.zeros_like(is_first), keys.IS_LAST: torch.zeros_like(is_first),
        },
        batch_size=[b, t],
    )  # fmt: skip


@pytest.mark.parametrize("cls", [PlaNet, DreamerV2])
@pytest.mark.parametrize("observation", MODES)
def test_interface_shapes_and_capabilities(cls, observation):
    model = make(cls, observation)
    check_world_model(model)  # observe / imagine / loss shapes; embed_goal refused; has_embedding False
    expected = {"proprio": (keys.PROPRIO,), "both": (keys.PIXELS, keys.PROPRIO)}[observation]
    assert model.observation_keys == expected
    assert model.has_decoder == (observation == "both") and not model.has_embedding
    batch = fixed_batch()
    post = model.observe(batch, batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
    assert post.batch_size == torch.Size([4, 8])
    assert model.decode_proprio(post).shape == (4, 8, P)
    imagined = model.imagine(post[:, -1], torch.zeros(4, 3, A))
    assert model.features(imagined).shape == (4, 3, model.feature_dim)
    out = model.loss(batch)
    assert "loss/proprio" in out.metrics.keys() and out.embed is None
    assert ("loss/image" in out.metrics.keys()) == (observation == "both")


@pytest.mark.parametrize("cls", [PlaNet, DreamerV2])
def test_vector_only_model_ignores_pixels(cls):
    """A proprio model's posterior does not depend on pixels; a both model's does."""
    batch = fixed_batch()
    other = batch.clone()
    other[keys.PIXELS] = 255 - other[keys.PIXELS]
    for observation, same in [("proprio", True), ("both", False)]:
        model = make(cls, observation)
        args = (batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
        torch.manual_seed(1)
        a = model.features(model.observe(batch, *args))
        torch.manual_seed(1)
        b = model.features(model.observe(other, *args))
        assert torch.allclose(a, b) == same


@pytest.mark.parametrize("cls", [PlaNet, DreamerV2])
@pytest.mark.parametrize("observation", MODES)
def test_loss_falls_on_a_fixed_batch(cls, observation):
    model = make(cls, observation)
    batch = fixed_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    first = model.loss(batch).metrics["loss/proprio"].item()
    steps, ratio = (100, 0.5) if observation == "proprio" else (80, 0.75)  # both: conv nets too, slower
    for _ in range(steps):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    last = model.loss(batch).metrics["loss/proprio"].item()
    assert last < ratio * first, (first, last)


@pytest.mark.parametrize("observation", MODES)
def test_goal_images_and_missing_vector_are_refused(observation):
    model = make(DreamerV2, observation)
    pixels = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    with pytest.raises(CapabilityError, match="goal images need a model with env.observation: pixels"):
        model.embed_goal(pixels)
    with pytest.raises(CapabilityError):
        model.embed(pixels)
    batch = fixed_batch().exclude(keys.PROPRIO)
    with pytest.raises(KeyError, match="missing \\['proprio'\\]"):
        model.observe(batch, batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
    with pytest.raises(ValueError, match="proprio_dim >= 1"):
        DreamerV2(TINY[DreamerV2], action_dim=A, observation=observation)


def test_pixel_models_keep_bare_pixel_tensors():
    model = PlaNet(TINY[PlaNet], action_dim=A)
    batch = fixed_batch()
    torch.manual_seed(2)
    a = model.observe(batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
    torch.manual_seed(2)
    b = model.observe(batch, batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
    assert torch.equal(model.features(a), model.features(b))
    assert model.observation_keys == (keys.PIXELS,) and model.has_embedding


@pytest.fixture(scope="module")
def proprio_env():
    env = make_env(EnvConfig(domain="cartpole", task="balance", episode_length=24, action_repeat=4,
                             observation="proprio"), seed=1)  # fmt: skip
    yield env
    env.close()


def test_dmc_rows_carry_the_observation_vector(proprio_env, tmp_path):
    env = proprio_env
    assert env.observation_spec[keys.PROPRIO].shape == (P,) and env.proprio_keys == ("position", "velocity")
    td = env.reset()
    observation = env._env.task.get_observation(env.physics)  # dm_control's dict for the same state
    expected = np.concatenate([np.asarray(observation[k]).reshape(-1) for k in env.proprio_keys])
    np.testing.assert_allclose(td[keys.PROPRIO].numpy(), expected, rtol=1e-6)
    rollout = env.rollout(100, break_when_any_done=True)  # 6 agent steps
    replay = SequenceReplay(tmp_path / "replay", capacity=100)
    replay.add_rollout(rollout)
    rows = replay.sample(2, 5)
    assert rows[keys.PROPRIO].shape == (2, 5, P) and rows[keys.PROPRIO].dtype == torch.float32
    assert rows[keys.PROPRIO].abs().sum() > 0
    reopened = SequenceReplay(tmp_path / "replay", capacity=100)  # stored on disk, not only in memory
    assert reopened.sample(1, 7)[keys.PROPRIO].shape == (1, 7, P)
    pixel_env = make_env(EnvConfig(domain="cartpole", task="balance", episode_length=8), seed=1)
    assert keys.PROPRIO not in pixel_env.observation_spec.keys()
    pixel_env.close()


@pytest.mark.parametrize("cls", [PlaNet, DreamerV2])
def test_planning_agent_acts_on_vector_observations(proprio_env, cls):
    model = make(cls, "proprio")
    planner = CEMPlanner(model, RewardObjective(model), CEMConfig(horizon=3, candidates=16, top_k=4, iterations=2))
    agent = PlanningAgent(model, planner)
    rollout = proprio_env.rollout(4, policy=agent)
    assert rollout[keys.ACTION].shape == (4, A) and rollout[keys.ACTION].abs().max() <= 1


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["method=lexa", "env.observation=proprio"], "pixels for method lexa"),
        (["method=pldm", "env.suite=two_rooms", "env.observation=both"], "env.observation"),
        (["env.observation=proprio", "env.goal_set=reacher"], "goal images are pixels"),
        (["env.observation=vector"], "env.observation"),
    ],
)
def test_config_refusals(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_config_accepts_proprio_for_planet_and_dreamer():
    for method in ("planet", "dreamerv2"):
        cfg = load_config(None, [f"method={method}", "env.observation=both"])
        assert cfg.env.observation == "both"


@pytest.mark.slow
def test_tiny_state_based_dreamerv2_trains_and_reloads(tmp_path):
    """``env.observation: proprio`` end to end: collect, update, evaluate, checkpoint, reload for eval."""
    from worldmodels.methods import load_trained, train
    from worldmodels.training.logger import read_metrics

    cfg = load_config(None, [
        "method=dreamerv2", "env.domain=cartpole", "env.task=balance", "env.episode_length=48",
        "env.action_repeat=4", "env.observation=proprio", "model.deter_dim=16", "model.hidden_dim=16",
        "model.stoch_dim=4", "model.classes=4", "model.mlp_layers=1", "model.mlp_units=16",
        "model.proprio_layers=2", "model.proprio_units=16", "model.init=reference",
        "actor_critic.horizon=3", "actor_critic.layers=1", "actor_critic.units=16",
        "replay.batch_size=2", "replay.sequence_length=6", "replay.capacity=1000",
        "train.seed_episodes=2", "train.total_episodes=3", "train.updates_per_episode=2",
        "train.eval_every=3", "train.eval_episodes=1", "log.progress=false", "log.tensorboard=false",
        "device=cpu",
    ])  # fmt: skip
    run_dir = train(cfg, run_dir=tmp_path / "run")
    records = read_metrics(run_dir)
    assert any("train/loss/proprio" in r for r in records) and not any("train/loss/image" in r for r in records)
    assert any("eval/episode/return" in r for r in records)
    trained = load_trained(run_dir, device="cpu")
    assert trained.model.observation_keys == (keys.PROPRIO,) and trained.model.proprio_dim == P
    assert keys.PIXELS not in trained.env.observation_spec.keys()
    trained.env.close()
    rendering = load_trained(run_dir, device="cpu", render=True)  # eval --video
    assert rendering.env.reset()[keys.PIXELS].shape == (3, 64, 64)
    rendering.env.close()
    from worldmodels.cli.imagine import imagine_run

    with pytest.raises(ValueError, match="env.render: true"):  # no stored pixels for a probe decoder
        imagine_run(run_dir, episodes=1, context=2, horizon=2)


def test_proprio_env_renders_only_when_asked():
    cfg = EnvConfig(domain="cartpole", task="balance", episode_length=8, observation="proprio")
    assert not cfg.renders() and EnvConfig(observation="both").renders()
    env = make_env(cfg, seed=0)
    td = env.reset()
    assert keys.PIXELS not in td.keys() and keys.PROPRIO in td.keys()
    assert env.render().shape == (3, 64, 64)  # still drawn on demand
    env.close()
    env = make_env(EnvConfig(domain="cartpole", task="balance", episode_length=8, observation="proprio", render=True))
    assert env.reset()[keys.PIXELS].shape == (3, 64, 64)
    env.close()
    with pytest.raises(ConfigError, match="env.render"):
        load_config(None, ["env.observation=both", "env.render=false"])
    with pytest.raises(ConfigError, match="log.video_every"):
        load_config(None, ["env.observation=proprio", "log.video_every=1"])
    load_config(None, ["env.observation=proprio", "env.render=true", "log.video_every=1"])


def test_symlog_option_encodes_and_reconstructs_in_symlog_space():
    from dataclasses import replace

    from worldmodels.models.rssm_world_model import symexp, symlog

    x = torch.tensor([-100.0, -1.0, 0.0, 0.5, 1e3])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5) and symlog(torch.tensor(1e3)) < 7.0
    batch = fixed_batch()
    batch[keys.PROPRIO] = batch[keys.PROPRIO] * 100.0  # large raw scale
    losses = {}
    for flag in (False, True):
        torch.manual_seed(0)
        model = DreamerV2(replace(TINY[DreamerV2], proprio_symlog=flag), action_dim=A, observation="proprio",
                          proprio_dim=P)  # fmt: skip
        torch.manual_seed(0)
        losses[flag] = model.loss(batch).metrics["loss/proprio"].item()
        post = model.observe(batch, batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
        assert model.decode_proprio(post).shape == (4, 8, P)
    assert losses[True] < 0.01 * losses[False]  # targets symlog(100 sin) ~ +-4.6 instead of +-100
