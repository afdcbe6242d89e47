"""benchmarks/lexa_reward_probe.py on a tiny LEXA temporal run: its readings' contract, D read against the
episodes' real frames, and the refusal of a run without the temporal reward."""

import pytest
import torch

from benchmarks import lexa_reward_probe
from tests.test_lexa_training import tiny_lexa_run
from worldmodels.core.config import load_config
from worldmodels.methods import train


def test_probe_on_a_tiny_temporal_run(tmp_path, monkeypatch):
    run_dir = train(load_config(None, tiny_lexa_run(0, 2)), run_dir=tmp_path / "run")
    args = ["--run-dir", str(run_dir), "--episodes", "2", "--steps", "8", "--warmup", "2"]
    out = lexa_reward_probe.main(args)
    assert len(out["goals"]) == 8 == len(out["reward_spearman"])
    assert all(-1.0 <= r <= 1.0 for r in out["reward_spearman"])
    assert len(out["distance_by_k"]) == 3  # H = 3 in the tiny run
    assert out["runs"] == 8 * 2 * ((8 - 2) // 3)  # goals x episodes x runs of H in the rows after warmup
    assert (run_dir / "lexa_reward_probe_reacher.json").is_file()
    # D is read on (predicted state, real frame k ahead): with D = |goal|, its readings are the frames' norms
    from planners.lexa_networks import TemporalDistance

    def goal_norm(self, e, g, batch_stats=False):
        return torch.broadcast_tensors(e, g)[1].norm(dim=-1, keepdim=True)

    monkeypatch.setattr(TemporalDistance, "distance", goal_norm)
    norms = lexa_reward_probe.main(args)["distance_by_k"]
    assert all(n > 0 for n in norms) and len(set(round(n, 6) for n in norms)) == 3
    with pytest.raises(SystemExit):
        lexa_reward_probe.main(args[:2] + ["--warmup", "7", "--steps", "8"])  # 8 - 7 rows < H = 3


def test_probe_refuses_a_cosine_run(tmp_path):
    run_dir = train(load_config(None, tiny_lexa_run(0, 2) + ["lexa.achiever_reward=cosine"]), run_dir=tmp_path / "r")
    with pytest.raises(SystemExit):
        lexa_reward_probe.main(["--run-dir", str(run_dir)])
