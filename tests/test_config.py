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
