"""A learning curve drawn over a reference band (matplotlib's Agg renderer, no display, no pyplot).

Ours: eval return vs env steps, a line with markers and a +-std shade. The reference: the
papers' mean over seeds as a dashed line and their min-max over seeds as a shaded band; a
reference without min-max (PlaNet's Table 1) is drawn as points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from worldmodels.viz.plots import save_png

SIZE = (720, 420)
"""(width, height) of the figure in pixels"""
DPI = 100


def _array(values) -> np.ndarray:
    """float64 ``[N]`` with None as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _draw_reference(ax, reference: dict | None, reference_label: str) -> None:
    """The papers' mean over seeds (dashed) and min-max band (shaded), or points where it has no band."""
    if reference is None or not reference["env_steps"]:
        return
    x = np.asarray(reference["env_steps"], dtype=np.float64)
    low, high, ref_mean = _array(reference["min"]), _array(reference["max"]), _array(reference["mean"])
    seeds = reference.get("seeds")
    name = f"{reference_label} mean" + (f" ({seeds} seeds)" if seeds else "")
    if np.isfinite(low).all() and np.isfinite(high).all():
        ax.fill_between(x, low, high, color="tab:gray", alpha=0.3, linewidth=0, label=f"{reference_label} min-max")
        ax.plot(x, ref_mean, color="0.3", linestyle="--", marker="s", markersize=4, linewidth=1.2, label=name)
    else:
        ax.plot(x, ref_mean, color="0.3", linestyle="none", marker="*", markersize=10, label=name)


def _finish_axes(ax, last_step: float | None, reference: dict | None, title: str, random: dict | None) -> None:
    """Random-action line, labels, and an x range zoomed to our runs (plus the first reference point):
    a 1M-step band would squash a short curve."""
    if random is not None:
        ax.axhline(random["mean"], color="tab:red", linestyle=":", linewidth=1.2,
                   label=f"random actions ({random['mean']:.0f} ± {random['std']:.0f})")
    ax.set_xlabel("env steps (action repeat included)", fontsize=9)
    ax.set_ylabel("eval return", fontsize=9)
    ax.set_title(title, fontsize=9, loc="left", wrap=True)
    right = None
    if last_step is not None:
        ref_first = reference["env_steps"][0] if reference and reference["env_steps"] else 0
        right = max(last_step * 1.3, ref_first * 1.15)
    ax.set_xlim(left=0, right=right)
    ax.grid(True, color="0.85", linewidth=0.6)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="best")


def _axes() -> tuple[Figure, object]:
    width, height = SIZE
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def learning_curve_figure(steps: Sequence[int], mean: Sequence[float], std: Sequence[float] | None,
                          reference: dict | None, title: str, label: str = "ours",
                          reference_label: str = "reference", random: dict | None = None) -> Figure:  # fmt: skip
    """Our curve over the reference band, as a :class:`~matplotlib.figure.Figure` on an Agg canvas.

    Args:
        steps, mean, std: our evaluations, ``[N]`` env steps, mean return, std over episodes (or None).
        reference: ``{"env_steps", "mean", "min", "max", "seeds"}`` lists of one task (min/max may be None).
        title: figure title (task, config).
        random: ``{"mean", "std"}`` of random actions from the same starts, drawn as a dotted line (or None).

    The x axis ends at 1.3x our last step (or just past the first reference step): the table
    printed beside it lists the reference points further out.
    """
    figure, ax = _axes()
    _draw_reference(ax, reference, reference_label)
    x, y = np.asarray(steps, dtype=np.float64), _array(mean)
    if len(x):
        ax.plot(x, y, color="tab:blue", marker="o", markersize=4, linewidth=1.5, label=label)
        if std is not None:
            s = _array(std)
            ax.fill_between(x, y - s, y + s, color="tab:blue", alpha=0.15, linewidth=0,
                            label=f"{label} ± std over episodes")
    _finish_axes(ax, float(x.max()) if len(x) else None, reference, title, random)
    return figure


def learning_curves_figure(curves: Sequence[dict], reference: dict | None, title: str,
                           reference_label: str = "reference", random: dict | None = None) -> Figure:
    """Several of our curves (an ablation's groups) over one reference band.

    Args:
        curves: per group ``{"label", "steps", "mean", "low", "high"}``, each ``[N]``: env steps, the
            mean over the group's seeds, and the shaded range (min-max over seeds; None: no shade).
        reference, title, reference_label, random: as :func:`learning_curve_figure`.
    """
    figure, ax = _axes()
    _draw_reference(ax, reference, reference_label)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")
    last = None
    for i, curve in enumerate(curves):
        colour = colours[i % len(colours)]
        x, y = np.asarray(curve["steps"], dtype=np.float64), _array(curve["mean"])
        if not len(x):
            continue
        last = max(last or 0.0, float(x.max()))
        ax.plot(x, y, color=colour, marker="o", markersize=4, linewidth=1.5, label=curve["label"])
        if curve.get("low") is not None and curve.get("high") is not None:
            ax.fill_between(x, _array(curve["low"]), _array(curve["high"]), color=colour, alpha=0.15, linewidth=0)
    _finish_axes(ax, last, reference, title, random)
    return figure


def plot_learning_curve(path_png: str | Path, *args, **kwargs) -> Path:
    """Write :func:`learning_curve_figure` (same arguments) to a PNG; returns the path."""
    return save_png(learning_curve_figure(*args, **kwargs), path_png)
