"""check_world_model names the method, the expected and the actual shape of whatever a broken model
gets wrong, and says what the contract requires (small broken toy models)."""

import re

import pytest
import torch

from tests.toy_model import ToyModel
from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, WorldModel, check_world_model


def test_a_correct_toy_model_passes():
    check_world_model(ToyModel(action_dim=2))


class FlatReward(ToyModel):
    def reward(self, state):
        return super().reward(state)[..., 0]


class NarrowFeatures(ToyModel):
    def features(self, state):
        return state[keys.LATENT][..., :1]


class ShortImagine(ToyModel):
    def imagine(self, state, actions, horizon=None):
        return super().imagine(state, actions, horizon)[:, :-1]


class NoActionKey(ToyModel):
    def imagine(self, state, actions, horizon=None):
        return super().imagine(state, actions, horizon).exclude(keys.ACTION)


class ClampedActions(ToyModel):
    def imagine(self, state, actions, horizon=None):
        out = super().imagine(state, actions, horizon)
        out[keys.ACTION] = out[keys.ACTION].clamp(-0.5, 0.5)
        return out


class DeclaredDecoderMissing(ToyModel):
    def decode(self, state):
        return WorldModel.decode(self, state)  # what a subclass that never wrote decode() gets


class NoParameters(ToyModel):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        scale = self.scale.detach().clone()
        del self.scale
        self.register_buffer("scale", scale)


@pytest.mark.parametrize(
    "model, message",
    [
        (FlatReward(), "reward(imagine(...)) must have shape [2, 4, 1], got [2, 4]."),
        (NarrowFeatures(), "features(initial_state) must have shape [2, 2], got [2, 1]."),
        (ShortImagine(), "imagine(state [B], actions [B, H, A]) must return batch size [2, 4], got [2, 3]."),
        (NoActionKey(), "imagine(state, actions) must hold the key 'action' (keys.ACTION), got keys ['latent']."),
        (ClampedActions(), "imagine(state, actions) must return the float32 actions [B, H, A] it was given unchanged"),
        (DeclaredDecoderMissing(), "DeclaredDecoderMissing declares has_decoder=True but decode raised CapabilityError "
                                   "(DeclaredDecoderMissing declares has_decoder=True but does not implement decode()"),
        (NoParameters(), "NoParameters has no parameters; the contract requires at least one (WorldModel.device)."),
        (ToyModel().double(), "ToyModel has torch.float64 parameters; the contract requires float32 (actions are "
                              "float32 [..., A]); call model.float()."),
    ],
    ids=["reward-shape", "features-shape", "imagine-batch", "action-key", "actions-changed", "declared-decoder",
         "no-parameters", "float64"],  # fmt: skip
)
def test_broken_models_are_told_what_is_wrong(model, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_world_model(model)


def test_a_declared_but_unimplemented_decoder_is_not_called_missing():
    with pytest.raises(CapabilityError) as err:
        DeclaredDecoderMissing().decode(ToyModel().initial_state(1))
    assert "has no decoder" not in str(err.value)
    assert "declares has_decoder=True but does not implement decode(); implement it or set has_decoder=False." in str(err.value)
    with pytest.raises(CapabilityError, match="ToyModel has no decoder"):  # undeclared: the old message
        WorldModel.decode(ToyModel(has_decoder=False), None)


def test_device_of_a_model_without_parameters_is_a_clear_error():
    with pytest.raises(RuntimeError, match="NoParameters has no parameters, so its device is unknown"):
        NoParameters().device
