"""The alignment rule in code: torchrl steps -> rows, and the checks every stored episode passes.

An episode of T transitions is stored as T + 1 *rows* (see :mod:`worldmodels.core.keys`). Row ``t``
holds the observation keys at o_t (``pixels``, ``state``, ``proprio``, ...), ``action`` (taken at
t; zeros on the last row), ``prev_action`` (led to t; zeros at ``is_first``), ``reward`` (on
arriving at t; 0 at ``is_first``), ``is_first``, ``is_last`` and ``is_terminal``.

torchrl's ``("next", ...)`` layout is flattened into rows here and nowhere else: the online replay
(:mod:`worldmodels.data.replay`) and offline collection (:mod:`worldmodels.data.collect`) both call
:func:`steps_to_rows`; the replay and the dataset writer both validate with :func:`check_rows`.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, is_tensor_collection

from worldmodels.core import keys

__all__ = ["ROW_KEYS", "observation_keys", "steps_to_rows", "check_rows", "row_fields"]

ROW_KEYS = (keys.ACTION, keys.PREV_ACTION, keys.REWARD, keys.IS_FIRST, keys.IS_LAST, keys.IS_TERMINAL)
"""Keys every row has besides the observation keys (``pixels``, ``state``, ``proprio``, ...)."""

_BOUNDARY_KEYS = frozenset(ROW_KEYS + (keys.EPISODE, keys.DONE, keys.TERMINATED, keys.TRUNCATED))


def observation_keys(rollout: TensorDict) -> list[str]:
    """Observation keys of a torchrl rollout: tensors present both at the root and under ``"next"``.

    Boundary keys (action, reward, done flags, is_first/is_last/is_terminal) are excluded.
    """
    root = {k for k, v in rollout.items() if not is_tensor_collection(v)}
    nxt = {k for k, v in rollout.get(keys.NEXT).items() if not is_tensor_collection(v)}
    return sorted((root & nxt) - _BOUNDARY_KEYS)


def steps_to_rows(steps: TensorDict, obs_keys: list[str] | None = None) -> TensorDict:
    """Flatten the torchrl steps of ONE episode into rows by the alignment rule.

    ``steps[t]`` holds o_t and a_t at the root and o_{t+1}, r_{t+1} under ``"next"``; the first
    step is the episode start and the last step is its last transition (done or truncated).

    Args:
        steps: TensorDict ``[L]`` with the ``("next", ...)`` layout (``env.rollout`` format).
        obs_keys: observation keys to keep; default :func:`observation_keys`.

    Returns:
        rows: TensorDict ``[L+1]`` with the observation keys plus :data:`ROW_KEYS`.

    Shapes:
        action, prev_action ``[L+1, A]``; reward ``[L+1, 1]``; flags bool ``[L+1, 1]``.
    """
    if steps.batch_dims != 1 or steps.shape[0] < 1:
        raise ValueError(f"steps_to_rows expects a 1-D TensorDict of >= 1 steps, got batch size {tuple(steps.shape)}.")
    obs_keys = observation_keys(steps) if obs_keys is None else obs_keys
    nxt = steps.get(keys.NEXT)
    if keys.REWARD not in nxt.keys():
        raise ValueError("rollout has no ('next', 'reward'); pass a torchrl rollout (env.rollout / collector output).")
    length = steps.shape[0]
    action = steps.get(keys.ACTION).float()  # [L,A]
    zero_action = torch.zeros_like(action[:1])  # [1,A]
    reward = nxt.get(keys.REWARD).float().reshape(length, 1)  # [L,1]
    is_first = torch.zeros(length + 1, 1, dtype=torch.bool, device=action.device)  # [L+1,1]
    is_last, is_terminal = is_first.clone(), is_first.clone()
    is_first[0] = True
    is_last[-1] = True
    for terminal_key in (keys.TERMINATED, keys.IS_TERMINAL):
        if terminal_key in nxt.keys():
            is_terminal[-1] = nxt.get(terminal_key)[-1].reshape(()).bool()
            break
    rows = {key: torch.cat([steps.get(key), nxt.get(key)[-1:]]) for key in obs_keys}
    rows[keys.ACTION] = torch.cat([action, zero_action])
    rows[keys.PREV_ACTION] = torch.cat([zero_action, action])
    rows[keys.REWARD] = torch.cat([torch.zeros_like(reward[:1]), reward])
    rows[keys.IS_FIRST], rows[keys.IS_LAST], rows[keys.IS_TERMINAL] = is_first, is_last, is_terminal
    return TensorDict(rows, batch_size=[length + 1], device=steps.device)


def check_rows(rows: TensorDict) -> None:
    """Raise ValueError unless ``rows`` ``[L]`` is one episode in row format (the alignment rule)."""
    if rows.batch_dims != 1 or rows.shape[0] < 2:
        raise ValueError(f"an episode is a 1-D TensorDict of >= 2 rows, got batch size {tuple(rows.shape)}.")
    missing = [k for k in ROW_KEYS if k not in rows.keys()]
    if missing:
        raise ValueError(f"episode rows lack keys {missing}; rows need {list(ROW_KEYS)} plus observations.")
    is_first = rows.get(keys.IS_FIRST).reshape(-1)
    is_last = rows.get(keys.IS_LAST).reshape(-1)
    if not (is_first[0] and not is_first[1:].any() and is_last[-1] and not is_last[:-1].any()):
        raise ValueError("episode rows must have is_first only on row 0 and is_last only on the last row.")
    if rows.get(keys.ACTION)[-1].any() or rows.get(keys.PREV_ACTION)[0].any() or rows.get(keys.REWARD)[0].any():
        raise ValueError(
            "alignment rule violated: action must be 0 on the last row, prev_action and reward 0 on row 0."
        )


def row_fields(rows: TensorDict) -> dict:
    """Per-row ``{key: {"dtype": "uint8", "shape": [3, 64, 64]}}`` of rows ``[L]`` (the stored schema)."""
    return {
        k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape[1:])} for k, v in sorted(rows.items())
    }
