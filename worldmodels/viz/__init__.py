"""Visualisation of world models: open-loop imagination videos, error plots and files.

Modules: :mod:`~worldmodels.viz.openloop` (the rollout and its reports),
:mod:`~worldmodels.viz.video` (frame grids, labels, mp4/gif), :mod:`~worldmodels.viz.errors`
(per-step metrics, CSV/JSON), :mod:`~worldmodels.viz.plots` (error curves, matplotlib Agg).
The ``worldmodels imagine`` command that uses them is ``worldmodels/cli/imagine.py``.
"""

from worldmodels.viz.errors import PSNR_CAP_DB, PredictionErrors, openloop_scalars, prediction_errors, save_errors
from worldmodels.viz.openloop import (
    PROBE_LABEL,
    OpenLoop,
    imagine_report,
    log_openloop,
    openloop,
    rollout_errors,
    tensorboard_openloop,
)
from worldmodels.viz.plots import errors_figure, errors_image, plot_errors
from worldmodels.viz.video import CONTEXT_COLOR, IMAGINED_COLOR, draw_label, video_grid, write_video

__all__ = [
    "CONTEXT_COLOR", "IMAGINED_COLOR", "PROBE_LABEL", "PSNR_CAP_DB", "OpenLoop", "PredictionErrors",
    "draw_label", "errors_figure", "errors_image", "imagine_report", "log_openloop", "openloop",
    "openloop_scalars", "plot_errors", "prediction_errors", "rollout_errors", "save_errors",
    "tensorboard_openloop", "video_grid", "write_video",
]  # fmt: skip
