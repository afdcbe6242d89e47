"""Distribution helpers against hand-computed numbers (worldmodels/distributions.py)."""

import math

import pytest
import torch
from tensordict import TensorDict

from worldmodels.core import keys
from worldmodels.models.distributions import (
    categorical_kl,
    gaussian_kl,
    gaussian_params,
    kl_balanced,
    kl_free_nats,
    onehot_straight_through,
    state_kl,
)


def test_gaussian_params_softplus_min_std():
    mean, std = gaussian_params(torch.tensor([[1.5, -2.0, 0.0, 0.0]]), min_std=0.1)
    assert torch.allclose(mean, torch.tensor([[1.5, -2.0]]))
    # softplus(0) + 0.1 = ln 2 + 0.1
    assert torch.allclose(std, torch.tensor([[0.793147, 0.793147]]), atol=1e-6)


def test_gaussian_kl_hand_values():
    # dim 1: q=N(1, 0.5^2), p=N(0, 1): ln(1/0.5) + (0.25 + 1)/2 - 1/2 = 0.693147 + 0.125 = 0.818147
    # dim 2: q=N(0, 2^2),  p=N(1, 1): ln(1/2) + (4 + 1)/2 - 1/2  = -0.693147 + 2 = 1.306853
    kl = gaussian_kl(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 2.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]))
    assert kl.shape == ()
    assert kl.item() == pytest.approx(0.818147 + 1.306853, abs=1e-5)
    same = gaussian_kl(torch.ones(3, 4), torch.ones(3, 4), torch.ones(3, 4), torch.ones(3, 4))
    assert same.shape == (3,) and torch.allclose(same, torch.zeros(3))


def test_categorical_kl_hand_values():
    # group 1: q=[.5,.5,0+], p=[.25,.75,0+] -> .5 ln 2 + .5 ln(2/3) = 0.143841 (third class ~0 mass)
    # group 2: q=[.2,.3,.5], p uniform -> .2 ln .6 + .3 ln .9 + .5 ln 1.5 = 0.068960
    q = torch.tensor([[0.5, 0.5, 1e-12], [0.2, 0.3, 0.5]]).log()
    p = torch.tensor([[0.25, 0.75, 1e-12], [1 / 3, 1 / 3, 1 / 3]]).log()
    kl = categorical_kl(q, p)
    assert kl.shape == ()
    assert kl.item() == pytest.approx(0.143841 + 0.068960, abs=1e-5)


def test_kl_free_nats_clamps_per_step_then_averages():
    kl = torch.tensor([[1.0, 4.0], [2.5, 5.0]])  # [B=2, T=2]
    # max(., 3) -> [3, 4, 3, 5], mean 3.75 (mean first would give max(3.125, 3) = 3.125)
    assert kl_free_nats(kl, 3.0).item() == pytest.approx(3.75)
    assert kl_free_nats(kl, 0.0).item() == pytest.approx(3.125)


