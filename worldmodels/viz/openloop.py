"""Open-loop imagined rollouts and their reports: video + error files, or TensorBoard.

The open-loop test of a world model (PlaNet, Hafner et al. 2019, ``open_loop_context`` 5;
DreamerV2 ``video_pred``): filter the first ``C`` frames of a held-out sequence with the
posterior, then roll the prior forward ``H`` steps on the *real* actions, without looking at
further frames, and compare the decoded predictions with the true frames. Models without a
decoder (the PLDM JEPA) are shown through a probe decoder trained on frozen features
(:mod:`worldmodels.models.probe`), and the video says so.

Typical use (what ``worldmodels imagine RUN_DIR`` runs)::

    report = imagine_report(model, batch, "runs/x/videos/openloop.mp4", context=5, horizon=45)
    report["video"], report["plot"], report["mse_imagined"]

and in the training loop (every ``log.openloop_every`` episodes)::

    logger.scalars(log_openloop(logger.writer, model, replay_batch[:6], step), step)

Pieces: :func:`openloop` (the rollout) and :func:`rollout_errors` here; frames and video files
in :mod:`worldmodels.viz.video`, per-step metrics and CSV/JSON in :mod:`worldmodels.viz.errors`,
the error plot in :mod:`worldmodels.viz.plots`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, WorldModel, check_shapes
from worldmodels.models.probe import evaluation_mode
from worldmodels.viz.errors import PredictionErrors, openloop_scalars, prediction_errors, save_errors
from worldmodels.viz.plots import errors_image, plot_errors
from worldmodels.viz.video import video_grid, write_video

PROBE_LABEL = "PROBE DECODER"
"""header label of videos whose frames come from a probe decoder"""


class OpenLoop(NamedTuple):
    """Result of :func:`openloop`; all tensors on the model's device, ``T = context + horizon``."""

    truth: Tensor
    """float ``[B, T, C, H, W]`` in [0, 1], the true frames"""
    model: Tensor
    """float ``[B, T, C, H, W]`` in [0, 1]: posterior reconstructions for ``t < context``,
    open-loop prior decodes after"""
    reward_pred: Tensor | None
    """``[B, T, 1]`` predicted reward (None unless ``model.has_reward``)"""
    reward_true: Tensor | None
    """``[B, T, 1]`` reward from the batch (None if the batch has no reward)"""
    latent_error: Tensor
    """``[B, T]`` mean squared distance between the rollout's features and ``features`` of the
    posterior filtered on *all* frames (for a JEPA: the encoder's embedding of the true frame,
    PLDM's prediction target); needs no decoder"""
    context: int
    """number of observed frames ``C``"""
    probe: bool
    """True when the frames come from a probe decoder rather than the model's own decoder"""


