"""RSSM core (Gaussian and categorical): shapes, is_first resets, imagine with actions vs policy."""

import pytest
import torch

from worldmodels.core import keys
from worldmodels.models.distributions import kl_balanced
from worldmodels.models.rssm import RSSM, Categorical, Gaussian

STOCHS = [Gaussian(4, 0.1), Categorical(classes=5, groups=3)]


def _rssm(stoch, layer_norm=False):
    torch.manual_seed(0)
    return RSSM(action_dim=2, embed_dim=8, deter_dim=16, stoch=stoch, hidden_dim=16, activation="elu", layer_norm=layer_norm)


def _inputs(b=3, t=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(b, t, 8, generator=g)
    actions = torch.rand(b, t, 2, generator=g) * 2 - 1
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    actions[:, 0] = 0
    return embeds, actions, is_first


@pytest.mark.parametrize("stoch", STOCHS, ids=["gaussian", "categorical"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_shapes_and_features(stoch, layer_norm):
    rssm = _rssm(stoch, layer_norm)
    post = rssm.observe(*_inputs())
    stoch_shape = (4,) if isinstance(stoch, Gaussian) else (3, 5)
    assert post.batch_size == (3, 6) and post[keys.STOCH].shape == (3, 6, *stoch_shape)
    assert rssm.features(post).shape == (3, 6, 16 + rssm.stoch.flat_dim)
    prior = rssm.prior(post[keys.DETER])
    assert set(prior.keys()) == ({keys.MEAN, keys.STD} if isinstance(stoch, Gaussian) else {keys.LOGITS})
    assert rssm.features(rssm.initial_state(3)).shape == (3, rssm.feature_dim)
    if isinstance(stoch, Categorical):
        hard = post[keys.STOCH].detach()
        assert torch.allclose(hard.sum(-1), torch.ones(3, 6, 3)) and torch.allclose(hard, hard.round(), atol=1e-6)


@pytest.mark.parametrize("stoch", STOCHS, ids=["gaussian", "categorical"])
def test_is_first_resets_history(stoch):
    rssm = _rssm(stoch)
    embeds, actions, is_first = _inputs()
    k = 3
    is_first[:, k] = True
    actions[:, k] = 0.7  # must be ignored (masked) at a reset
    full = rssm.observe(embeds, actions, is_first, sample=False)
    alone = rssm.observe(embeds[:, k:], actions[:, k:], is_first[:, k:], sample=False)
    for key in full.keys():
        assert torch.allclose(full[key][:, k:], alone[key], atol=1e-6), key
    assert not torch.allclose(full[keys.DETER][:, k - 1], alone[keys.DETER][:, 0])


@pytest.mark.parametrize("stoch", STOCHS, ids=["gaussian", "categorical"])
def test_observe_continues_from_a_state(stoch):
    rssm = _rssm(stoch)
    embeds, actions, is_first = _inputs()
    seq = rssm.observe(embeds, actions, is_first, sample=False)
    head = rssm.observe(embeds[:, :4], actions[:, :4], is_first[:, :4], sample=False)
    tail = rssm.observe(embeds[:, 4:], actions[:, 4:], is_first[:, 4:], state=head[:, -1], sample=False)
    assert torch.allclose(seq[keys.DETER][:, 4:], tail[keys.DETER], atol=1e-6)


@pytest.mark.parametrize("stoch", STOCHS, ids=["gaussian", "categorical"])
def test_imagine_policy_equals_imagine_actions(stoch):
    rssm = _rssm(stoch)
    start = rssm.observe(*_inputs())[:, -1].detach()
    weight = torch.randn(rssm.feature_dim, 2)

    def policy(features):
        return torch.tanh(features @ weight)

    torch.manual_seed(3)
    with_policy = rssm.imagine(start, policy, horizon=5)
    torch.manual_seed(3)
    with_actions = rssm.imagine(start, with_policy[keys.ACTION], horizon=5)
    assert with_policy.batch_size == (3, 5)
    for key in with_policy.keys():
        assert torch.allclose(with_policy[key], with_actions[key], atol=1e-6), key
    # the policy saw the state *before* each action: its first action comes from the start state
    assert torch.allclose(with_policy[keys.ACTION][:, 0], policy(rssm.features(start)), atol=1e-6)
    with pytest.raises(ValueError, match="horizon"):
        rssm.imagine(start, policy)
    with pytest.raises(ValueError, match="actions must have shape"):
        rssm.imagine(start, torch.zeros(3, 5, 4))


@pytest.mark.parametrize("stoch", STOCHS, ids=["gaussian", "categorical"])
def test_kl_trains_encoder_prior_and_posterior(stoch):
    rssm = _rssm(stoch)
    embeds, actions, is_first = _inputs()
    embeds.requires_grad_(True)
    post = rssm.observe(embeds, actions, is_first)
    out = kl_balanced(post, rssm.prior(post[keys.DETER]), alpha=0.8, free=0.0)
    out.loss.backward()
    assert embeds.grad.abs().sum() > 0
    for name in ["img_in.weight", "post_in.weight", "post_out.weight", "prior_net.2.weight"]:
        assert rssm.get_parameter(name).grad.abs().sum() > 0, name
