"""The one table of methods: it agrees with the config schema, builds what it promises, and is the
only place that compares method names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from planners.agents import PlanningAgent, PolicyAgent
from worldmodels.core.config import MODEL_CONFIGS, ConfigError, load_config
from worldmodels.methods import METHODS, method_of

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "planet": ["model.deter_dim=16", "model.stoch_dim=4", "model.hidden_dim=16", "model.cnn_depth=4",
               "model.reward_units=8", "model.reward_layers=1"],
    "dreamerv2": ["model.deter_dim=16", "model.hidden_dim=16", "model.stoch_dim=4", "model.classes=4",
                  "model.cnn_depth=4", "model.mlp_units=8", "model.mlp_layers=1", "actor_critic.units=8",
                  "actor_critic.layers=1"],
    "lexa": ["model.deter_dim=16", "model.hidden_dim=16", "model.stoch_dim=4", "model.cnn_depth=4",
             "model.mlp_units=8", "model.mlp_layers=1", "actor_critic.units=8", "actor_critic.layers=1",
             "lexa.ensemble_members=2", "lexa.ensemble_units=8", "lexa.ensemble_layers=1"],
    "pldm": ["model.encoder_channels=[4,4]", "model.encoder_blocks=0", "model.latent_dim=8",
             "model.predictor_hidden=8", "model.idm_hidden=8"],
}  # fmt: skip


def test_the_table_and_the_config_schema_name_the_same_methods():
    assert set(METHODS) == set(MODEL_CONFIGS) == set(TINY)
    assert all(name == method.name for name, method in METHODS.items())


def test_an_unknown_method_is_refused_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: planet, dreamerv2, lexa, pldm"):
        load_config(None, ["method=dreamer"])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_builds_its_model_behaviour_and_agents(name):
    cfg = load_config(None, [f"method={name}", *TINY[name]])
    method = method_of(cfg)
    model = method.make_model(cfg, action_dim=2, image_shape=(3, 64, 64))
    assert isinstance(model.config, MODEL_CONFIGS[name])
    behaviour = method.make_behaviour(cfg, model)
    if model.has_reward or behaviour is not None:  # PLDM has no reward: it only acts toward goals
        agent = method.make_agent(cfg, model, behaviour, explore=False)
        assert isinstance(agent, PolicyAgent if behaviour is not None else PlanningAgent)
    goal = torch.zeros(3, 64, 64, dtype=torch.uint8)
    goal_agent = method.goal_agent_for(cfg, model, behaviour)(goal)
    assert isinstance(goal_agent, PolicyAgent if method.goal_policy is not None else PlanningAgent)
    assert method.loop == ("offline" if name == "pldm" else "online")


def _method_name_comparisons(path: Path) -> list[int]:
    """Lines comparing something called ``method`` with a string (or strings): ``cfg.method == "x"``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        names_method = any(isinstance(s, (ast.Name, ast.Attribute)) and getattr(s, "attr", getattr(s, "id", None)) == "method"
                           for s in sides)  # fmt: skip
        has_string = any(isinstance(s, ast.Constant) and isinstance(s.value, str)
                         or isinstance(s, (ast.Tuple, ast.List, ast.Set)) and any(isinstance(e, ast.Constant) for e in s.elts)
                         for s in sides)  # fmt: skip
        if names_method and has_string:
            lines.append(node.lineno)
    return lines


def test_only_the_table_compares_method_names():
    found = {}
    for package in ("worldmodels", "planners", "envs", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name != "methods.py" and (lines := _method_name_comparisons(path)):
                found[str(path.relative_to(ROOT))] = lines
    assert not found, f"method names compared outside worldmodels/methods.py: {found}"


def test_the_comparison_finder_finds_one(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("if cfg.method == 'lexa':\n    pass\nif run.cfg.method in ('a', 'b'):\n    pass\n")
    assert _method_name_comparisons(path) == [1, 3]
