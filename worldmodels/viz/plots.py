"""Per-step prediction-error curves drawn by matplotlib's Agg renderer (no display, no pyplot).

One panel per quantity, stacked top to bottom: MSE, PSNR, reward (true vs predicted, when
known) and the feature error to the posterior (when known); a dashed line marks the end of the
context. Each panel is ``PANEL_SIZE`` pixels.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from worldmodels.viz.errors import PredictionErrors

PANEL_SIZE = (480, 240)
"""(width, height) in pixels of one panel"""
DPI = 100


def _finite(y) -> np.ndarray:
    """``[T]`` float64 copy of ``y`` with non-finite values as NaN (drawn as gaps, ignored by the axis limits)."""
    y = np.asarray(y, dtype=np.float64)
    return np.where(np.isfinite(y), y, np.nan)


def errors_figure(errors: PredictionErrors, context: int | None = None) -> Figure:
    """The error curves as a matplotlib :class:`~matplotlib.figure.Figure` on an Agg canvas.

    Args:
        errors: per-step metrics, ``[T]`` arrays.
        context: context length for the marker (default ``errors.context``; None: no marker).

    Returns:
        a figure of ``PANEL_SIZE[0]`` by ``n * PANEL_SIZE[1]`` pixels, ``n`` the number of panels.
    """
    context = errors.context if context is None else context
    panels = [("open-loop MSE per step", [("MSE", errors.mse, "tab:blue")]),
              ("open-loop PSNR (dB)", [("PSNR", errors.psnr, "tab:green")])]  # fmt: skip
    rewards = [("true", errors.reward_true, "black"), ("predicted", errors.reward_pred, "tab:red")]
    rewards = [series for series in rewards if series[1] is not None]
    if rewards:
        panels.append(("reward", rewards))
    if errors.latent_mse is not None:
        panels.append(("feature MSE to posterior", [("feature MSE", errors.latent_mse, "tab:purple")]))
    width, height = PANEL_SIZE
    figure = Figure(figsize=(width / DPI, height * len(panels) / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    step = np.asarray(errors.step)
    for ax, (title, series) in zip(figure.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        for name, y, color in series:
            ax.plot(step, _finite(y), color=color, marker=".", markersize=4, linewidth=1.2, label=name)
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(True, color="0.85", linewidth=0.6)
        if len(series) > 1:
            ax.legend(fontsize=7, loc="best")
        if context is not None:
            _mark_context(ax, context - 0.5)
    return figure


def _mark_context(ax, x: float) -> None:
    """Dashed vertical line at data ``x`` with "context" left of it and "imagined" right of it."""
    ax.axvline(x, color="0.35", linestyle="--", linewidth=1)
    top = ax.get_xaxis_transform()
    ax.text(x, 0.97, "context ", transform=top, ha="right", va="top", fontsize=7, color="green", clip_on=True)
    ax.text(x, 0.97, " imagined", transform=top, ha="left", va="top", fontsize=7, color="tab:red", clip_on=True)


def figure_rgb(figure: Figure) -> np.ndarray:
    """A figure on an Agg canvas rendered to uint8 ``[H, W, 3]``."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def save_png(figure: Figure, path_png: str | Path) -> Path:
    """Write :func:`figure_rgb` of ``figure`` to a PNG (parent folders made); returns the path."""
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, figure_rgb(figure))
    return path


def errors_image(errors: PredictionErrors, context: int | None = None) -> np.ndarray:
    """:func:`errors_figure` rendered to uint8 ``[n * 240, 480, 3]`` (e.g. for TensorBoard)."""
    return figure_rgb(errors_figure(errors, context))


def plot_errors(errors: PredictionErrors, path_png: str | Path, context: int | None = None) -> Path:
    """Write :func:`errors_image` to a PNG; returns the path."""
    return save_png(errors_figure(errors, context), path_png)
