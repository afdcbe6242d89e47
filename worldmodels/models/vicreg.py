"""VICReg regularisers (Bardes et al. 2022) as pure functions, in PLDM's form (Sobal et al. 2025).

PLDM (``pldm/objectives/vicreg.py``; methods.md section 3.5) keeps its encodings from
collapsing with two terms computed over a *sample* dimension -- the batch at ``t = 0``, or
time within each trajectory:

* variance   ``var = mean_d relu(margin - sqrt(Var_n(z[n, d]) + eps))``      (margin 1, eps 1e-4)
* covariance ``cov = sum_{i != j} C(z)_{ij}^2 / (D (D - 1))``, ``C`` the sample covariance
  (PLDM's ``adjust_cov`` divides by ``D (D - 1)``; the original VICReg divides by ``D``).

Both take ``z [..., N, D]``: the second-to-last dimension holds the N samples, every leading
dimension is an independent group, and the results are averaged over the groups. Variances use
the unbiased estimator (``torch.var``'s default, as VICReg's reference code), so ``N >= 2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_samples(z: Tensor, name: str) -> None:
    if z.dim() < 2 or z.shape[-2] < 2:
        raise ValueError(f"{name} needs z of shape [..., N, D] with N >= 2 samples, got {list(z.shape)}.")


def vicreg_variance(z: Tensor, margin: float = 1.0, eps: float = 1e-4) -> Tensor:
    """VICReg variance hinge: ``mean_{groups, d} relu(margin - sqrt(Var_n(z[..., n, d]) + eps))``.

    Args:
        z: encodings; dim -2 indexes samples (batch or time), dim -1 the D features.
        margin: target std gamma (VICReg / PLDM: 1).
        eps: added to the variance before the square root (VICReg / PLDM: 1e-4).

    Returns:
        scalar loss (0 when every feature's std >= margin).

    Shapes:
        z ``[..., N, D]`` with N >= 2 -> ``[]``.
    """
    _check_samples(z, "vicreg_variance")
    std = torch.sqrt(z.var(dim=-2) + eps)  # [..., D]
    return F.relu(margin - std).mean()


def vicreg_covariance(z: Tensor) -> Tensor:
    """VICReg covariance penalty, PLDM normalisation: ``sum_{i != j} C_ij^2 / (D (D - 1))``.

    ``C = (z - mean_n z)^T (z - mean_n z) / (N - 1)`` per group; averaged over groups.

    Args:
        z: encodings; dim -2 indexes samples, dim -1 the D >= 2 features.

    Returns:
        scalar loss (0 for decorrelated features).

    Shapes:
        z ``[..., N, D]`` with N >= 2, D >= 2 -> ``[]``.
    """
    _check_samples(z, "vicreg_covariance")
    n, d = z.shape[-2], z.shape[-1]
    if d < 2:
        raise ValueError(f"vicreg_covariance needs D >= 2 features, got {d}.")
    centred = z - z.mean(dim=-2, keepdim=True)  # [..., N, D]
    cov = centred.transpose(-1, -2) @ centred / (n - 1)  # [..., D, D]
    off_diagonal = cov.pow(2).sum((-1, -2)) - torch.diagonal(cov, dim1=-2, dim2=-1).pow(2).sum(-1)  # [...]
    return (off_diagonal / (d * (d - 1))).mean()


def feature_std(z: Tensor) -> Tensor:
    """Per-feature std over the samples (unbiased), for collapse monitors. Shapes: ``[..., N, D] -> [..., D]``."""
    _check_samples(z, "feature_std")
    return z.std(dim=-2)
