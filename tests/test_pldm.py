"""PLDM-style JEPA: interface contract, VICReg math by hand, learning on real Two Rooms data,
offline training end to end (checkpoint + resume), goal reaching with MPPI (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, check_world_model
from worldmodels.core.config import ConfigError, PLDMConfig, load_config, save_config
from worldmodels.methods import METHODS
from worldmodels.models.pldm import PLDM
from worldmodels.models.vicreg import vicreg_covariance, vicreg_variance

TINY = dict(encoder_channels=(4, 8), encoder_blocks=1, norm_groups=4, input_pool=2, latent_dim=16,
            predictor_hidden=16, idm_hidden=16, learning_rate=2e-3)  # fmt: skip


def tiny_model(seed: int = 0, **overrides) -> PLDM:
    torch.manual_seed(seed)
    return PLDM(PLDMConfig(**(TINY | overrides)), action_dim=2, image_shape=(2, 64, 64))


@pytest.fixture(scope="module")
def two_rooms_data():
    """Real PLDM-style Two Rooms trajectories (good data), rendered on the fly."""
    from envs.two_rooms_data import generate_trajectories, make_render_fn, trajectories_to_tensordict
    from worldmodels.data.datasets import OfflineSequenceDataset

    rows = trajectories_to_tensordict(generate_trajectories(300, n_steps=9, seed=0)).reshape(-1)
    meta = {"env": {}, "pixels": "render", "num_steps": 300 * 8}
    return OfflineSequenceDataset(meta, rows, torch.full((300,), 9), make_render_fn(64, 2))


# ----------------------------------------------------------------------------- contract


def test_pldm_passes_check_world_model():
    model = tiny_model()
    check_world_model(model)
    assert model.feature_dim == 16 and not model.has_decoder and not model.has_reward


def test_decode_and_reward_raise_capability_error():
    model = tiny_model()
    state = model.initial_state(3)
    with pytest.raises(CapabilityError, match="no decoder"):
        model.decode(state)
    with pytest.raises(CapabilityError, match="no reward"):
        model.reward(state)


def test_observe_encodes_frames_independently_and_imagine_uses_the_predictor():
    model = tiny_model().eval()
    pixels = torch.randint(0, 256, (2, 3, 2, 64, 64), dtype=torch.uint8)
    zeros = torch.zeros(2, 3, 2)
    first = torch.zeros(2, 3, 1, dtype=torch.bool)
    post = model.observe(pixels, zeros, first)
    # frame 1 alone gives the same latent as inside the sequence: no filtering
    alone = model.observe(pixels[:, 1:2], zeros[:, :1], first[:, :1])
    torch.testing.assert_close(post[keys.LATENT][:, 1], alone[keys.LATENT][:, 0])
    torch.testing.assert_close(model.embed_goal(pixels[:, 2]), post[keys.LATENT][:, 2])
    actions = torch.rand(2, 4, 2) * 2 - 1
    imagined = model.imagine(post[:, 0], actions)
    torch.testing.assert_close(imagined[keys.LATENT], model.unroll(post[keys.LATENT][:, 0], actions))
    with pytest.raises(ValueError, match="pixels must have shape"):
        model.observe(pixels[:, :, :1], zeros, first)


def test_loss_rejects_windows_that_cross_episodes():
    model = tiny_model()
    batch = TensorDict({keys.PIXELS: torch.zeros(2, 3, 2, 64, 64, dtype=torch.uint8),
                        keys.ACTION: torch.zeros(2, 3, 2),
                        keys.IS_FIRST: torch.tensor([True, True, False]).expand(2, 3)[..., None]},
                       batch_size=[2, 3])  # fmt: skip
    with pytest.raises(ValueError, match="crossing an episode start"):
        model.loss(batch)


def test_config_validation():
    cfg = load_config(None, ["method=pldm", "model.encoder_channels=[8,16]", "model.latent_dim=32"])
    assert isinstance(cfg.model, PLDMConfig) and cfg.model.encoder_channels == (8, 16)
    with pytest.raises(ConfigError, match="norm_groups"):
        PLDMConfig(encoder_channels=(6,), norm_groups=4)
    with pytest.raises(ConfigError, match="offline.random_fraction"):
        load_config(None, ["method=pldm", "offline.random_fraction=1.5"])


# ----------------------------------------------------------------------------- VICReg by hand


def test_vicreg_variance_hinge_by_hand():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # N=2, D=2: unbiased var per dim = [2, 0]
    expected = (max(0.0, 1 - math.sqrt(2 + 1e-4)) + (1 - math.sqrt(1e-4))) / 2  # = 0.495
    assert vicreg_variance(z).item() == pytest.approx(expected, abs=1e-6)
    assert vicreg_variance(z * 10).item() == pytest.approx((1 - math.sqrt(1e-4)) / 2, abs=1e-6)
    # leading dims are independent groups, averaged: a second group with std >= 1 everywhere adds 0
    groups = torch.stack([z, torch.tensor([[0.0, 0.0], [3.0, -3.0]])])  # [2, N=2, D=2]
    assert vicreg_variance(groups).item() == pytest.approx(expected / 2, abs=1e-6)
    with pytest.raises(ValueError, match="N >= 2"):
        vicreg_variance(torch.zeros(1, 4))


def test_vicreg_covariance_off_diagonal_by_hand():
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # C = [[2, 2], [2, 2]] -> off-diagonal 2*2^2 = 8, / (2*1)
    assert vicreg_covariance(z).item() == pytest.approx(4.0)
    z3 = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0]])  # C = [[2,4,0],[4,8,0],[0,0,0]]: 2*4^2 / (3*2)
    assert vicreg_covariance(z3).item() == pytest.approx(32.0 / 6.0)
    independent = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # C diagonal
    assert vicreg_covariance(independent).item() == pytest.approx(0.0, abs=1e-7)


def test_loss_terms_match_the_formulas():
    model = tiny_model()
    gen = torch.Generator().manual_seed(1)
    batch = TensorDict({keys.PIXELS: torch.randint(0, 256, (4, 3, 2, 64, 64), dtype=torch.uint8, generator=gen),
                        keys.ACTION: torch.rand(4, 3, 2, generator=gen)}, batch_size=[4, 3])  # fmt: skip
    out = model.loss(batch)
    z = out.posterior[keys.LATENT]
    c = model.config
    torch.testing.assert_close(out.metrics["loss/var"], vicreg_variance(z[:, 0]))
    torch.testing.assert_close(out.metrics["loss/var_t"], vicreg_variance(z[:, 1:]))
    torch.testing.assert_close(out.metrics["loss/time_sim"], ((z[:, 1:] - z[:, :-1]) ** 2).mean())
    m = out.metrics
    total = (c.sim_coeff * m["loss/sim"] + c.std_coeff * m["loss/var"] + c.cov_coeff * m["loss/cov"]
             + c.std_coeff_t * m["loss/var_t"] + c.cov_coeff_t * m["loss/cov_t"]
             + c.sim_coeff_t * m["loss/time_sim"] + c.idm_coeff * m["loss/idm"])  # fmt: skip
    torch.testing.assert_close(out.loss.detach(), total)


# ----------------------------------------------------------------------------- learning on Two Rooms


def _train(model, data, steps: int, batch_size: int = 24):
    opt = torch.optim.Adam(model.parameters(), lr=model.config.learning_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for _ in range(steps):
            out = model.loss(data.sample(batch_size, 9))
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    return out


def _held_out(data, batch_size: int = 64):
    """A fixed batch (seed 123) drawn without touching the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        return data.sample(batch_size, 9)


