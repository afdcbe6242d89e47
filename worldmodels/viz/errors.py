"""Per-step open-loop prediction errors: MSE, PSNR, rewards, feature error; CSV/JSON files and scalars."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

PSNR_CAP_DB = 100.0
"""PSNR of a perfect prediction (MSE floored at 1e-10, pixel range 1)"""


class PredictionErrors(NamedTuple):
    """Per-step open-loop metrics, averaged over sequences; numpy float64 ``[T]`` each."""

    step: np.ndarray
    mse: np.ndarray
    """mean squared pixel error (pixels in [0, 1])"""
    psnr: np.ndarray
    """mean over sequences of ``10 log10(1 / mse_b)``, capped at :data:`PSNR_CAP_DB`"""
    reward_pred: np.ndarray | None
    reward_true: np.ndarray | None
    latent_mse: np.ndarray | None
    """mean over sequences of the rollout's feature-space error (None when not given)"""
    context: int | None


def prediction_errors(
    truth, model_frames, context: int | None = None, reward_pred=None, reward_true=None, latent_error=None
) -> PredictionErrors:
    """Per-step MSE and PSNR of ``model_frames`` against ``truth``, averaged over sequences.

    ``mse_t = mean_{b,c,i,j} (model - truth)^2``;
    ``psnr_t = mean_b 10 log10(1 / max(mse_{b,t}, 1e-10))`` (so a perfect frame reads 100 dB).

    Args:
        truth, model_frames: float ``[B, T, C, H, W]`` in [0, 1].
        context: context length, kept for plots and per-horizon scalars.
        reward_pred, reward_true: optional ``[B, T, 1]``; averaged over sequences.
        latent_error: optional ``[B, T]`` feature-space error; averaged over sequences.

    Returns:
        :class:`PredictionErrors` with ``[T]`` arrays.
    """
    t = torch.as_tensor(truth).detach().double().cpu()
    m = torch.as_tensor(model_frames).detach().double().cpu()
    if t.shape != m.shape or t.dim() != 5:
        raise ValueError(
            f"truth and model_frames must both be [B, T, C, H, W], got {list(t.shape)} and {list(m.shape)}."
        )
    mse_bt = (m - t).pow(2).flatten(2).mean(-1)  # [B,T]
    psnr_bt = -10.0 * torch.log10(mse_bt.clamp_min(10 ** (-PSNR_CAP_DB / 10)))  # [B,T]

    def mean_over_sequences(r):  # [B,T(,1)] -> [T]
        return None if r is None else torch.as_tensor(r).detach().double().cpu().reshape(t.shape[:2]).mean(0).numpy()

    return PredictionErrors(
        np.arange(t.shape[1]), mse_bt.mean(0).numpy(), psnr_bt.mean(0).numpy(),
        mean_over_sequences(reward_pred), mean_over_sequences(reward_true), mean_over_sequences(latent_error),
        context,
    )  # fmt: skip


def save_errors(errors: PredictionErrors, path: str | Path) -> Path:
    """Write columns ``step, mse, psnr, reward_pred, reward_true, latent_mse`` to ``.csv`` or ``.json``.

    Missing rewards are empty cells (CSV) or ``null`` (JSON). JSON also holds ``context``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ("step", "mse", "psnr", "reward_pred", "reward_true", "latent_mse")
    values = {c: (None if getattr(errors, c) is None else [float(v) for v in getattr(errors, c)]) for c in columns}
    values["step"] = [int(s) for s in errors.step]
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for i in range(len(errors.step)):
                writer.writerow(["" if values[c] is None else values[c][i] for c in columns])
    elif path.suffix == ".json":
        path.write_text(json.dumps({"context": errors.context, **values}, indent=1))
    else:
        raise ValueError(f"save_errors writes .csv or .json, got '{path.name}'.")
    return path


def openloop_scalars(errors: PredictionErrors, tag: str = "openloop") -> dict[str, float]:
    """Scalar summary of a rollout: ``{tag}/mse/h{k}`` and ``{tag}/psnr/h{k}`` at imagined
    horizons k in 1, 5, 10, 20, 50, 100, ... and the last one, plus means over imagined steps
    ``{tag}/mse/imagined``, ``{tag}/psnr/imagined`` (and ``{tag}/latent_mse/imagined``)."""
    context = errors.context or 0
    horizon = len(errors.step) - context
    out: dict[str, float] = {}
    for k in sorted({k for k in (1, 5, 10, 20, 50, 100, 200, 500) if k <= horizon} | {horizon} - {0}):
        out[f"{tag}/mse/h{k}"] = float(errors.mse[context + k - 1])
        out[f"{tag}/psnr/h{k}"] = float(errors.psnr[context + k - 1])
    if horizon >= 1:
        out[f"{tag}/mse/imagined"] = float(errors.mse[context:].mean())
        out[f"{tag}/psnr/imagined"] = float(errors.psnr[context:].mean())
        if errors.latent_mse is not None:
            out[f"{tag}/latent_mse/imagined"] = float(errors.latent_mse[context:].mean())
    return out
