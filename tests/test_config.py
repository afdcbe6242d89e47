"""Configs: unknown keys, wrong types and bad ranges give one clear error; overrides; round-trip."""

from pathlib import Path

import pytest

from worldmodels.core.config import ConfigError, RunConfig, load_config, save_config, to_dict

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_are_paper_values():
    cfg = load_config()
    assert (cfg.cem.horizon, cfg.cem.candidates, cfg.cem.top_k, cfg.cem.iterations) == (12, 1000, 100, 10)
    assert cfg.model.free_nats == 3.0 and cfg.model.stoch_dim == 30 and cfg.model.deter_dim == 200
    assert (cfg.replay.batch_size, cfg.replay.sequence_length) == (50, 50)


def test_unknown_key_names_key_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cem:\n  horizn: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "'cem.horizn'" in msg and "horizon" in msg and "Did you mean 'cem.horizon'" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="Unknown config key 'trian'"):
        load_config(None, ["trian.seed_episodes=3"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("cem.horizon=abc", "Wrong type for 'cem.horizon'"),
        ("cem.horizon=1.5", "expected int"),
        ("env.fast_render=3", "expected bool"),
        ("planner=beam", "'planner'"),
        ("cem.top_k=5000", "'cem.top_k'"),
        ("env.image_size=4", "'env.image_size'"),
        ("device=tpu", "'device'"),
        ("method=nosuch", "'method'"),
    ],
)
def test_bad_values_give_named_errors(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert fragment in str(err.value)


def test_overrides_parse_yaml_values():
    cfg = load_config(None, ["cem.horizon=8", "env.fast_render=true", "model.learning_rate=3e-4", "env.camera=null"])
    assert cfg.cem.horizon == 8 and cfg.env.fast_render is True
    assert cfg.model.learning_rate == pytest.approx(3e-4) and cfg.env.camera is None


def test_int_is_accepted_for_float_field():
    assert load_config(None, ["model.learning_rate=1"]).model.learning_rate == 1.0


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["cem.horizon"])


def test_round_trip(tmp_path):
    cfg = load_config(None, ["cem.horizon=7", "env.domain=walker"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and to_dict(again) == to_dict(cfg)


def test_configs_are_frozen():
    cfg = RunConfig()
    with pytest.raises(Exception):
        cfg.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.method in ("planet", "dreamerv2", "lexa", "pldm")


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["train.checkpoint_every=0"], "Invalid value 0 for 'train.checkpoint_every': must be >= 1"),
        (["train.eval_episodes=0", "train.eval_every=5"], "'train.eval_episodes': must be >= 1 when train.eval_every > 0"),
        (["train.updates_per_episode=-5"], "Invalid value -5 for 'train.updates_per_episode': must be >= 1"),
        (["train.max_minutes=-1"], "'train.max_minutes'"),
        (["env.image_size=17"], "Invalid value 17 for 'env.image_size': must be 64, the only size the conv"),
        (["method=dreamerv2", "env.image_size=32"], "must be 64, the only size the conv encoder and decoder take (method dreamerv2)"),
        (["method=pldm", "model.input_pool=2", "env.image_size=17"], "must be a multiple of model.input_pool (2)"),
        (["device=gpu"], "Invalid value 'gpu' for 'device': must be auto, cpu, cuda or cuda:N."),
        (["device=cudax"], "'device'"),
        # cartpole's default action repeat is 8 (envs.dmc's table): 1000 env steps -> 125 agent steps + 1 row
        (["replay.sequence_length=127"], "'replay.sequence_length': must be <= the rows of one episode, ceil(env.episode_length / action_repeat) + 1 = 126"),
        (["env.action_repeat=2", "env.episode_length=100", "replay.sequence_length=52"], "= 51 (windows never cross episodes)"),
        (["replay.capacity=5"], "Invalid value 5 for 'replay.capacity': must be >= the rows of one episode"),
        (["env.suite=two_rooms", "method=pldm", "offline.n_steps=17", "replay.sequence_length=18"], "must be <= offline.n_steps (17)"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_values_that_would_fail_late_are_refused_at_load(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["replay.sequence_length=126", "replay.capacity=126"],  # exactly one cartpole episode
        ["train.eval_episodes=0", "train.eval_every=0"],  # never evaluates: no episodes needed
        ["method=pldm", "env.image_size=65"],  # the IMPALA encoder takes any size (PLDM's 65)
        ["device=cuda:1"],
    ],
)
def test_values_at_the_limit_are_accepted(overrides):
    load_config(None, overrides)


def test_conv_image_size_is_the_networks_one():
    from worldmodels.core.config import CONV_IMAGE_SIZE
    from worldmodels.models.networks import IMAGE_SIZE

    assert CONV_IMAGE_SIZE == IMAGE_SIZE


def test_with_overrides_copies_and_validates():
    from worldmodels.core.config import ConfigError, load_config, with_overrides

    cfg = load_config(None, ["method=pldm", "env.suite=two_rooms"])
    changed = with_overrides(cfg, ["mppi.samples=7", "planner=icem"])
    assert changed.mppi.samples == 7 and changed.planner == "icem" and cfg.mppi.samples != 7
    with pytest.raises(ConfigError, match="mppi.sampels"):
        with_overrides(cfg, ["mppi.sampels=7"])
