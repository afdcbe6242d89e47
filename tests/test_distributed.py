"""Data-parallel training (``worldmodels.training.distributed``): 2 gloo processes, tiny sizes.

* One update of PlaNet and of the imagination actor-critic with gradients averaged over 2 ranks
  gives the parameters of one process updating on the union of the two batches (sampling noise
  fixed: posterior/prior samples are their means, actor samples their modes).
* The leader's command stream: episodes and updates reach the followers; a team of one does nothing.
* (slow) ``torchrun --nproc_per_node=2 -m worldmodels.cli train`` runs a tiny run, which then resumes
  in one process.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tensordict import TensorDict

from planners.action_distributions import TruncatedNormal
from planners.actor_critic import ImaginationActorCritic
from worldmodels.core import keys
from worldmodels.core.config import ActorCriticConfig, PlaNetConfig, load_config, save_config
from worldmodels.models.planet import PlaNet
from worldmodels.models.rssm import RSSM
from worldmodels.training import checkpoint
from worldmodels.training.distributed import Team, follow
from worldmodels.training.run_dir import checkpoint_path
from worldmodels.training.step import gradient_step, make_model_optimizer

REPO = Path(__file__).resolve().parents[1]
MODEL = PlaNetConfig(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=1,
                     free_nats=0.25)  # some (b, t) clamp, some do not
ACTOR_CRITIC = ActorCriticConfig(horizon=3, layers=1, units=16)
BATCH, LENGTH = 2, 4  # per rank


def union_batch(ranks: int = 2) -> TensorDict:
    """``[ranks * BATCH, LENGTH]`` windows; rank r trains on rows ``r * BATCH .. (r + 1) * BATCH - 1``."""
    g = torch.Generator().manual_seed(3)
    b = ranks * BATCH
    is_first = torch.zeros(b, LENGTH, 1, dtype=torch.bool)
    is_first[:, 0] = True
    prev_action = (torch.rand(b, LENGTH, 2, generator=g) * 2 - 1).masked_fill(is_first, 0.0)
    return TensorDict({
        keys.PIXELS: torch.randint(0, 256, (b, LENGTH, 3, 64, 64), dtype=torch.uint8, generator=g),
        keys.PREV_ACTION: prev_action,
        keys.REWARD: torch.rand(b, LENGTH, 1, generator=g).masked_fill(is_first, 0.0),
        keys.IS_FIRST: is_first,
        keys.IS_TERMINAL: torch.zeros_like(is_first),
    }, batch_size=[b, LENGTH])  # fmt: skip


@contextlib.contextmanager
def fixed_sampling_noise():
    """Inside the block RSSM samples are their means, actor samples their modes (gradients still flow)
    and PlaNet's pixel dequantisation noise is its mean."""
    noise, rsample, embed = RSSM._noise, TruncatedNormal.rsample, PlaNet._embed
    RSSM._noise = lambda self, shape, like, sample=True: noise(self, shape, like, sample=False)
    TruncatedNormal.rsample = lambda self: self.mode
    PlaNet._embed = lambda self, pixels, noise=False: embed(self, pixels, False)
    try:
        yield
    finally:
        RSSM._noise, TruncatedNormal.rsample, PlaNet._embed = noise, rsample, embed


def one_update(batch: TensorDict, team: Team | None = None) -> dict[str, torch.Tensor]:
    """Build the tiny PlaNet + actor-critic (same seed), make one world-model and one behaviour update."""
    torch.manual_seed(0)
    model = PlaNet(MODEL, action_dim=2)
    behaviour = ImaginationActorCritic(model, ACTOR_CRITIC)
    optimizer = make_model_optimizer(MODEL, model)
    team = team or Team()
    team.average_gradients_of(model, behaviour)
    with team.averaging(), fixed_sampling_noise():
        _, out = gradient_step(model, optimizer, MODEL.grad_clip, batch, 0)
        behaviour.update(out)
    team.close()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"behaviour.{k}": v for k, v in behaviour.state_dict().items() if isinstance(v, torch.Tensor)})
    return state