def test_idm_falls_and_representations_do_not_collapse(two_rooms_data):
    model = tiny_model()
    held_out = _held_out(two_rooms_data)
    with torch.no_grad():
        before = model.loss(held_out).metrics
    _train(model, two_rooms_data, 40)
    with torch.no_grad():
        after = model.loss(held_out).metrics
    assert after["loss/idm"] < 0.8 * before["loss/idm"], (before["loss/idm"], after["loss/idm"])
    assert after["loss/sim"] < before["loss/sim"]
    # VICReg keeps every latent dimension spread over the batch (LayerNorm-ed latents: std ~ 1)
    assert after["repr/std_min"] > 0.3, after["repr/std_min"]
    assert after["loss/var"] < before["loss/var"]


def test_without_vicreg_the_representation_collapses(two_rooms_data):
    """The ablation that makes the previous test meaningful: with the variance/covariance terms off,
    prediction alone drives every latent dimension to a constant (std ~ 0, sim ~ 0)."""
    model = tiny_model(std_coeff=0.0, cov_coeff=0.0, std_coeff_t=0.0)
    held_out = _held_out(two_rooms_data)
    _train(model, two_rooms_data, 40)
    with torch.no_grad():
        after = model.loss(held_out).metrics
    assert after["repr/std_min"] < 0.05 and after["loss/sim"] < 0.01, (after["repr/std_min"], after["loss/sim"])


@pytest.mark.slow
def test_idm_beats_the_constant_predictor(two_rooms_data):
    """After 200 updates the IDM predicts actions from latent pairs: its MSE is well below the
    action variance (the best constant prediction), so the latents encode the displacement."""
    model = tiny_model()
    held_out = _held_out(two_rooms_data)
    actions = held_out[keys.ACTION][:, :-1].reshape(-1, 2)
    constant = ((actions - actions.mean(0)) ** 2).mean()
    _train(model, two_rooms_data, 200)
    with torch.no_grad():
        idm = model.loss(held_out).metrics["loss/idm"]
    assert idm < 0.75 * constant, (float(idm), float(constant))


# ----------------------------------------------------------------------------- offline training


