"""Video frames of an open-loop rollout: the truth / model / error grid, text labels, mp4/gif files.

Text is drawn with Pillow's built-in font (``ImageFont.load_default``; no font files). Frames
are uint8 ``[T, H, W, 3]`` numpy arrays throughout.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Sequence

import imageio.v2 as imageio_v2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from worldmodels.core.paths import writable_file

CONTEXT_COLOR = (0, 255, 0)
"""border of frames the model has seen (posterior reconstructions)"""
IMAGINED_COLOR = (255, 0, 0)
"""border of frames the model predicted open-loop (prior rollout)"""
STEP_COLOR = (255, 255, 255)
"""ink of the step number in the header"""
LABEL_COLOR = (255, 220, 0)
"""ink of the header label (e.g. ``"PROBE DECODER"``)"""
HEADER_ROWS = 7
"""header height in units of ``upscale`` pixels"""


@functools.lru_cache(maxsize=None)
def _font(height: int) -> ImageFont.FreeTypeFont:
    """Pillow's default font at the largest size whose digits are at most ``height`` pixels tall."""
    for size in range(4 * max(height, 1), 1, -1):
        font = ImageFont.load_default(size=size)
        if _cap_height(font) <= height:
            return font
    return ImageFont.load_default(size=1)


def _cap_height(font: ImageFont.FreeTypeFont) -> int:
    return -font.getbbox("0", mode="1", anchor="ls")[1]


