"""PLDM's networks: an IMPALA-style conv encoder and a residual-GRU latent predictor.

PLDM (Sobal, Zhang et al. 2025, arXiv 2502.14819; ``pldm/models/jepa.py``, methods.md 2.5):

* Encoder ``arch: impala`` -- the IMPALA CNN (Espeholt et al. 2018): per stage a 3x3 conv,
  a 3x3 stride-2 max-pool and residual blocks ``x + conv(relu(conv(relu(x))))``; PLDM adds
  GroupNorm after each conv and a final LayerNorm. Our variant: stage channels, residual blocks
  per stage and GroupNorm groups are configurable (IMPALA: (16, 32, 32), 2 blocks; PLDM "width
  factor 2": (32, 64, 64)); the last feature map is flattened, projected by one Linear to a
  **flat** latent ``[Z]`` and layer-normalised. (PLDM keeps a spatial latent for Two Rooms; a flat
  one lets every planner/objective/probe read ``features`` as a vector.)
* Predictor ``rnnV2`` -- residual, deterministic, with LayerNorm. Ours:
  ``h = GRUCell(W_a a_t, z_t)``, ``z_{t+1} = LayerNorm(z_t + W_o h)``: the GRU's hidden state is the
  latent itself, its input an embedding of the action, and the output a LayerNorm-ed residual
  update (so predictions live on the same normalised scale as the encoder's outputs).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


class _ResidualBlock(nn.Module):
    """IMPALA residual block with GroupNorm: ``x + GN(conv(relu(GN(conv(relu(x))))))``."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = _group_norm(channels, groups)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = _group_norm(channels, groups)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(self.conv1(F.relu(x)))
        return x + self.norm2(self.conv2(F.relu(h)))


class ImpalaEncoder(nn.Module):
    """IMPALA-style CNN with GroupNorm and a final LayerNorm: images ``[..., C, H, W]`` -> ``[..., Z]``.

    Args:
        image_shape: ``(C, H, W)`` of the (float, preprocessed) input images; any H, W >= 8.
        channels: output channels of each stage (IMPALA: (16, 32, 32); PLDM width 2: (32, 64, 64)).
        blocks: residual blocks per stage (IMPALA: 2).
        groups: GroupNorm groups (clipped to the channel count; must divide it).
        latent_dim: output size Z.
        input_pool: average-pool the input by this factor first (1 = off, as the paper; 2 makes
            CPU configs ~4x cheaper -- Two Rooms' 1.3 px blob stays visible at 32x32).

    Shapes:
        ``[*batch, C, H, W] -> [*batch, latent_dim]``; the pool divides H and W, each stage halves them (ceil).

    Example:
        >>> enc = ImpalaEncoder((2, 64, 64), channels=(16, 32, 32), blocks=1, groups=4, latent_dim=64)
        >>> enc(torch.zeros(3, 5, 2, 64, 64)).shape
        torch.Size([3, 5, 64])
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...] = (16, 32, 32),
                 blocks: int = 2, groups: int = 4, latent_dim: int = 512, input_pool: int = 1):  # fmt: skip
        super().__init__()
        c, h, w = image_shape
        if input_pool < 1 or h % input_pool or w % input_pool:
            raise ValueError(f"input_pool {input_pool} must be >= 1 and divide the image size {h}x{w}.")
        self.input_pool = input_pool
        h, w = h // input_pool, w // input_pool
        for ch in channels:
            if ch % min(groups, ch) != 0:
                raise ValueError(f"GroupNorm groups {groups} must divide every encoder channel count, got {channels}.")
        self.image_shape = tuple(image_shape)
        stages: list[nn.Module] = []
        for ch in channels:
            stages += [nn.Conv2d(c, ch, 3, padding=1), _group_norm(ch, groups), nn.MaxPool2d(3, stride=2, padding=1)]
            stages += [_ResidualBlock(ch, groups) for _ in range(blocks)]
            c, h, w = ch, (h + 1) // 2, (w + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.project = nn.Linear(c * h * w, latent_dim)
        self.norm = nn.LayerNorm(latent_dim)
        self.latent_dim = latent_dim

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[-3:]) != self.image_shape:
            raise ValueError(f"ImpalaEncoder expects images [..., {', '.join(map(str, self.image_shape))}], "
                             f"got {list(images.shape)}.")  # fmt: skip
        batch = images.shape[:-3]
        x = images.reshape(-1, *self.image_shape)  # [N, C, H, W]
        if self.input_pool > 1:
            x = F.avg_pool2d(x, self.input_pool)  # [N, C, H/p, W/p]
        x = self.stages(x)  # [N, c, h, w]
        x = F.relu(x).flatten(1)  # [N, c*h*w]
        return self.norm(self.project(x)).reshape(*batch, self.latent_dim)  # [*batch, Z]


class ResidualGRUPredictor(nn.Module):
    """Deterministic latent dynamics ``z_{t+1} = LayerNorm(z_t + W_o GRUCell(W_a a_t, z_t))``.

    Args:
        latent_dim: Z (the GRU hidden size is Z: the latent is the recurrent state).
        action_dim: A.
        hidden_dim: size of the action embedding fed to the GRU (PLDM rnnV2: 512).

    Shapes:
        ``z [N, Z], a [N, A] -> [N, Z]``.
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden_dim: int = 512):
        super().__init__()
        self.embed = nn.Linear(action_dim, hidden_dim)
        self.cell = nn.GRUCell(hidden_dim, latent_dim)
        self.out = nn.Linear(latent_dim, latent_dim)
        self.norm = nn.LayerNorm(latent_dim)

    def forward(self, z: Tensor, action: Tensor) -> Tensor:
        h = self.cell(self.embed(action), z)  # [N, Z]
        return self.norm(z + self.out(h))  # [N, Z]