def _tiny_run_config(tmp_path, updates: int, extra=()):
    overrides = ["method=pldm", "device=cpu", "env.suite=two_rooms", "env.two_rooms_channels=2",
                 f"offline.dataset_dir={tmp_path / 'data'}", "offline.n_trajectories=40", "offline.n_steps=9",
                 f"offline.updates={updates}", "offline.log_every=2", "offline.checkpoint_every=2",
                 "offline.eval_episodes=2", "replay.batch_size=8", "replay.sequence_length=5",
                 "mppi.samples=16", "mppi.iterations=1", "mppi.horizon=4", "log.progress=false",
                 "log.tensorboard=false", *[f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY.items()],
                 *extra]  # fmt: skip
    return load_config(None, overrides)


def test_train_offline_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    from worldmodels.training import checkpoint
    from worldmodels.training.logger import read_metrics
    from worldmodels.methods import train

    cfg = _tiny_run_config(tmp_path, updates=4, extra=["env.episode_length=3"])
    run_dir = train(cfg, tmp_path / "run")
    state = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert set(state) == {"config", "model", "optimizer", "behaviour", "counters", "rng"}
    assert state["behaviour"] is None and state["counters"]["updates"] == 4
    records = read_metrics(run_dir)
    assert any("train/loss/idm" in r for r in records)
    assert any("eval/goal/success_rate" in r for r in records)
    from worldmodels.methods import load_trained

    trained = load_trained(run_dir, device="cpu")
    trained.env.close()
    model = trained.model
    assert trained.behaviour is None and isinstance(model, PLDM)
    torch.testing.assert_close(model.state_dict()["predictor.out.weight"], state["model"]["predictor.out.weight"])
    # resume to 6 updates: the counter continues, the run does not start over
    cfg6 = _tiny_run_config(tmp_path, updates=6, extra=["env.episode_length=3"])
    save_config(cfg6, run_dir / "config.yaml")  # a resumed run reads its own config.yaml
    train(None, run_dir, resume=True)
    resumed = checkpoint.load(run_dir / "checkpoints" / "latest.pt")
    assert resumed["counters"]["updates"] == 6
    # ... and lands exactly where an uninterrupted 6-update run does (weights, optimiser, RNG restored)
    straight = checkpoint.load(train(cfg6, tmp_path / "straight") / "checkpoints" / "latest.pt")
    for name, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, rtol=0, atol=0, msg=name)
    with pytest.raises(FileExistsError):
        train(cfg, run_dir)


def test_ctrl_c_during_offline_training_checkpoints_the_last_update(tmp_path, monkeypatch):
    import signal

    from worldmodels.training import checkpoint
    from worldmodels.training import offline as offline_training

    original, calls = offline_training.learner_update, {"n": 0}

    def interrupted_on_third(*args, **kwargs):
        out = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(offline_training, "learner_update", interrupted_on_third)
    # a CI started in the background inherits SIGINT ignored; the run must restore what it found
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = _tiny_run_config(tmp_path, updates=8, extra=["env.episode_length=3", "offline.checkpoint_every=100",
                                                       "offline.eval_episodes=0"])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        offline_training.train_offline(cfg, tmp_path / "run", METHODS["pldm"])
    assert checkpoint.load(tmp_path / "run" / "checkpoints" / "latest.pt")["counters"]["updates"] == 3
    restored = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, previous)
    assert restored is signal.default_int_handler


# ----------------------------------------------------------------------------- goal reaching


@pytest.mark.slow
def test_mppi_reaches_goals_in_the_same_room():
    """A small PLDM (configs/pldm_two_rooms_cpu.yaml sizes) trained 400 updates plans with MPPI
    toward goal images 10-14 px away: every episode ends within 1 px (PLDM's success)."""
    from envs.two_rooms_data import generate_trajectories, make_render_fn, trajectories_to_tensordict
    from worldmodels.core.config import MPPIConfig
    from worldmodels.data.datasets import OfflineSequenceDataset
    from worldmodels.evaluation.two_rooms import evaluate_goal_reaching

    rows = trajectories_to_tensordict(generate_trajectories(1000, n_steps=9, seed=1)).reshape(-1)
    meta = {"env": {}, "pixels": "render", "num_steps": 1000 * 8}
    data = OfflineSequenceDataset(meta, rows, torch.full((1000,), 9), make_render_fn(64, 2))
    model = tiny_model(seed=0, encoder_channels=(8, 16, 16), latent_dim=64, predictor_hidden=64, idm_hidden=64,
                       learning_rate=1e-3)  # fmt: skip
    _train(model, data, 400, batch_size=32)
    cfg = load_config(None, ["method=pldm", "env.suite=two_rooms", "planner=mppi"])
    starts = np.array([[12.0, 30.0], [50.0, 45.0], [15.0, 50.0], [45.0, 20.0]])
    goals = np.array([[22.0, 40.0], [42.0, 52.0], [24.0, 44.0], [52.0, 28.0]])  # 10-14 px away, same room
    planner = MPPIConfig(horizon=8, iterations=3, samples=128, temperature=0.005, noise_std=1.0)
    torch.manual_seed(0)
    result = evaluate_goal_reaching(cfg, model.eval(), planner_config=planner, starts=starts, goals=goals, steps=40)
    assert result["success_rate"] >= 0.75 and result["random_success_rate"] == 0.0, result
