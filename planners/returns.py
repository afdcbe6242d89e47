"""Discounted and lambda-returns over imagined trajectories (pure functions, hand-testable).

Time is dimension 1 (batch-major ``[N, H, 1]``), per-step scalars keep their trailing 1.
The loop runs over the (short) horizon only, never over samples.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_discount(discount: Tensor | float, like: Tensor) -> Tensor:
    if isinstance(discount, Tensor):
        if discount.shape != like.shape:
            raise ValueError(
                f"discount must have the reward's shape {list(like.shape)}, got {list(discount.shape)}."
            )
        return discount
    return torch.full_like(like, float(discount))


def _check(reward: Tensor, value: Tensor | None, bootstrap: Tensor | None) -> None:
    if reward.dim() != 3 or reward.shape[-1] != 1:
        raise ValueError(f"reward must have shape [N, H, 1], got {list(reward.shape)}.")
    if value is not None and value.shape != reward.shape:
        raise ValueError(f"value must have the reward's shape {list(reward.shape)}, got {list(value.shape)}.")
    if bootstrap is not None and bootstrap.shape != (reward.shape[0], 1):
        raise ValueError(
            f"bootstrap must have shape [N, 1] = {[reward.shape[0], 1]}, got {list(bootstrap.shape)}."
        )


def lambda_returns(
    reward: Tensor,
    value: Tensor,
    discount: Tensor | float,
    bootstrap: Tensor | None,
    lambda_: float,
) -> Tensor:
    """TD(lambda) returns, exactly DreamerV2's ``common/other.py::lambda_return`` (Hafner et al. 2021, eq. 4).

    Backward recursion over t = H-1, ..., 0::

        R_t = r_t + gamma_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),   R_H = v_H (bootstrap)

    where ``v_{t+1}`` is ``value[:, t+1]`` for t < H-1 and the bootstrap for t = H-1 (so the last
    step uses ``R_{H-1} = r_{H-1} + gamma_{H-1} * v_H``). ``lambda_ = 1`` gives the discounted
    Monte-Carlo return bootstrapped with v_H; ``lambda_ = 0`` the one-step TD target
    ``r_t + gamma_t v_{t+1}``. A missing bootstrap is zero (as in DreamerV2).

    Args:
        reward: r_t for t = 0..H-1.
        value: v_t for t = 0..H-1 (only v_1..v_{H-1} enter; v_0 is accepted for DreamerV2's layout).
        discount: gamma_t, a float or a tensor (e.g. gamma times a predicted continuation).
        bootstrap: v_H, the value of the state after the last step, or None for 0.
        lambda_: the lambda of TD(lambda) in [0, 1] (DreamerV2: 0.95).

    Returns:
        The lambda-returns R_0..R_{H-1}.

    Shapes:
        reward, value, discount: ``[N, H, 1]``; bootstrap: ``[N, 1]``; returns ``[N, H, 1]``.
    """
    _check(reward, value, bootstrap)
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}.")
    discount = _as_discount(discount, reward)
    if bootstrap is None:
        bootstrap = torch.zeros_like(reward[:, -1])  # [N,1]
    next_values = torch.cat([value[:, 1:], bootstrap[:, None]], dim=1)  # [N,H,1]: v_{t+1}
    inputs = reward + discount * next_values * (1.0 - lambda_)  # [N,H,1]
    returns = []
    last = bootstrap  # R_H, [N,1]
    for t in reversed(range(reward.shape[1])):
        last = inputs[:, t] + discount[:, t] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1], dim=1)  # [N,H,1]


def discounted_returns(reward: Tensor, discount: Tensor | float, bootstrap: Tensor | None = None) -> Tensor:
    """Discounted reward-to-go ``G_t = r_t + gamma_t * G_{t+1}``, ``G_H = bootstrap`` (0 if None).

    Equals :func:`lambda_returns` with ``lambda_ = 1``.

    Args:
        reward: r_t for t = 0..H-1.
        discount: gamma_t, a float or a tensor of the reward's shape.
        bootstrap: value after the last step, or None for 0.

    Returns:
        G_0..G_{H-1}.

    Shapes:
        reward, discount: ``[N, H, 1]``; bootstrap ``[N, 1]``; returns ``[N, H, 1]``.
    """
    _check(reward, None, bootstrap)
    discount = _as_discount(discount, reward)
    last = torch.zeros_like(reward[:, -1]) if bootstrap is None else bootstrap  # [N,1]
    returns = []
    for t in reversed(range(reward.shape[1])):
        last = reward[:, t] + discount[:, t] * last
        returns.append(last)
    return torch.stack(returns[::-1], dim=1)  # [N,H,1]


def cumulative_discount(discount: Tensor) -> Tensor:
    """Loss weights ``w_t = prod_{k<t} gamma_k`` (``w_0 = 1``), DreamerV2's ``seq['weight']``.

    The discount at t says whether the *following* state is valid, so it is shifted by one step
    before the cumulative product.

    Shapes:
        discount ``[N, H, 1]`` -> weights ``[N, H, 1]``.
    """
    if discount.dim() != 3 or discount.shape[-1] != 1:
        raise ValueError(f"discount must have shape [N, H, 1], got {list(discount.shape)}.")
    shifted = torch.cat([torch.ones_like(discount[:, :1]), discount[:, :-1]], dim=1)  # [N,H,1]
    return torch.cumprod(shifted, dim=1)