def openloop(
    model: WorldModel, batch: TensorDict, context: int = 5, horizon: int = 45, probe: nn.Module | None = None
) -> OpenLoop:
    """Observe ``context`` frames, then imagine ``horizon`` frames open-loop on the real actions.

    Alignment (``worldmodels/core/keys.py``): ``observe`` takes ``prev_action[:, :C]``; the
    posterior at row ``C-1`` is then rolled forward with the actions *taken* at rows
    ``C-1 .. C+H-2``, i.e. ``action[:, C-1 : C-1+H] == prev_action[:, C : C+H]``, so that
    imagined row ``h`` predicts ``pixels[:, C+h]``. ``prev_action`` is used because every
    model batch carries it.

    Args:
        model: any :class:`WorldModel`; run in eval mode under ``no_grad`` (mode restored).
        batch: replay rows ``[B, T]`` with ``PIXELS``, ``PREV_ACTION``, ``IS_FIRST`` (and
            ``REWARD`` if available), ``T >= context + horizon``.
        context: frames filtered by the posterior, ``C >= 1`` (PlaNet: 5).
        horizon: imagined steps ``H >= 1`` (DreamerV2 video: 45 = 50 - 5).
        probe: decoder ``features [..., F] -> [..., C, H, W]``; required when the model has no
            decoder, and used instead of ``model.decode`` when given.

    Returns:
        :class:`OpenLoop` with ``T = C + H`` frames.

    Shapes:
        batch[PIXELS] uint8 ``[B, T', C, H, W]`` -> truth, model ``[B, C+H, C, H, W]``.
    """
    if context < 1 or horizon < 1:
        raise ValueError(f"openloop needs context >= 1 and horizon >= 1, got context={context}, horizon={horizon}.")
    if probe is None and not model.has_decoder:
        raise CapabilityError(
            f"{type(model).__name__} has no decoder; pass probe=train_probe(model, ...) from worldmodels.models.probe."
        )
    length = context + horizon
    if batch.batch_dims != 2 or batch.batch_size[1] < length:
        raise ValueError(
            f"openloop needs a [B, T] batch with T >= context + horizon = {length}, got batch size "
            f"{list(batch.batch_size)}; sample longer sequences or lower --context/--horizon."
        )
    batch = batch[:, :length].to(model.device)
    pixels, prev_action, is_first = batch[keys.PIXELS], batch[keys.PREV_ACTION], batch[keys.IS_FIRST]
    check_shapes("pixels", pixels, [None, length, *model.image_shape], torch.uint8)
    if bool(is_first[:, context:].any()):
        warnings.warn("open-loop window crosses an episode start (is_first after the context); "
                      "predictions past it are not comparable with the truth.", stacklevel=2)

    with torch.no_grad(), evaluation_mode(model), evaluation_mode(probe if probe is not None else nn.Identity()):
        posterior = model.observe(batch[:, :context], prev_action[:, :context], is_first[:, :context])  # [B,C]
        imagined = model.imagine(posterior[:, -1], prev_action[:, context:])  # [B,H]; action[C-1:C-1+H]
        frames = torch.cat([_decode(model, posterior, probe), _decode(model, imagined, probe)], dim=1)
        full = model.observe(batch, prev_action, is_first)  # [B,T] filtered on every frame
        rollout_features = torch.cat([model.features(posterior), model.features(imagined)], dim=1)  # [B,T,F]
        latent_error = (rollout_features - model.features(full)).pow(2).mean(-1).float()  # [B,T]
        reward_pred = None
        if model.has_reward:
            reward_pred = torch.cat([model.reward(posterior), model.reward(imagined)], dim=1)  # [B,T,1]
    reward_true = batch[keys.REWARD].float() if keys.REWARD in batch.keys() else None
    truth = pixels.float() / 255.0
    frames = frames.clamp(0, 1).float()
    return OpenLoop(truth, frames, reward_pred, reward_true, latent_error, context, probe is not None)


def _decode(model: WorldModel, states: TensorDict, probe: nn.Module | None) -> Tensor:
    return probe(model.features(states)) if probe is not None else model.decode(states)


def rollout_errors(rollout: OpenLoop) -> PredictionErrors:
    """:func:`prediction_errors` of an :class:`OpenLoop` result (frames, rewards and context)."""
    return prediction_errors(
        rollout.truth, rollout.model, rollout.context, rollout.reward_pred, rollout.reward_true, rollout.latent_error
    )


def tensorboard_openloop(
    writer, tag: str, frames: np.ndarray, errors: PredictionErrors, step: int, num_frames: int = 8, scalars: bool = True
) -> dict[str, float]:
    """Log an open-loop rollout to a ``torch.utils.tensorboard.SummaryWriter``.

    Writes images ``{tag}/frames`` (``num_frames`` evenly spaced video frames side by side;
    borders tell context from imagined) and ``{tag}/errors`` (the error plot), the
    :func:`openloop_scalars` (unless ``scalars=False``, e.g. when a Logger writes them), and
    ``{tag}/video`` only when moviepy is installed (TensorBoard's video encoder needs it; it is
    not a dependency, the frame strip stands in for it).

    Returns:
        the :func:`openloop_scalars`.
    """
    frames = np.asarray(frames)
    pick = np.unique(np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round().astype(int))
    writer.add_image(f"{tag}/frames", np.concatenate(list(frames[pick]), axis=1), step, dataformats="HWC")
    writer.add_image(f"{tag}/errors", errors_image(errors), step, dataformats="HWC")
    values = openloop_scalars(errors, tag)
    for name, value in values.items() if scalars else ():
        writer.add_scalar(name, value, step)
    try:
        import moviepy  # noqa: F401  (optional)
    except ImportError:
        return values
    writer.add_video(f"{tag}/video", torch.from_numpy(frames).permute(0, 3, 1, 2)[None], step, fps=10)
    return values


