"""Capabilities declared in the WorldModel interface: continuation and embedding, and their checks."""

import pytest
import torch

from tests.toy_model import ToyModel
from worldmodels.core.config import PlaNetConfig
from worldmodels.core.interface import CapabilityError, check_world_model
from worldmodels.models.planet import PlaNet

TINY = PlaNetConfig(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=2)


def _planet(cls=PlaNet):
    torch.manual_seed(0)
    return cls(TINY, action_dim=2)


def test_undeclared_capabilities_raise_capability_error_naming_model_and_capability():
    model = ToyModel(action_dim=2)
    assert not model.has_continuation and not model.has_embedding
    state = model.initial_state(3)
    pixels = torch.zeros(3, *model.image_shape, dtype=torch.uint8)
    with pytest.raises(CapabilityError, match=r"ToyModel has no continuation head \(has_continuation=False\)"):
        model.continuation(state)
    for call in (lambda: model.embed(pixels), lambda: model.embed_dim, lambda: model.features_from_embed(state["latent"])):
        with pytest.raises(CapabilityError, match=r"ToyModel has no image embedding \(has_embedding=False\)"):
            call()


def test_rssm_models_declare_embedding_with_any_leading_shape():
    model = _planet()
    assert model.has_embedding and not model.has_continuation
    pixels = torch.randint(0, 256, (2, 3, *model.image_shape), dtype=torch.uint8)
    embed = model.embed(pixels)  # [B, T, E]
    assert embed.shape == (2, 3, model.embed_dim)
    torch.testing.assert_close(model.embed(pixels[1]), embed[1])
    torch.testing.assert_close(model.embed(pixels[1, 2]), embed[1, 2])
    assert model.features_from_embed(embed[:, 0]).shape == (2, model.feature_dim)


def test_check_world_model_names_expected_and_actual_shape_of_a_wrong_embed():
    class FlatEmbed(PlaNet):  # forgets to restore the leading [B, T] of sequences
        def embed(self, pixels):
            return super().embed(pixels.reshape(-1, *self.image_shape))

    model = _planet(FlatEmbed)
    e = model.embed_dim
    with pytest.raises(AssertionError, match=rf"embed\(pixels \[B, T, C, H, W\]\) must have shape \[2, 3, {e}\], got \[6, {e}\]"):
        check_world_model(model)


def test_check_world_model_refuses_an_undeclared_capability_that_does_not_raise():
    class SilentContinuation(ToyModel):
        def continuation(self, state):
            return torch.ones(*state.batch_size, 1)

    with pytest.raises(AssertionError, match="declares has_continuation=False but did not raise CapabilityError"):
        check_world_model(SilentContinuation(action_dim=2))


def test_check_world_model_checks_a_declared_continuation_shape():
    class FlatContinuation(ToyModel):
        has_continuation = True

        def continuation(self, state):
            return torch.ones(*state.batch_size)

    with pytest.raises(AssertionError, match=r"continuation\(imagine\(...\)\) must have shape \[2, 4, 1\], got \[2, 4\]"):
        check_world_model(FlatContinuation(action_dim=2))
