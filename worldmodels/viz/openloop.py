"""Open-loop imagined rollouts: video grids, per-step prediction errors, plots and TensorBoard.

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

Pieces: :func:`openloop` (the rollout), :func:`video_grid` (frames), :func:`prediction_errors`
(per-step MSE/PSNR), :func:`plot_errors` / :func:`save_errors` (PNG, CSV, JSON),
:func:`write_video` (mp4/gif), :func:`tensorboard_openloop` (images + scalars). Text and plots
are drawn by :mod:`worldmodels.viz.drawing` (numpy; no matplotlib).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import NamedTuple

import imageio.v2 as imageio_v2
import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image
from tensordict import TensorDict
from torch import Tensor, nn

from worldmodels.core import keys
from worldmodels.core.interface import CapabilityError, WorldModel, check_shapes
from worldmodels.viz.drawing import GLYPH_HEIGHT, draw_text, line_plot, text_size
from worldmodels.models.probe import evaluation_mode

CONTEXT_COLOR = (0, 255, 0)
"""border of frames the model has seen (posterior reconstructions)"""
IMAGINED_COLOR = (255, 0, 0)
"""border of frames the model predicted open-loop (prior rollout)"""
PSNR_CAP_DB = 100.0
"""PSNR of a perfect prediction (MSE floored at 1e-10, pixel range 1)"""
PROBE_LABEL = "PROBE DECODER"


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

    Alignment (``worldmodels/keys.py``): ``observe`` takes ``prev_action[:, :C]``; the
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
        posterior = model.observe(pixels[:, :context], prev_action[:, :context], is_first[:, :context])  # [B,C]
        imagined = model.imagine(posterior[:, -1], prev_action[:, context:])  # [B,H]; action[C-1:C-1+H]
        frames = torch.cat([_decode(model, posterior, probe), _decode(model, imagined, probe)], dim=1)
        full = model.observe(pixels, prev_action, is_first)  # [B,T] filtered on every frame
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


# ----------------------------------------------------------------------------- video grid


def _to_rgb(frames) -> np.ndarray:
    """float ``[B, T, C, H, W]`` -> float32 numpy ``[B, T, 3, H, W]`` (C=1 grey, C=2 -> (c0, c1, 0))."""
    x = frames.detach().float().cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames, np.float32)
    if x.ndim != 5:
        raise ValueError(f"frames must be [B, T, C, H, W], got shape {list(x.shape)}.")
    c = x.shape[2]
    if c == 1:
        return np.repeat(x, 3, axis=2)
    if c == 2:  # e.g. Two Rooms (agent, walls)
        return np.concatenate([x, np.zeros_like(x[:, :, :1])], axis=2)
    return x[:, :, :3]


def video_grid(
    truth, model_frames, context: int, upscale: int = 2, label: str | None = None, border: int = 2
) -> np.ndarray:
    """Tile an open-loop rollout into video frames: truth / model / error per sequence.

    Layout of video frame ``t`` (``u = upscale``, frames ``h x w``, ``B`` sequences):

    * a black header strip of height ``7 * u`` with the step number ``t`` (white, top-left,
      3x5 bitmap font scaled by ``u``) and ``label`` (yellow, right-aligned; e.g.
      ``"PROBE DECODER"``; drawn smaller if it does not fit, clipped if it still does not);
    * below it, one column per sequence ``b`` (left to right), each a stack of three tiles:
      truth (top), model (middle), signed error ``(model - truth + 1) / 2`` (bottom; grey
      127/128 where exact, PlaNet/Dreamer convention);
    * each tile is the frame upscaled ``u`` times (nearest neighbour) inside a ``border``-pixel
      frame, green ``(0, 255, 0)`` for context steps ``t < context`` and red
      ``(255, 0, 0)`` for imagined steps.

    So ``H' = 7u + 3 (u h + 2 border)`` and ``W' = B (u w + 2 border)``; 64x64 frames at the
    defaults give 14 + 3 * 132 = 410 by 132 B pixels. Channels: C=3 as is, C=1 grey,
    C=2 (Two Rooms) as (c0, c1, 0), C>3 the first three.

    Args:
        truth: float ``[B, T, C, h, w]`` in [0, 1] (tensor or array).
        model_frames: same shape, the model's frames.
        context: number of context steps (green borders).
        upscale: integer nearest-neighbour zoom ``u >= 1``.
        label: optional text in the header.
        border: border width in pixels.

    Returns:
        uint8 ``[T, H', W', 3]``.
    """
    t_rgb, m_rgb = _to_rgb(truth), _to_rgb(model_frames)
    if t_rgb.shape != m_rgb.shape:
        raise ValueError(
            f"truth and model_frames must have the same shape, got {list(t_rgb.shape)} and {list(m_rgb.shape)}."
        )
    if upscale < 1 or border < 0:
        raise ValueError(f"upscale must be >= 1 and border >= 0, got upscale={upscale}, border={border}.")
    num_seq, steps, _, h, w = t_rgb.shape
    rows = np.stack([t_rgb, m_rgb, (m_rgb - t_rgb + 1.0) / 2.0])  # [3,B,T,3,h,w]
    rows = np.rint(np.clip(rows, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(2, 0, 4, 1, 5, 3)  # [T,3,h,B,w,3]
    tile_h, tile_w, head = upscale * h + 2 * border, upscale * w + 2 * border, (GLYPH_HEIGHT + 2) * upscale
    out = np.zeros((steps, head + 3 * tile_h, num_seq * tile_w, 3), dtype=np.uint8)  # [T,H',W',3]
    tiles = out[:, head:].reshape(steps, 3, tile_h, num_seq, tile_w, 3)  # a view
    tiles[:] = np.where((np.arange(steps) < context)[:, None], CONTEXT_COLOR, IMAGINED_COLOR)[:, None, None, None, None]
    for dy in range(upscale):  # nearest-neighbour upscaling by strided writes (no enlarged copies)
        for dx in range(upscale):
            ys = slice(border + dy, border + upscale * h, upscale)
            xs = slice(border + dx, border + upscale * w, upscale)
            tiles[:, :, ys, :, xs] = rows
    for t in range(steps):
        header = out[t, :head]
        draw_text(header, str(t), upscale, upscale, upscale)
        if label:  # right-aligned; a smaller font if it does not fit next to the step number
            room = header.shape[1] - text_size(f"{t} ", upscale)[0] - 2 * upscale
            scale = next((s for s in range(upscale, 0, -1) if text_size(label, s)[0] <= room), 1)
            x = max(header.shape[1] - upscale - text_size(label, scale)[0], header.shape[1] - upscale - room)
            draw_text(header, label, x, upscale, scale, (255, 220, 0))
    return out


# ----------------------------------------------------------------------------- errors


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
    """mean over sequences of :attr:`OpenLoop.latent_error` (None when not given)"""
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


def rollout_errors(rollout: OpenLoop) -> PredictionErrors:
    """:func:`prediction_errors` of an :class:`OpenLoop` result (frames, rewards and context)."""
    return prediction_errors(
        rollout.truth, rollout.model, rollout.context, rollout.reward_pred, rollout.reward_true, rollout.latent_error
    )


def errors_image(errors: PredictionErrors, context: int | None = None) -> np.ndarray:
    """Error curves as one uint8 ``[H, W, 3]`` image: MSE, PSNR, reward (if known) and feature-error panels."""
    context = errors.context if context is None else context
    marker = dict(vline=None if context is None else context - 0.5, vline_labels=("CONTEXT", "IMAGINED"))
    panels = [
        line_plot(errors.step, [("MSE", errors.mse, (0, 0, 200))], "OPEN-LOOP MSE PER STEP", **marker),
        line_plot(errors.step, [("PSNR", errors.psnr, (0, 120, 0))], "OPEN-LOOP PSNR (DB)", **marker),
    ]
    rewards = [("TRUE", errors.reward_true, (0, 0, 0)), ("PRED", errors.reward_pred, (200, 0, 0))]
    rewards = [(name, r, color) for name, r, color in rewards if r is not None]
    if rewards:
        panels.append(line_plot(errors.step, rewards, "REWARD", **marker))
    if errors.latent_mse is not None:
        latent = [("LATENT", errors.latent_mse, (120, 0, 160))]
        panels.append(line_plot(errors.step, latent, "FEATURE MSE TO POSTERIOR", **marker))
    return np.concatenate(panels, axis=0)


def plot_errors(errors: PredictionErrors, path_png: str | Path, context: int | None = None) -> Path:
    """Write :func:`errors_image` to a PNG (no matplotlib needed); returns the path."""
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, errors_image(errors, context))
    return path


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


# ----------------------------------------------------------------------------- files and TensorBoard


def write_video(frames: np.ndarray, path: str | Path, fps: int = 10) -> Path:
    """Write uint8 ``[T, H, W, 3]`` frames to ``.mp4`` (imageio-ffmpeg, H.264) or ``.gif``.

    1, 2 or 4 channels are accepted too (grey; Two Rooms' (agent, walls) as (c0, c1, 0); RGBA).
    In a GIF, Pillow merges consecutive identical frames (adding their durations, so playback
    time is unchanged); open-loop grids never repeat a frame (the step number changes).

    mp4 frames are padded with black to even height/width (yuv420p needs it). If ffmpeg
    fails, a ``.gif`` with the same stem is written instead (with a warning).

    Returns:
        the path actually written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 2, 3, 4) or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}.")
    if frames.shape[-1] != 3:  # grey -> RGB, 2 channels (Two Rooms) -> (c0, c1, 0), RGBA -> RGB
        frames = _to_rgb(frames.transpose(0, 3, 1, 2)[None].astype(np.float32))[0].transpose(0, 2, 3, 1)
        frames = frames.astype(np.uint8)
    if path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"write_video writes .mp4 or .gif, got '{path.name}'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mp4":
        pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
        try:
            params = ["-preset", "veryfast"]  # ~4x faster than the default 'medium', similar size
            with imageio_v2.get_writer(
                path, fps=fps, codec="libx264", macro_block_size=1, format="FFMPEG", ffmpeg_params=params
            ) as w:
                for frame in np.pad(frames, pad):
                    w.append_data(frame)
            return path
        except Exception as error:  # ffmpeg missing or broken: fall back to a GIF
            warnings.warn(f"mp4 writing failed ({error}); writing a GIF instead.", stacklevel=2)
            path.unlink(missing_ok=True)
            path = path.with_suffix(".gif")
    # Pillow's fast octree quantiser: ~15x faster than imageio's default (median cut) for GIFs.
    images = [Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
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
