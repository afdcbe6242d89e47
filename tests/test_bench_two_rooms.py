"""benchmarks/bench_two_rooms.py: one tiny variant trained and evaluated with two planners end to end."""

import json

from benchmarks import bench_two_rooms as bt

TINY = [
    "offline.n_trajectories=40", "offline.n_steps=9", "offline.updates=3", "offline.log_every=1",
    "offline.checkpoint_every=3", "replay.batch_size=4", "replay.sequence_length=5", "log.progress=false",
    "model.encoder_channels=[4,4,4]", "model.latent_dim=8", "model.predictor_hidden=8", "model.idm_hidden=8",
    "mppi.horizon=4", "mppi.samples=8", "mppi.iterations=1", "gradient.horizon=4", "gradient.iterations=2",
    "gradient.restarts=2", "icem.horizon=4", "icem.population=8", "icem.elites=2", "cem.horizon=4",
    "cem.candidates=8", "cem.top_k=2",
]  # fmt: skip


def test_variants_map_to_the_papers_numbers():
    assert bt.PAPER["wc0"] == "0.568" and bt.PAPER["good"].startswith("0.860")
    assert bt.VARIANTS["wc0"] == ["offline.door_passing_fraction=0.0"] and bt.VARIANTS["good"] == []
    assert all(name in bt.PAPER for name in ("good", "wc0")) and "rand16" not in bt.PAPER


def test_one_variant_two_planners_end_to_end(tmp_path, capsys):
    argv = ["configs/pldm_two_rooms_cpu.yaml", *TINY, "--run-dir", str(tmp_path), "--episodes", "4",
            "--steps", "20", "--planners", "mppi", "gradient", "--variants", "wc0", "--device", "cpu"]  # fmt: skip
    rows = bt.main(argv)
    assert [(r["variant"], r["planner"], r["pairs"]) for r in rows] == [("wc0", "mppi", "cross-room"),
                                                                          ("wc0", "gradient", "cross-room")]
    for r in rows:
        assert r["paper"] == "0.568" and r["episodes"] == 4 and r["updates"] == 3 and r["steps"] == 20
        assert 0.0 <= r["success_ci95_low"] <= r["success_rate"] <= r["success_ci95_high"] <= 1.0
        assert sum(r[f"episodes_{b}"] for b in ("direct", "bend", "detour")) == 4
        assert {"random_success_rate", "sequences_per_plan", "horizon", "eval_s"} <= set(r)
    assert rows[0]["sequences_per_plan"] == 8 and rows[1]["sequences_per_plan"] == 6  # 1 x 8; (2 + 1) x 2
    saved = json.loads((tmp_path / "wc0" / bt.RESULTS).read_text())
    assert [r["planner"] for r in saved] == ["mppi", "gradient"]
    assert json.loads((tmp_path / bt.RESULTS).read_text())[0]["variant"] == "wc0"
    assert (tmp_path / "wc0" / "data" / "dataset.json").is_file()  # the variant's own dataset
    out = capsys.readouterr().out
    table = out[out.index("Two Rooms goal reaching"):].splitlines()
    assert "PLDM paper" in table[2] and len(table) == 5
    assert table[3].split()[:4] == ["wc0", "3", "cross-room", "mppi"] and table[3].rstrip().endswith("0.568")

    # the run directory alone is reused (no retraining); its variant is read from its config
    rows = bt.main(["configs/pldm_two_rooms_cpu.yaml", "--run-dir", str(tmp_path / "wc0"), "--episodes", "4",
                    "--steps", "20", "--planners", "mppi", "gradient", "--same-room", "--device", "cpu"])  # fmt: skip
    assert all(r["variant"] == "wc0" for r in rows)
    assert [r["pairs"] for r in rows] == ["cross-room", "cross-room", "same-room", "same-room"]
    assert rows[-1]["paper"] is None and rows[-1]["updates"] == 3

    # planner settings apply to a reused run's evaluation; training settings are reported as not applied
    rows = bt.main(["configs/pldm_two_rooms_cpu.yaml", "planner=mppi", "mppi.samples=5", "mppi.iterations=2",
                    "replay.batch_size=7",
                    "--run-dir", str(tmp_path / "wc0"), "--episodes", "2", "--steps", "5", "--cost-steps", "last_k",
                    "--device", "cpu"])  # fmt: skip
    assert rows[0]["sequences_per_plan"] == 10 and rows[0]["cost_steps"] == "last_k"
    out = capsys.readouterr().out
    assert "not applied: replay.batch_size=7" in out and "mppi.samples" not in out.split("not applied")[1].splitlines()[0]


def test_eval_overrides_are_told_apart_from_training_ones():
    assert bt.is_eval_override("mppi.samples=512") and bt.is_eval_override("planner=icem")
    assert bt.is_eval_override("offline.eval_shrink_horizon=false")
    assert not bt.is_eval_override("offline.updates=10") and not bt.is_eval_override("replay.batch_size=4")


def test_planning_from_config_takes_only_the_planner_settings():
    from worldmodels.core.config import load_config

    run = load_config("configs/pldm_two_rooms_cpu.yaml", ["mppi.samples=5", "offline.eval_shrink_horizon=false",
                                                          "replay.batch_size=3"])  # fmt: skip
    source = load_config("configs/pldm_two_rooms_cpu.yaml", ["planner=cem", "icem.population=70"])
    merged = bt.planning_from(source, run)
    assert merged.mppi == source.mppi and merged.icem == source.icem and merged.planner == "cem"
    assert merged.offline.eval_shrink_horizon is True and merged.replay.batch_size == 3
    assert merged.offline.updates == run.offline.updates
