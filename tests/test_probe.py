"""Probe decoder on frozen features (worldmodels/probe.py)."""

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.models.networks import ConvDecoder
from worldmodels.models.probe import ProbeDecoder, evaluation_mode, probe_loss, train_probe
from worldmodels.viz.openloop import PROBE_LABEL, imagine_report, openloop


class NormedToy(ToyModel):
    """Decoder-free toy whose features pass through BatchNorm (running stats move in train mode)."""

    def __init__(self):
        super().__init__(action_dim=2, image_shape=(3, 16, 16), has_decoder=False, has_reward=False)
        self.norm = nn.BatchNorm1d(2)
        self.feature_dim = 2

    def features(self, state):
        x = state[keys.LATENT]
        return self.norm(x.reshape(-1, 2)).reshape(x.shape)


def sampler(model, batch_size=8, length=4, seed=0):
    """Random positions in [-1, 1]^2 rendered by the toy; is_first only at row 0."""
    gen = torch.Generator().manual_seed(seed)

    def sample():
        position = torch.rand(batch_size, length, 2, generator=gen) * 2 - 1
        td = {keys.PIXELS: model.render(position), keys.PREV_ACTION: torch.zeros(batch_size, length, 2),
              keys.ACTION: torch.zeros(batch_size, length, 2), keys.REWARD: torch.zeros(batch_size, length, 1),
              keys.IS_FIRST: torch.zeros(batch_size, length, 1, dtype=torch.bool)}  # fmt: skip
        td[keys.IS_FIRST][:, 0] = True
        return TensorDict(td, [batch_size, length])

    return sample


def test_probe_training_never_touches_the_model_and_loss_falls():
    torch.manual_seed(0)
    model = NormedToy()
    model.train()
    warm = sampler(model, seed=3)()  # give BatchNorm non-trivial running stats first
    model.features(model.observe(warm[keys.PIXELS], warm[keys.PREV_ACTION], warm[keys.IS_FIRST]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    held_out = sampler(model, seed=1)()
    probe = ProbeDecoder(model.feature_dim, model.image_shape, depth=8)
    with torch.no_grad():
        initial = probe_loss(probe, model, held_out).item()
    probe = train_probe(model, sampler(model), steps=150, lr=3e-3, probe=probe, progress=False)
    with torch.no_grad():
        final = probe_loss(probe, model, held_out).item()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and buffers bit-identical
    assert model.training and model.norm.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    assert final < 0.25 * initial, (initial, final)
    assert not probe.training


def test_probe_shapes_for_any_image_size_and_batch_shape():
    assert isinstance(ProbeDecoder(5, (3, 64, 64)).net, ConvDecoder)  # conv_ha for 64x64
    for shape in ((2, 65, 65), (3, 16, 16), (1, 8, 12)):
        probe = ProbeDecoder(5, shape, depth=4)
        for batch in ((), (3,), (2, 4)):
            assert probe(torch.zeros(*batch, 5)).shape == (*batch, *shape)
    with pytest.raises(ValueError, match="features"):
        ProbeDecoder(5, (3, 16, 16))(torch.zeros(2, 4))


def test_probe_refuses_model_parameters_and_bad_arguments():
    model = NormedToy()
    shared = ProbeDecoder(2, model.image_shape, depth=4)
    shared.extra = model.norm  # a probe must not hold model parameters
    with pytest.raises(ValueError, match="shares parameters"):
        train_probe(model, sampler(model), steps=1, probe=shared, progress=False)
    with pytest.raises(ValueError, match="steps >= 0"):
        train_probe(model, sampler(model), steps=-1, progress=False)


def test_openloop_through_a_probe_is_labelled(tmp_path):
    torch.manual_seed(0)
    model = NormedToy()
    probe = train_probe(model, sampler(model), steps=5, progress=False)
    batch = sampler(model, batch_size=2, length=6)()
    rollout = openloop(model, batch, context=2, horizon=4, probe=probe)
    assert rollout.probe and rollout.model.shape == (2, 6, 3, 16, 16) and rollout.reward_pred is None
    report = imagine_report(model, batch, tmp_path / "probe.gif", context=2, horizon=4, probe=probe)
    assert report["probe"] and PROBE_LABEL == "PROBE DECODER"


def test_evaluation_mode_restores_mixed_modes():
    net = nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2))
    net[1].eval()
    with evaluation_mode(net):
        assert not net.training and not net[0].training
    assert net.training and net[0].training and not net[1].training