def log_openloop(
    writer, model: WorldModel, batch: TensorDict, step: int, context: int = 5, horizon: int = 45,
    tag: str = "openloop", probe: nn.Module | None = None, video_path: str | Path | None = None,
) -> dict[str, float]:  # fmt: skip
    """One call for the training loop (every ``log.openloop_every``): rollout, grid, TensorBoard
    images (``writer`` may be None), optional video file; returns the scalars for the caller's
    metrics log (they are not written to TensorBoard here, so a Logger does not log them twice).
    """
    rollout = openloop(model, batch, context, horizon, probe)
    errors = rollout_errors(rollout)
    frames = video_grid(rollout.truth, rollout.model, context, label=PROBE_LABEL if rollout.probe else None)
    if video_path is not None:
        write_video(frames, video_path)
    if writer is None:
        return openloop_scalars(errors, tag)
    return tensorboard_openloop(writer, tag, frames, errors, step, scalars=False)


def imagine_report(
    model: WorldModel,
    batch: TensorDict,
    out_path: str | Path,
    context: int = 5,
    horizon: int = 45,
    fps: int = 10,
    probe: nn.Module | None = None,
    upscale: int = 2,
) -> dict:
    """Open-loop rollout of ``batch`` -> video, error plot (PNG), CSV and JSON next to it.

    Args:
        model: a loaded world model.
        batch: ``[K, T]`` held-out sequences, ``T >= context + horizon``.
        out_path: ``FILE.mp4`` or ``FILE.gif``; siblings ``FILE_errors.png/.csv/.json``.
        context, horizon: see :func:`openloop`.
        fps: video frame rate.
        probe: probe decoder (required for models without a decoder); the video is labelled
            ``"PROBE DECODER"`` when frames come from it.
        upscale: nearest-neighbour zoom of each frame.

    Returns:
        dict with paths ``video``, ``plot``, ``csv``, ``json`` and metrics ``mse_context``,
        ``mse_imagined``, ``psnr_imagined``, ``mse_final``, ``latent_mse_imagined``,
        ``num_sequences``, ``num_frames``, ``probe``.
    """
    out_path = Path(out_path)
    if out_path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"--out must end in .mp4 or .gif, got '{out_path.name}'.")
    rollout = openloop(model, batch, context, horizon, probe)
    errors = rollout_errors(rollout)
    frames = video_grid(rollout.truth, rollout.model, context, upscale, PROBE_LABEL if rollout.probe else None)
    stem = out_path.with_name(out_path.stem + "_errors")
    return {
        "video": str(write_video(frames, out_path, fps)),
        "plot": str(plot_errors(errors, stem.with_suffix(".png"))),
        "csv": str(save_errors(errors, stem.with_suffix(".csv"))),
        "json": str(save_errors(errors, stem.with_suffix(".json"))),
        "mse_context": float(errors.mse[:context].mean()),
        "mse_imagined": float(errors.mse[context:].mean()),
        "psnr_imagined": float(errors.psnr[context:].mean()),
        "mse_final": float(errors.mse[-1]),
        "latent_mse_imagined": float(errors.latent_mse[context:].mean()),
        "num_sequences": int(rollout.truth.shape[0]),
        "num_frames": int(frames.shape[0]),
        "probe": rollout.probe,
    }
