"""Frame stacking for encoders that see one observation at a time (PLDM ``model.frame_stack``).

A single frame shows where things are but not how fast they move. For second-order systems such as
DMC point_mass (the action changes the velocity), an encoder of one frame cannot see the velocity,
so neither its predictor nor its inverse-dynamics head can work out what the action did. PLDM adds
proprioception for such envs; stacking the last ``k`` frames is the pixel-only alternative (as in
DQN's 4-frame input).

Convention: the stack for row ``t`` holds frames ``t-k+1 .. t``, oldest first. Inside an episode's
first ``k-1`` rows the frames before its start are replaced by the episode's first frame, so an
episode begins "at rest" -- as DMC point_mass does (random position, zero velocity) and as a goal
image stacked with itself (:func:`repeat_frame`) shows a state held still.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stack_frames(pixels: Tensor, is_first: Tensor, k: int, history: Tensor | None = None) -> Tensor:
    """The last ``k`` frames at every row, never reaching back across an episode start.

    Args:
        pixels: ``[B, T, C, H, W]`` frames of consecutive rows.
        is_first: bool ``[B, T, 1]``; a True row starts an episode (nothing before it is stacked).
        k: frames per stack (>= 1).
        history: ``[B, k-1, C, H, W]``, the frames before row 0 (oldest first, e.g. the previous
            call's :data:`keys.FRAMES`), or None: row 0 then counts as an episode start.

    Returns:
        ``[B, T, k, C, H, W]``: entry ``[b, t, j]`` is frame ``t - (k-1) + j``, clamped to the
        latest episode start at or before ``t``.

    Example:
        >>> px = torch.arange(3).view(1, 3, 1, 1, 1)            # frames 0, 1, 2
        >>> first = torch.tensor([[[True], [False], [True]]])
        >>> stack_frames(px, first, 2)[0, :, :, 0, 0, 0].tolist()
        [[0, 0], [0, 1], [2, 2]]
    """
    if k < 1:
        raise ValueError(f"frame stack k must be >= 1, got {k}.")
    b, t = pixels.shape[:2]
    if k == 1:
        return pixels[:, :, None]
    if history is None:
        history = pixels[:, :1].expand(b, k - 1, *pixels.shape[2:])  # row 0 starts an episode
        first = torch.ones_like(is_first[:, :1, 0])
        starts = torch.cat([first, is_first[:, 1:, 0]], 1)  # [B,T]
    else:
        if tuple(history.shape) != (b, k - 1, *pixels.shape[2:]):
            raise ValueError(f"frame history must have shape {[b, k - 1, *pixels.shape[2:]]} (the last k-1 frames "
                             f"before row 0), got {list(history.shape)}.")  # fmt: skip
        starts = is_first[:, :, 0]
    padded = torch.cat([history.to(pixels.dtype), pixels], 1)  # [B, k-1+T, C,H,W]; row t sits at t+k-1
    rows = torch.arange(t, device=pixels.device) + (k - 1)  # [T] padded index of each row
    start = torch.where(starts.bool(), rows, torch.zeros_like(rows)).cummax(1).values  # [B,T] latest start
    lags = torch.arange(k - 1, -1, -1, device=pixels.device)  # [k]: k-1 .. 0, oldest first
    source = torch.maximum(rows[None, :, None] - lags, start[:, :, None])  # [B,T,k]
    return padded[torch.arange(b, device=pixels.device)[:, None, None], source]  # [B,T,k,C,H,W]


def repeat_frame(pixels: Tensor, k: int) -> Tensor:
    """One frame as a stack of ``k`` copies (a state held still). Shapes: ``[..., C, H, W] -> [..., k, C, H, W]``."""
    return pixels.unsqueeze(-4).expand(*pixels.shape[:-3], k, *pixels.shape[-3:])
