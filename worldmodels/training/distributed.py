"""Data-parallel training over ``torch.distributed``, launched by ``torchrun``: one leader, K-1 followers.

    torchrun --nproc_per_node=K -m worldmodels.cli train CONFIG [key=value ...]

Rank 0, the *leader*, runs the ordinary loop (collects every episode, evaluates, logs, checkpoints,
holds the run directory's writer lock). The other ranks, the *followers*, hold the same model,
optimiser and behaviour learner and obey the leader's command stream (:func:`follow`)::

    ("episode", rows [L])   add one finished episode to the follower's own replay (a rank-local temp dir)
    ("update", index)       one learner update on a batch sampled from the follower's replay, own RNG
    ("evaluate", name)      run this rank's share of the leader's evaluation ``name`` (a sharded one,
                            e.g. LEXA's goal set: ``evaluation.sharding``), meeting the leader at its gather
    ("stop",)               the leader finished; leave

Each update, every rank samples its own ``[B, T]`` batch; gradients of the world model and of the
behaviour learner are averaged over the ranks (:meth:`Team.average_gradients_of`: an all-reduce per
parameter as its gradient is accumulated, before clipping and the optimiser step), so with equal
``B`` the update equals one process's on the union of the K batches -- for losses that are means of
per-sample terms (see ``docs/architecture.md`` for those that are not). The optimiser states stay
identical on all ranks because the averaged gradients are. A single process is a :class:`Team` of
one whose methods do nothing, so the loops have one code path.

Why the leader collects: the episode schedule and the train ratio (updates per env step) stay the
config's whatever K is, the replay (the resume state) lives in one place, and a run resumes with a
different K without any conversion. More environments per run come from ``env.num_envs``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist

COLLECTIVE_TIMEOUT = timedelta(hours=2)
"""how long followers wait for the leader's next command (it may be evaluating or collecting a long episode)"""