def _gauss_states(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pm = torch.randn(4, 3, generator=g).requires_grad_()
    ps = (torch.rand(4, 3, generator=g) + 0.5).requires_grad_()
    qm = torch.randn(4, 3, generator=g).requires_grad_()
    qs = (torch.rand(4, 3, generator=g) + 0.5).requires_grad_()
    post = TensorDict({keys.MEAN: pm, keys.STD: ps}, batch_size=[4])
    prior = TensorDict({keys.MEAN: qm, keys.STD: qs}, batch_size=[4])
    return post, prior, (pm, ps), (qm, qs)


def test_kl_balanced_gradients_go_to_the_right_side():
    post, prior, post_params, prior_params = _gauss_states()
    plain = state_kl(post, prior).mean()
    g_plain = torch.autograd.grad(plain, [*post_params, *prior_params])
    out = kl_balanced(post, prior, alpha=0.8, free=0.0)
    assert out.loss.item() == pytest.approx(plain.item(), rel=1e-6)  # value unchanged by balancing
    assert out.value.item() == pytest.approx(plain.item(), rel=1e-6)
    g_bal = torch.autograd.grad(out.loss, [*post_params, *prior_params])
    for gb, gp in zip(g_bal[:2], g_plain[:2]):  # posterior side gets (1 - alpha)
        assert torch.allclose(gb, 0.2 * gp, atol=1e-6)
    for gb, gp in zip(g_bal[2:], g_plain[2:]):  # prior side gets alpha
        assert torch.allclose(gb, 0.8 * gp, atol=1e-6)


def test_kl_balanced_half_is_plain_and_free_nats():
    post, prior, post_params, prior_params = _gauss_states(1)
    plain = state_kl(post, prior).mean()
    half = kl_balanced(post, prior, alpha=0.5, free=0.0)
    assert half.loss.item() == pytest.approx(plain.item(), rel=1e-6)
    big = plain.item() + 1.0
    clamped = kl_balanced(post, prior, alpha=0.8, free=big)
    assert clamped.loss.item() == pytest.approx(big)
    assert not clamped.loss.requires_grad or all(
        g is None or torch.all(g == 0)
        for g in torch.autograd.grad(clamped.loss, [*post_params, *prior_params], allow_unused=True)
    )


def test_kl_balanced_free_avg_vs_per_element():
    # categorical with KLs [0, 0.143841*2] per element; free 0.1: avg -> max(0.143841, 0.1); per element -> mean(0.1, 0.287682)
    q = torch.tensor([[[0.5, 0.5]], [[0.5, 0.5]]]).log()  # [N=2, G=1, K=2]
    p = torch.tensor([[[0.5, 0.5]], [[0.25, 0.75]]]).log()
    post = TensorDict({keys.LOGITS: q}, batch_size=[2])
    prior = TensorDict({keys.LOGITS: p}, batch_size=[2])
    kl1 = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert kl_balanced(post, prior, 0.8, free=0.05).loss.item() == pytest.approx(kl1 / 2, abs=1e-5)
    assert kl_balanced(post, prior, 0.8, free=0.1, free_avg=False).loss.item() == pytest.approx((0.1 + kl1) / 2, abs=1e-5)


def test_kl_balanced_categorical_gradients():
    g = torch.Generator().manual_seed(0)
    lq = torch.randn(5, 4, 3, generator=g).requires_grad_()
    lp = torch.randn(5, 4, 3, generator=g).requires_grad_()
    post = TensorDict({keys.LOGITS: lq}, batch_size=[5])
    prior = TensorDict({keys.LOGITS: lp}, batch_size=[5])
    plain = categorical_kl(lq, lp).mean()
    gq, gp = torch.autograd.grad(plain, [lq, lp])
    bq, bp = torch.autograd.grad(kl_balanced(post, prior, 0.8, free=0.0).loss, [lq, lp])
    assert torch.allclose(bq, 0.2 * gq, atol=1e-6) and torch.allclose(bp, 0.8 * gp, atol=1e-6)


def test_straight_through_onehot_forward_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(6, 32, 32, requires_grad=True)  # DreamerV2 32x32 latent
    sample = onehot_straight_through(logits)
    assert torch.allclose(sample.sum(-1), torch.ones(6, 32))
    hard = sample.detach()
    assert torch.allclose(hard, hard.round(), atol=1e-6)  # one-hot up to float rounding of probs - sg(probs)
    weights = torch.randn(6, 32, 32)
    (grad,) = torch.autograd.grad((sample * weights).sum(), logits)
    (ref,) = torch.autograd.grad((logits.softmax(-1) * weights).sum(), logits)
    assert torch.allclose(grad, ref, atol=1e-6) and grad.abs().sum() > 0


def test_straight_through_frequencies_match_probs():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.2, 0.7])
    logits = probs.log().expand(20000, 1, 3)
    freq = onehot_straight_through(logits).detach().mean((0, 1))
    assert torch.allclose(freq, probs, atol=0.015)