def _rank(rank: int, init_file: str, out_dir: str) -> None:
    """One rank of the 2-process team both tests read (one spawn: starting processes is the slow part)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        team = Team(rank, 2)
        state = one_update(union_batch()[rank * BATCH : (rank + 1) * BATCH], team)
        if rank == 0:
            torch.save(state, Path(out_dir) / "update.pt")
        commands(team, Path(out_dir) / "follower.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("two_ranks")
    mp.spawn(_rank, args=(str(out_dir / "init"), str(out_dir)), nprocs=2, join=True)
    return out_dir


def test_two_ranks_update_like_one_process_on_the_union_of_their_batches(two_ranks):
    distributed = torch.load(two_ranks / "update.pt")
    union = one_update(union_batch())
    half = one_update(union_batch()[:BATCH])  # what rank 0 alone would have done
    assert distributed.keys() == union.keys()
    moved_by_other_rank = 0.0
    for name, value in union.items():
        torch.testing.assert_close(distributed[name], value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
        if value.is_floating_point():
            moved_by_other_rank = max(moved_by_other_rank, float((distributed[name] - half[name]).abs().max()))
    assert moved_by_other_rank > 1e-5, "rank 1's batch changed nothing: the gradients were not averaged"
    assert any(name.startswith("behaviour.actor.") for name in union)  # the actor-critic is compared too


class ListReplay:
    def __init__(self):
        self.episodes = []

    def add_episode(self, rows):
        self.episodes.append(rows)


def commands(team: Team, out_file: Path) -> None:
    """The leader sends two episodes, two updates and stop; the follower records what it got."""
    if team.is_leader:


        class Replay:  # what send_episodes reads of a SequenceReplay
            num_episodes = 3

            def episode(self, position):
                return TensorDict({"x": torch.full((2,), position)}, [2])

        team.send_episodes(Replay(), 2)  # the two newest: positions 1 and 2
        team.send_update(7)
        team.send_update(8)
        team.send_stop()
    else:
        replay, updates = ListReplay(), []
        made = follow(team, replay, updates.append)
        torch.save({"episodes": [e["x"] for e in replay.episodes], "updates": updates, "made": made}, out_file)


def test_followers_obey_the_leaders_episodes_updates_and_stop(two_ranks):
    got = torch.load(two_ranks / "follower.pt")
    assert [int(e[0]) for e in got["episodes"]] == [1, 2]
    assert got["updates"] == [7, 8] and got["made"] == 2


def test_a_team_of_one_changes_nothing():
    team = Team.from_environment({})
    assert team.world_size == 1 and team.is_leader and not team.is_distributed
    assert team.broadcast("x") == "x" and team.device(torch.device("cuda")) == torch.device("cuda")
    model = torch.nn.Linear(2, 1)
    team.average_gradients_of(model)
    assert not team._hooks  # no hook on a team of one: a plain process pays nothing


# ----------------------------------------------------------------------------- torchrun end to end

TINY = ["env.domain=cartpole", "env.task=swingup", "env.episode_length=48", "env.action_repeat=4",
        "model.deter_dim=16", "model.stoch_dim=4", "model.hidden_dim=16", "model.cnn_depth=4",
        "model.reward_units=16", "model.reward_layers=1", "replay.batch_size=2", "replay.sequence_length=6",
        "replay.capacity=1000", "cem.horizon=3", "cem.candidates=16", "cem.top_k=4", "cem.iterations=2",
        "train.seed_episodes=2", "train.total_episodes=3", "train.updates_per_episode=3", "train.eval_every=0",
        "train.final_eval_episodes=0", "log.progress=false", "log.tensorboard=false", "device=cpu"]  # fmt: skip
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}


def torchrun(nproc: int, *args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "worldmodels.cli", *args]  # fmt: skip
    env = {**SUBPROCESS_ENV, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_two_processes_train_then_resume_with_one(tmp_path):
    config, run_dir = tmp_path / "tiny.yaml", tmp_path / "run"
    save_config(load_config(None, TINY), config)
    (tmp_path / "tmp").mkdir()
    result = torchrun(2, "train", str(config), "--run-dir", str(run_dir), tmpdir=tmp_path / "tmp")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run directory:") == 1  # rank 0 reports; the follower is silent
    assert not list((tmp_path / "tmp").glob("worldmodels-replay-rank1-*"))  # the follower's replay copy is gone
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] == 3 * (3 - 2 + 1)
    resumed = subprocess.run([sys.executable, "-m", "worldmodels.cli", "train", "--resume", str(run_dir),
                              "train.total_episodes=4"], env=SUBPROCESS_ENV, cwd=REPO, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] == 3 * (4 - 2 + 1)
    again = torchrun(2, "train", "--resume", str(run_dir), "train.total_episodes=5")
    assert again.returncode == 0, again.stderr[-3000:]
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] == 3 * (5 - 2 + 1)


@pytest.mark.slow
def test_torchrun_two_processes_train_pldm_offline_then_resume(tmp_path):
    from tests.test_pldm import _tiny_run_config

    config, run_dir = tmp_path / "pldm.yaml", tmp_path / "run"
    save_config(_tiny_run_config(tmp_path, updates=4, extra=["offline.eval_episodes=0"]), config)
    result = torchrun(2, "train", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] == 4
    again = torchrun(2, "train", "--resume", str(run_dir), "offline.updates=6")
    assert again.returncode == 0, again.stderr[-3000:]
    assert checkpoint.load(checkpoint_path(run_dir))["counters"]["updates"] == 6