class Team:
    """This process's place among the data-parallel learners (rank, world size, local device index).

    Built by :meth:`from_environment` from torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; a
    process not started by torchrun (or with ``WORLD_SIZE=1``) is a team of one.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self._averaging = False
        self._hooks: list = []
        self._owns_group = False

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Team":
        """Join the process group torchrun set up (``env://`` rendezvous). Backends: gloo for CPU
        tensors, plus NCCL for CUDA tensors when a GPU is present (``cpu:gloo,cuda:nccl``)."""
        world_size = int(environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        team = cls(int(environ["RANK"]), world_size, int(environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
            if torch.cuda.is_available():
                torch.cuda.set_device(team.local_rank % torch.cuda.device_count())
                # MuJoCo's EGL renders on this GPU too (env workers inherit it), unless the user chose one.
                environ.setdefault("MUJOCO_EGL_DEVICE_ID", str(team.local_rank % torch.cuda.device_count()))
            dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
            team._owns_group = True
        return team

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def __repr__(self) -> str:
        return f"Team(rank={self.rank}, world_size={self.world_size}, local_rank={self.local_rank})"

    # ------------------------------------------------------------------ placement and seeds
    def device(self, device: torch.device) -> torch.device:
        """``cuda`` (no index) becomes ``cuda:LOCAL_RANK`` (one GPU per process); others are kept."""
        if self.is_distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return device

    def seed_follower(self, seed: int, updates: int) -> None:
        """Give a follower its own RNG stream (replay windows, sampling noise), different on every
        rank and every (re)start; the leader keeps the stream it restored, so K=1 is a plain run."""
        if not self.is_leader:
            torch.manual_seed(seed + 1_000_003 * self.rank + updates)

    # ------------------------------------------------------------------ collectives
    def broadcast(self, value):
        """The leader's ``value`` on every rank (any picklable object; returned as is on a team of one)."""
        if not self.is_distributed:
            return value
        box = [value if self.is_leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        """Every rank's ``value``, in rank order, on every rank (``all_gather_object``; ``[value]`` on a
        team of one). Sharded evaluations (``evaluation.goal_sets``, ``evaluation.returns``) merge with it."""
        if not self.is_distributed:
            return [value]
        parts = [None] * self.world_size
        dist.all_gather_object(parts, value)
        return parts

    def share_state(self, model: torch.nn.Module, optimizer, behaviour) -> None:
        """Copy the leader's model, optimiser and behaviour state (freshly built or restored) to every rank."""
        if not self.is_distributed:
            return
        payload = None
        if self.is_leader:
            buffer = io.BytesIO()
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "behaviour": behaviour.state_dict() if behaviour is not None else None}  # fmt: skip
            torch.save(state, buffer)
            payload = buffer.getvalue()
        payload = self.broadcast(payload)
        if not self.is_leader:
            device = next(model.parameters()).device
            state = torch.load(io.BytesIO(payload), map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if behaviour is not None:
                behaviour.load_state_dict(state["behaviour"])

    def average_gradients_of(self, *modules: torch.nn.Module | None) -> None:
        """Average each parameter's gradient over the ranks as soon as backward has accumulated it
        (``register_post_accumulate_grad_hook``), inside :meth:`averaging` blocks only.

        Every rank runs the same graph, so the hooks fire in the same order everywhere and the
        all-reduces pair up. Parameters frozen during a backward (the world model under the
        actor-critic loss) accumulate nothing and are not reduced. Acting and evaluation, which only
        the leader runs, happen outside :meth:`averaging`, so their (rare) backward passes reduce nothing.
        """
        if not self.is_distributed:
            return
        seen = set()
        for module in modules:
            if module is None:
                continue
            for param in module.parameters():
                if id(param) not in seen and param.requires_grad:
                    seen.add(id(param))
                    self._hooks.append(param.register_post_accumulate_grad_hook(self._average))

    def _average(self, param: torch.Tensor) -> None:
        if self._averaging and param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(self.world_size)

    @contextlib.contextmanager
    def averaging(self) -> Iterator[None]:
        """Gradients accumulated in this block are averaged over the ranks."""
        self._averaging = True
        try:
            yield
        finally:
            self._averaging = False

    # ------------------------------------------------------------------ the leader's commands
    def send_episodes(self, replay, count: int) -> None:
        """Send the ``count`` newest episodes of the leader's replay to the followers (oldest first)."""
        if self.is_distributed:
            for position in range(replay.num_episodes - count, replay.num_episodes):
                self.broadcast(("episode", replay.episode(position).clone()))

    def send_update(self, index: int) -> None:
        """Tell the followers to make learner update number ``index`` with the leader."""
        if self.is_distributed:
            self.broadcast(("update", index))

    def send_evaluate(self, name: str) -> None:
        """Tell the followers to run their share of the sharded evaluation ``name`` with the leader."""
        if self.is_distributed:
            self.broadcast(("evaluate", name))

    def send_stop(self) -> None:
        if self.is_distributed:
            self.broadcast(("stop",))

    def close(self) -> None:
        """Remove the gradient hooks (the modules can be used alone again)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def shutdown(self) -> None:
        """Leave the process group at the end of the run (only one this team set up itself)."""
        self.close()
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False


def is_follower_process(environ=os.environ) -> bool:
    """Whether torchrun started this process as a rank other than 0 (which prints nothing of its own)."""
    return int(environ.get("RANK", "0")) != 0


def follow(team: Team, replay, update: Callable[[int], object], evaluate: Callable[[str], object] | None = None) -> int:
    """A follower's whole run: obey the leader's commands until ``stop``; returns the updates made.

    Args:
        replay: the follower's own replay (``add_episode(rows)``, sampled by ``update``).
        update: ``update(index)`` makes one learner update (inside ``team.averaging()``).
        evaluate: ``evaluate(name)`` runs this rank's share of a sharded evaluation (the method's).
    """
    updates = 0
    while True:
        command = team.broadcast(None)
        if command[0] == "episode":
            replay.add_episode(command[1])
        elif command[0] == "update":
            with team.averaging():
                update(command[1])
            updates += 1
        elif command[0] == "evaluate" and evaluate is not None:
            evaluate(command[1])
        elif command[0] == "stop":
            return updates
        else:
            raise RuntimeError(f"unknown command from the leader: {command[0]!r}")


@contextlib.contextmanager
def follower_replay_dir(team: Team) -> Iterator[Path]:
    """A rank-local temporary directory for a follower's replay, removed when the run ends."""
    directory = Path(tempfile.mkdtemp(prefix=f"worldmodels-replay-rank{team.rank}-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
