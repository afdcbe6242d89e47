"""Evaluations split across 2 gloo ranks (``evaluation.sharding``) equal one process's, in content and order.

* ``run_goal_set`` and ``returns.evaluate_seeded`` on 2 spawned ranks: each runs half the episodes and
  both return exactly the one-process result. A toy agent whose actions depend on the goal image and
  on the torch RNG stands in for a trained one, so the per-episode seeds are checked with the merge.
* A follower told ``("evaluate", name)`` inside ``follow`` runs its share and meets the leader.
* (slow) ``torchrun --nproc_per_node=2 -m worldmodels.cli eval`` (goals and returns) prints what one
  process prints; a torchrun LEXA run's in-training and final goal evaluations complete.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from envs import make_env
from envs.goals import num_goals
from worldmodels.core import keys
from worldmodels.core.config import load_config
from worldmodels.evaluation.goal_sets import run_goal_set
from worldmodels.evaluation.returns import evaluate_seeded
from worldmodels.evaluation.sharding import merged, my_share
from worldmodels.training.distributed import Team, follow

GOALS = load_config(None, ["env.domain=point_mass", "env.task=easy", "env.episode_length=8", "env.action_repeat=2",
                     "replay.sequence_length=4"])
RETURNS = load_config(None, ["env.domain=cartpole", "env.task=swingup", "env.episode_length=16", "env.action_repeat=4",
                       "replay.sequence_length=4"])
EPISODES_PER_GOAL, RETURN_EPISODES = 2, 3
REPO = Path(__file__).resolve().parents[1]


class NoisyAgent:
    """Actions ``0.5 * noise + goal image mean`` (torch RNG noise); counts the episodes it starts."""

    started = 0

    def __init__(self, goal_pixels=None, action_dim: int = 2):
        self.bias = 0.0 if goal_pixels is None else float(goal_pixels.float().mean()) / 255 - 0.5
        self.action_dim = action_dim

    def reset(self, batch: int) -> None:
        NoisyAgent.started += 1

    def __call__(self, td):
        action = (torch.rand(self.action_dim) * 2 - 1) * 0.5 + self.bias
        td.set(keys.ACTION, action.clamp(-1, 1))
        return td


def evaluations(team=None) -> dict:
    """The goal-set evaluation and the seeded return evaluation of the toy agent (JSON-able)."""
    goals = run_goal_set(GOALS, "point_mass", NoisyAgent, episodes=EPISODES_PER_GOAL, progress=False, team=team)
    env = make_env(RETURNS.env, seed=RETURNS.seed + 10_000)
    try:
        returns = evaluate_seeded(env, NoisyAgent(action_dim=1), RETURN_EPISODES, RETURNS.seed + 10_000, 0, team=team)
    finally:
        env.close()
    return {"goals": goals, "returns": returns}


def announced_evaluation(team: Team) -> list:
    """The leader announces a sharded evaluation (``Team.send_evaluate``) and runs its share; the follower,
    inside :func:`follow`, runs its own and both meet at the gather. Returns the merged items on each rank."""
    def share(name):
        return merged([{"item": i, "rank": team.rank, "name": name} for i in my_share(range(5), team)], team, "item")

    if team.is_leader:
        team.send_evaluate("goals")
        result = share("goals")
        team.send_stop()
        return result
    results = []
    assert follow(team, replay=None, update=None, evaluate=lambda name: results.append(share(name))) == 0
    return results[0]


def _rank(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        team = Team(rank, 2)
        announced = announced_evaluation(team)
        result = evaluations(team)
        result["started"] = NoisyAgent.started
        result["announced"] = announced
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("sharded_eval")
    mp.spawn(_rank, args=(str(out_dir / "init"), str(out_dir)), nprocs=2, join=True)
    return out_dir


def test_two_ranks_split_the_episodes_and_merge_to_one_processs_result(two_ranks):
    ranks = [json.loads((two_ranks / f"rank{r}.json").read_text()) for r in range(2)]
    goal_episodes = num_goals("point_mass") * EPISODES_PER_GOAL
    # each rank ran its half (the goal-set episodes, then the return episodes), not everything
    assert [r.pop("started") for r in ranks] == [goal_episodes // 2 + 2, goal_episodes // 2 + 1]
    # a follower told to evaluate (LEXA's goal set during training) runs its share and meets the leader
    for r in ranks:
        assert [(a["item"], a["rank"], a["name"]) for a in r.pop("announced")] == [
            (0, 0, "goals"), (1, 1, "goals"), (2, 0, "goals"), (3, 1, "goals"), (4, 0, "goals")]
    assert ranks[0] == ranks[1]  # every rank returns the merged result
    alone = json.loads(json.dumps(evaluations()))  # one process, the same seeds
    assert ranks[0] == alone
    per_goal = alone["goals"]["per_goal"]
    assert [g["goal"] for g in per_goal] == list(range(num_goals("point_mass")))
    # the episodes differ (seeds per episode, not one start state repeated), so a wrong merge order shows
    starts = [d for g in per_goal for d in g["episodes"]["initial_distance"]]
    assert len(set(starts)) == len(starts)
    assert len(set(alone["returns"]["returns"])) == RETURN_EPISODES


def test_a_share_is_every_kth_item_and_the_merge_restores_the_order():
    class FakeTeam:
        def __init__(self, rank, world_size):
            self.rank, self.world_size = rank, world_size

        def gather(self, value):  # what all_gather_object returns: each rank's list, in rank order
            return [[{"item": i} for i in my_share(range(7), FakeTeam(r, self.world_size))] for r in range(3)]

    assert my_share(range(7), FakeTeam(1, 3)) == [1, 4]
    assert my_share(range(7), None) == list(range(7))
    assert [r["item"] for r in merged([], FakeTeam(0, 3), "item")] == list(range(7))
    assert Team().gather({"a": 1}) == [{"a": 1}]  # a team of one gathers its own value, no process group


# ----------------------------------------------------------------------------- torchrun end to end


@pytest.mark.slow
def test_torchrun_eval_splits_goals_and_returns_and_prints_what_one_process_does(tmp_path):
    from test_cli import TINY_POINT_MASS
    from test_distributed import SUBPROCESS_ENV, torchrun

    from worldmodels.methods import train

    run = train(load_config(None, TINY_POINT_MASS + ["env.episode_length=16"]), run_dir=tmp_path / "run")

    def alone(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "worldmodels.cli", *args], env=SUBPROCESS_ENV, cwd=REPO,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    goals = ["eval", str(run), "--goals", "point_mass", "--episodes", "2"]
    one = json.loads(alone(*goals))
    two = torchrun(2, *goals)
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads(two.stdout) == one  # one JSON document: only rank 0 printed

    returns = ["eval", str(run), "--episodes", "3"]
    one_line = alone(*returns)
    one = json.loads((run / "eval.json").read_text())
    two = torchrun(2, *returns)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout == one_line and json.loads((run / "eval.json").read_text()) == one
    assert len(one["returns"]) == 3  # (point_mass's sparse reward: 0 in these short episodes; see the test above)


@pytest.mark.slow
def test_torchrun_lexa_training_shares_its_goal_evaluations_with_the_follower(tmp_path):
    from test_distributed import torchrun

    from worldmodels.core.config import save_config
    from worldmodels.training.logger import read_metrics

    config = tmp_path / "lexa.yaml"
    from tests.test_lexa_training import tiny_lexa_run

    save_config(load_config(None, tiny_lexa_run(goal_eval_every=2, total_episodes=2)), config)
    result = torchrun(2, "train", str(config), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_metrics(tmp_path / "run")
    # the in-training and the final goal-set evaluation both met the follower at their gather (no hang, one row each)
    assert len([r for r in records if "eval/goal_success" in r]) == 1
    assert len([r for r in records if "final/goal_success" in r]) == 1
