"""PlaNet world model: interface contract, preprocessing, loss terms, learning, latent overshooting."""

import dataclasses

import pytest
import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.core.interface import check_world_model
from worldmodels.core.config import PlaNetConfig
from worldmodels.models.distributions import gaussian_kl, kl_free_nats
from worldmodels.models.planet import PlaNet, postprocess, preprocess

TINY = PlaNetConfig(deter_dim=16, stoch_dim=4, hidden_dim=16, cnn_depth=4, reward_units=16, reward_layers=2)


def _model(config=TINY, seed=0):
    torch.manual_seed(seed)
    return PlaNet(config, action_dim=2)


def _batch(b=2, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth structured frames (a moving bright square on noise-free background) so the loss can fall fast
    pixels = torch.full((b, t, 3, 64, 64), 40, dtype=torch.uint8)
    for i in range(b):
        for j in range(t):
            x = 8 + 6 * j + 3 * i
            pixels[i, j, :, 20:36, x : x + 16] = 220
    prev_action = torch.rand(b, t, 2, generator=g) * 2 - 1
    is_first = torch.zeros(b, t, 1, dtype=torch.bool)
    is_first[:, 0] = True
    prev_action[:, 0] = 0
    reward = torch.rand(b, t, 1, generator=g)
    reward[:, 0] = 0
    return TensorDict(
        {
            keys.PIXELS: pixels,
            keys.PREV_ACTION: prev_action,
            keys.REWARD: reward,
            keys.IS_FIRST: is_first,
            keys.IS_TERMINAL: torch.zeros_like(is_first),
        },
        batch_size=[b, t],
    )


def test_check_world_model():
    model = _model()
    check_world_model(model)
    assert model.feature_dim == 20


def test_preprocess_quantises_to_5_bits_with_uniform_noise():
    px = torch.tensor([0, 7, 8, 255], dtype=torch.uint8)
    # floor(p / 8) / 32 - 0.5 + U(0, 1/32): bins 0, 0, 1, 31
    centre = preprocess(px, bits=5, noise=False)
    assert torch.allclose(centre, torch.tensor([0.5, 0.5, 1.5, 31.5]) / 32 - 0.5)
    torch.manual_seed(0)
    noisy = preprocess(px.repeat(1000), bits=5).view(1000, 4)
    low = torch.tensor([0.0, 0.0, 1.0, 31.0]) / 32 - 0.5
    assert torch.all(noisy >= low) and torch.all(noisy < low + 1 / 32)
    assert torch.allclose(noisy.mean(0), centre, atol=2e-3)
    assert torch.allclose(postprocess(torch.tensor([-0.7, 0.0, 0.7])), torch.tensor([0.0, 0.5, 1.0]))


def test_loss_terms_match_their_definitions():
    model = _model()
    batch = _batch()
    torch.manual_seed(1)
    out = model.loss(batch)
    m = out.metrics
    cfg = model.config
    assert torch.allclose(out.loss, m["loss/image"] + cfg.reward_scale * m["loss/reward"] + m["loss/kl"])
    post = out.posterior
    prior = model.rssm.prior(post[keys.DETER])
    kl = gaussian_kl(post[keys.MEAN], post[keys.STD], prior[keys.MEAN], prior[keys.STD])
    assert torch.allclose(m["loss/kl"], kl_free_nats(kl, 3.0)) and m["loss/kl"] >= 3.0
    reward_nll = 0.5 * (model.reward(post) - batch[keys.REWARD]).pow(2).mean()
    assert torch.allclose(m["loss/reward"], reward_nll, atol=1e-6)
    assert not out.posterior[keys.DETER].requires_grad


def test_observe_is_deterministic_and_validates_inputs():
    model = _model()
    b = _batch()
    with torch.inference_mode():
        torch.manual_seed(0)
        s1 = model.observe(b[keys.PIXELS], b[keys.PREV_ACTION], b[keys.IS_FIRST])
        goal = model.embed_goal(b[keys.PIXELS][:, 2])
    assert goal.shape == (2, model.feature_dim)
    with pytest.raises(ValueError, match="pixels must have"):
        model.observe(b[keys.PIXELS].float(), b[keys.PREV_ACTION], b[keys.IS_FIRST])
    with pytest.raises(ValueError, match="prev_action must have shape"):
        model.observe(b[keys.PIXELS], b[keys.PREV_ACTION][..., :1], b[keys.IS_FIRST])
    assert s1.batch_size == (2, 5)


def test_is_first_resets_in_planet():
    model = _model()
    b = _batch(t=6)
    k = 3
    is_first = b[keys.IS_FIRST].clone()
    is_first[:, k] = True
    with torch.no_grad():
        embed = model.encoder(preprocess(b[keys.PIXELS], 5, noise=False))
        full = model.rssm.observe(embed, b[keys.PREV_ACTION], is_first, sample=False)
        alone = model.rssm.observe(embed[:, k:], b[keys.PREV_ACTION][:, k:], is_first[:, k:], sample=False)
    assert torch.allclose(model.features(full)[:, k:], model.features(alone), atol=1e-5)


def test_loss_falls_on_a_fixed_batch():
    model = _model()
    batch = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-4)
    losses = []
    torch.manual_seed(0)
    for _ in range(30):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()
        losses.append(out.loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, (first, last)


def test_latent_overshooting():
    batch = _batch(t=6)
    base = _model()
    torch.manual_seed(2)
    plain = base.loss(batch)
    one = _model(dataclasses.replace(TINY, overshooting_distance=1, overshooting_scale=1.0))
    torch.manual_seed(2)
    with_d1 = one.loss(batch)
    assert torch.allclose(with_d1.loss, plain.loss)  # D = 1 is the standard KL term (Eq. 7)

    cfg = dataclasses.replace(TINY, overshooting_distance=3, overshooting_scale=0.5)
    over_model = _model(cfg)
    torch.manual_seed(2)
    over = over_model.loss(batch)
    m, p = over.metrics, plain.metrics
    assert torch.allclose(m["loss/image"], p["loss/image"]) and torch.allclose(m["kl/raw"], p["kl/raw"])
    assert m["loss/overshooting"] >= 2 * cfg.free_nats  # d = 2 and d = 3 terms, each clamped at free nats
    standard_kl = p["loss/kl"]
    assert torch.allclose(m["loss/kl"], (standard_kl + 0.5 * m["loss/overshooting"]) / 3, atol=1e-5)
    assert not torch.allclose(over.loss, plain.loss)
    # the overshooting term trains the transition; the posterior targets are stopped
    over_model = _model(dataclasses.replace(cfg, free_nats=0.0))
    torch.manual_seed(2)
    post = over_model.rssm.observe(
        over_model.encoder(preprocess(batch[keys.PIXELS], 5)), batch[keys.PREV_ACTION], batch[keys.IS_FIRST]
    )
    kl_over = over_model.overshooting_kl(post, batch[keys.PREV_ACTION], batch[keys.IS_FIRST])
    grads = torch.autograd.grad(kl_over, [over_model.rssm.prior_net[0].weight, over_model.rssm.post_out.weight], allow_unused=True)
    assert grads[0].abs().sum() > 0


def test_overshooting_skips_pairs_across_episode_starts():
    cfg = dataclasses.replace(TINY, overshooting_distance=2, overshooting_scale=1.0, free_nats=0.0)
    model = _model(cfg)
    batch = _batch(t=4)
    is_first = batch[keys.IS_FIRST].clone()
    is_first[:, 1:] = True  # every row starts an episode: no valid d=2 pair
    post = model.rssm.observe(model.encoder(preprocess(batch[keys.PIXELS], 5)), batch[keys.PREV_ACTION], is_first)
    assert model.overshooting_kl(post, batch[keys.PREV_ACTION], is_first).item() == 0.0
    assert model.overshooting_kl(post, batch[keys.PREV_ACTION], batch[keys.IS_FIRST]).item() > 0.0


def test_decode_in_unit_range():
    model = _model()
    out = model.loss(_batch())
    img = model.decode(out.posterior)
    assert img.shape == (2, 5, 3, 64, 64) and img.min() >= 0 and img.max() <= 1