def text_size(text: str, height: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the box :func:`draw_label` writes ``text`` into at ``height``:
    the text's width and the font's cap height (at most ``height``; descenders reach below)."""
    font = _font(height)
    left, _, right, _ = font.getbbox(text, mode="1", anchor="ls")
    return max(right - left, 0), _cap_height(font)


def draw_label(
    image: np.ndarray, text: str, x: int, y: int, height: int, color: Sequence[int] = STEP_COLOR
) -> np.ndarray:
    """Write ``text`` into ``image`` in place, in the box of :func:`text_size` with top-left ``(x, y)``.

    Digits and capitals are at most ``height`` pixels tall; descenders reach below. Ink is not
    anti-aliased (every drawn pixel is exactly ``color``); whatever falls outside the image is
    clipped.

    Args:
        image: uint8 ``[H, W, 3]``, modified in place.
        text: the text.
        x, y: column and row of the box's top-left corner.
        height: cap height in pixels.
        color: RGB of the ink.

    Returns:
        ``image``.
    """
    font = _font(height)
    left = font.getbbox(text, mode="1", anchor="ls")[0]
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "1"
    draw.text((x - left, y + _cap_height(font)), text, fill=tuple(int(c) for c in color), font=font, anchor="ls")
    image[...] = np.asarray(canvas)
    return image


def to_rgb(frames) -> np.ndarray:
    """float ``[B, T, C, H, W]`` -> float32 numpy ``[B, T, 3, H, W]`` (C=1 grey, C=2 -> (c0, c1, 0), C>3 first three)."""
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

    * a black header strip of height ``7 * u`` with the step number ``t`` (white, top-left) and
      ``label`` (yellow, right-aligned; e.g. ``"PROBE DECODER"``; drawn smaller if it does not
      fit beside the widest step number, clipped on the right if it still does not), both in
      Pillow's default font (:func:`draw_label`);
    * below it, one column per sequence ``b`` (left to right), each a stack of three tiles:
      truth (top), model (middle), signed error ``(model - truth + 1) / 2`` (bottom; grey
      127/128 where exact, PlaNet/Dreamer convention);
    * each tile is the frame upscaled ``u`` times (nearest neighbour) inside a ``border``-pixel
      frame, green ``(0, 255, 0)`` for context steps ``t < context`` and red
      ``(255, 0, 0)`` for imagined steps.

    So ``H' = 7u + 3 (u h + 2 border)`` and ``W' = B (u w + 2 border)``; 64x64 frames at the
    defaults give 14 + 3 * 132 = 410 by 132 B pixels. Channels: see :func:`to_rgb`.

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
    t_rgb, m_rgb = to_rgb(truth), to_rgb(model_frames)
    if t_rgb.shape != m_rgb.shape:
        raise ValueError(
            f"truth and model_frames must have the same shape, got {list(t_rgb.shape)} and {list(m_rgb.shape)}."
        )
    if upscale < 1 or border < 0:
        raise ValueError(f"upscale must be >= 1 and border >= 0, got upscale={upscale}, border={border}.")
    num_seq, steps, _, h, w = t_rgb.shape
    rows = np.stack([t_rgb, m_rgb, (m_rgb - t_rgb + 1.0) / 2.0])  # [3,B,T,3,h,w]
    rows = np.rint(np.clip(rows, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(2, 0, 4, 1, 5, 3)  # [T,3,h,B,w,3]
    tile_h, tile_w, head = upscale * h + 2 * border, upscale * w + 2 * border, HEADER_ROWS * upscale
    out = np.zeros((steps, head + 3 * tile_h, num_seq * tile_w, 3), dtype=np.uint8)  # [T,H',W',3]
    tiles = out[:, head:].reshape(steps, 3, tile_h, num_seq, tile_w, 3)  # a view
    tiles[:] = np.where((np.arange(steps) < context)[:, None], CONTEXT_COLOR, IMAGINED_COLOR)[:, None, None, None, None]
    for dy in range(upscale):  # nearest-neighbour upscaling by strided writes (no enlarged copies)
        for dx in range(upscale):
            ys = slice(border + dy, border + upscale * h, upscale)
            xs = slice(border + dx, border + upscale * w, upscale)
            tiles[:, :, ys, :, xs] = rows
    header = np.zeros((head, out.shape[2], 3), np.uint8)
    margin = max(upscale // 2, 1)
    text_height = head - 2 * margin
    if label:
        _draw_header_label(header, label, text_size(f"{steps - 1} ", text_height)[0] + 2 * margin, margin, text_height)
    for t in range(steps):
        out[t, :head] = header
        draw_label(out[t, :head], str(t), margin, margin, text_height, STEP_COLOR)
    return out


def _draw_header_label(header: np.ndarray, label: str, taken: int, margin: int, height: int) -> None:
    """Right-align ``label`` in uint8 ``[h, W, 3]`` ``header`` right of its first ``taken`` columns,
    at the largest cap height ``<= height`` that fits (clipped on the right at the smallest)."""
    room = header.shape[1] - taken - margin
    sizes = range(height, min(height, 5) - 1, -1)
    size = next((s for s in sizes if text_size(label, s)[0] <= room), sizes[-1])
    x = max(header.shape[1] - margin - text_size(label, size)[0], taken)
    draw_label(header, label, x, margin + (height - size) // 2, size, LABEL_COLOR)


def write_video(frames: np.ndarray, path: str | Path, fps: int = 10) -> Path:
    """Write uint8 ``[T, H, W, 3]`` frames to ``.mp4`` (imageio-ffmpeg, H.264) or ``.gif``.

    1, 2 or 4 channels are accepted too (grey; Two Rooms' (agent, walls) as (c0, c1, 0); RGBA).
    In a GIF, Pillow merges consecutive identical frames (adding their durations, so playback
    time is unchanged); open-loop grids never repeat a frame (the step number changes).

    An unwritable path or another ending is refused (ValueError, one sentence) before ffmpeg starts.
    mp4 frames are padded with black to even height/width (yuv420p needs it). If ffmpeg
    fails, a ``.gif`` with the same stem is written instead (with a warning).

    Returns:
        the path actually written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 2, 3, 4) or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}.")
    if frames.shape[-1] != 3:
        frames = to_rgb(frames.transpose(0, 3, 1, 2)[None].astype(np.float32))[0].transpose(0, 2, 3, 1)
        frames = frames.astype(np.uint8)
    writable_file(path, "video file", (".mp4", ".gif"))  # before ffmpeg: one sentence, not its stderr
    if path.suffix == ".mp4":
        pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
        try:
            params = ["-preset", "veryfast"]  # much faster than the default 'medium', similar size
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
    # Pillow's fast octree quantiser: much faster than imageio's default (median cut) for GIFs.
    images = [Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path
