"""Lambda / discounted returns against hand-unrolled numbers (DreamerV2 lambda_return semantics)."""

import pytest
import torch

from planners.returns import cumulative_discount, discounted_returns, lambda_returns


def _example():
    # one trajectory, H = 3, non-trivial per-step discounts
    reward = torch.tensor([[1.0, 2.0, 3.0]])[..., None]  # [1,3,1]
    value = torch.tensor([[10.0, 20.0, 30.0]])[..., None]
    discount = torch.tensor([[0.9, 0.5, 0.8]])[..., None]
    bootstrap = torch.tensor([[40.0]])  # v_3
    return reward, value, discount, bootstrap


def test_lambda_returns_hand_unrolled():
    reward, value, discount, bootstrap = _example()
    out = lambda_returns(reward, value, discount, bootstrap, lambda_=0.5)
    # R_2 = 3 + 0.8 * (0.5 * 40 + 0.5 * 40)      = 35
    # R_1 = 2 + 0.5 * (0.5 * 30 + 0.5 * 35)      = 18.25
    # R_0 = 1 + 0.9 * (0.5 * 20 + 0.5 * 18.25)   = 18.2125
    expected = torch.tensor([[18.2125, 18.25, 35.0]])[..., None]
    assert out.shape == (1, 3, 1)
    torch.testing.assert_close(out, expected)


def test_lambda_zero_is_one_step_td_and_one_is_monte_carlo():
    reward, value, discount, bootstrap = _example()
    td = lambda_returns(reward, value, discount, bootstrap, lambda_=0.0)
    torch.testing.assert_close(td, torch.tensor([[19.0, 17.0, 35.0]])[..., None])  # r_t + g_t v_{t+1}
    mc = lambda_returns(reward, value, discount, bootstrap, lambda_=1.0)
    # G_2 = 3 + 0.8 * 40 = 35; G_1 = 2 + 0.5 * 35 = 19.5; G_0 = 1 + 0.9 * 19.5 = 18.55
    torch.testing.assert_close(mc, torch.tensor([[18.55, 19.5, 35.0]])[..., None])
    torch.testing.assert_close(discounted_returns(reward, discount, bootstrap), mc)


def test_batch_rows_are_independent_and_float_discount():
    reward, value, discount, bootstrap = _example()
    reward2 = torch.cat([reward, torch.tensor([[0.0, 0.0, 1.0]])[..., None]])  # [2,3,1]
    value2 = torch.cat([value, torch.zeros(1, 3, 1)])
    disc2 = torch.cat([discount, torch.ones(1, 3, 1)])
    boot2 = torch.cat([bootstrap, torch.zeros(1, 1)])
    out = lambda_returns(reward2, value2, disc2, boot2, lambda_=0.5)
    torch.testing.assert_close(out[0], torch.tensor([18.2125, 18.25, 35.0])[:, None])
    # row 2: value 0 everywhere, gamma 1: R_t = r_t + 0.5 * R_{t+1} -> [0.25, 0.5, 1]
    torch.testing.assert_close(out[1], torch.tensor([0.25, 0.5, 1.0])[:, None])
    # a float discount equals the constant tensor; no bootstrap means zero
    torch.testing.assert_close(
        lambda_returns(reward, value, 0.5, None, 0.95),
        lambda_returns(reward, value, torch.full_like(reward, 0.5), torch.zeros(1, 1), 0.95),
    )
    torch.testing.assert_close(discounted_returns(reward, 1.0), torch.tensor([[6.0, 5.0, 3.0]])[..., None])


def test_gradients_flow_to_reward_value_and_bootstrap():
    reward, value, discount, bootstrap = (t.clone().requires_grad_() for t in _example())
    lambda_returns(reward, value, discount, bootstrap, 0.5)[:, 0].sum().backward()
    # dR_0/dr_1 = g_0 * lambda = 0.45; dR_0/dv_0 = 0 (v_0 is not used)
    assert reward.grad[0, 1, 0].item() == pytest.approx(0.45)
    assert value.grad[0, 0, 0].item() == 0.0
    assert bootstrap.grad.item() > 0


def test_cumulative_discount_weights():
    _, _, discount, _ = _example()
    torch.testing.assert_close(cumulative_discount(discount), torch.tensor([[1.0, 0.9, 0.45]])[..., None])


def test_bad_shapes_raise_clear_errors():
    reward, value, discount, bootstrap = _example()
    with pytest.raises(ValueError, match="reward must have shape"):
        lambda_returns(reward[..., 0], value, discount, bootstrap, 0.95)
    with pytest.raises(ValueError, match="value must have"):
        lambda_returns(reward, value[:, :2], discount, bootstrap, 0.95)
    with pytest.raises(ValueError, match="bootstrap must have"):
        lambda_returns(reward, value, discount, bootstrap[0], 0.95)
    with pytest.raises(ValueError, match="lambda_"):
        lambda_returns(reward, value, discount, bootstrap, 1.5)
