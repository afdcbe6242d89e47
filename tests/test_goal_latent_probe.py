"""benchmarks/goal_latent_probe.py: Spearman on hand-made orders, and the probe's contract on a tiny
trained point_mass run (posterior samples are noisy, the posterior mean is not)."""

import numpy as np
import torch
from test_cli import TINY_POINT_MASS

from benchmarks import goal_latent_probe
from worldmodels.core.config import load_config
from worldmodels.methods import load_trained, train


def test_spearman_on_hand_made_orders():
    a = np.array([0.1, 0.5, 0.2, 0.9])
    assert goal_latent_probe.spearman(a, 10 * a + 3) == 1.0
    assert goal_latent_probe.spearman(a, -a) == -1.0
    assert abs(goal_latent_probe.spearman(np.arange(4.0), np.array([1.0, 0.0, 3.0, 2.0])) - 0.6) < 1e-9


def test_linear_probe_reads_a_linear_state_and_not_noise():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 5))
    states = np.stack([feats @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + 3, np.zeros(200)], 1)  # 2nd entry constant
    assert goal_latent_probe.linear_probe_r2(feats, states) > 0.999
    assert goal_latent_probe.linear_probe_r2(rng.normal(size=(200, 5)), states) < 0.1


def test_probe_on_a_tiny_point_mass_run(tmp_path):
    run_dir = train(load_config(None, TINY_POINT_MASS), run_dir=tmp_path / "run")
    args = ["--run-dir", str(run_dir), "--task-set", "point_mass", "--starts", "4", "--episodes", "2", "--steps", "6",
            "--warmup", "2", "--goal-hold", "3"]  # fmt: skip
    out = goal_latent_probe.main(args)
    filtered = out["filtered"]
    assert set(filtered) == {"full, sample (planners today)", "full, mean", "stoch, posterior mean",
                             "stoch, prior mean", "deter only", "full, mean, goal held 3",
                             "full, prior mean, goal held 3"}  # fmt: skip
    assert all(len(rho) == 9 and all(-1.0 <= r <= 1.0 for r in rho) for rho in filtered.values())
    assert len(out["goals"]) == 9 and len(out["sample"]["spearman"]) == 9 == len(out["mean"]["spearman"])
    assert all(-1.0 <= s <= 1.0 for v in ("sample", "mean") for s in out[v]["spearman"])
    assert min(out["sample"]["noise"]) > 0  # two posterior samples of one frame differ
    again = goal_latent_probe.main(args)
    assert again["mean"]["spearman"] == out["mean"]["spearman"]
    assert again["filtered"]["stoch, prior mean"] == filtered["stoch, prior mean"]  # seeded episodes, no sampling  # the mean is deterministic, starts seeded
    assert (run_dir / "goal_latent_probe_point_mass.json").is_file()
    run = load_trained(run_dir, device="cpu")
    _, frames, true, states = goal_latent_probe.start_frames(run.cfg, "point_mass", 0, 4)
    run.env.close()
    assert frames.dtype == torch.uint8 and frames.shape[0] == 4 == len(states) and len(set(np.round(true, 6))) == 4
    assert out["state_r2"] <= 1.0


def test_a_model_without_a_posterior_is_read_through_embed_goal():
    from test_pldm import tiny_model

    model = tiny_model().eval()
    pixels = torch.randint(0, 256, (3, 2, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        feats = goal_latent_probe.goal_features(model, pixels, sample=True)
        assert torch.equal(feats, model.embed_goal(pixels))  # deterministic: `sample` has no meaning here
