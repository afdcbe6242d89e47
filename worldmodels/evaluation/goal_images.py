"""Goal images: reading one from a file, latent distances to it, and frames shown beside it."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image

from worldmodels.core.interface import WorldModel


def load_goal_image(path: str | Path, image_shape: tuple[int, int, int], resize: bool = False) -> torch.Tensor:
    """Read a goal image (PNG/JPG/..., or ``.npy``) as uint8 ``[C, H, W]`` matching ``image_shape``.

    Refuses, with one sentence each: a missing or unreadable file, NaN/inf values, a wrong number
    of channels, and a size different from the model's unless ``resize`` (then bilinear resize).
    16-bit images, grey or colour, are reduced to 8 bits by keeping the high byte (what Pillow
    does when it reads a 16-bit RGB PNG), so both kinds are accepted alike.
    """
    path = Path(path)
    c, h, w = image_shape
    if not path.is_file():
        raise FileNotFoundError(f"Goal image {str(path)!r} does not exist.")
    try:
        if path.suffix == ".npy":
            array = np.load(path)
        else:
            array = iio.imread(path)
    except Exception as err:  # imageio/numpy raise many types (and a backend list) for a bad file
        raise ValueError(
            f"Could not read goal image {str(path)!r}: it is not a readable image (PNG, JPG, ... or a .npy array)."
        ) from err
    array = np.asarray(array)
    if array.dtype == np.uint16:  # 16-bit grey PNG (Pillow already reduces 16-bit RGB to 8 bits)
        array = (array >> 8).astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"Goal image {str(path)!r} contains NaN or inf values.")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"Goal image {str(path)!r} is float with values outside [0, 1]; save it as uint8 or in [0, 1].")
        array = np.round(array * 255).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ValueError(f"Goal image {str(path)!r} has dtype {array.dtype}; expected 8- or 16-bit pixels (or float in [0, 1]).")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"Goal image {str(path)!r} has shape {array.shape}; expected an image [H, W, C].")
    if array.shape[0] == c and array.shape[-1] != c:  # channels-first .npy
        array = array.transpose(1, 2, 0)
    if c == 2 and array.shape[-1] == 3:  # Two Rooms: an RGB rendering holds (agent, walls, 0)
        array = array[..., :2]
    if array.shape[-1] != c:
        raise ValueError(
            f"Goal image {str(path)!r} has {array.shape[-1]} channel(s); the model observes {c}-channel images"
            + (" (save it as RGB without alpha)." if c == 3 else ".")
        )
    if array.shape[:2] != (h, w):
        if not resize:
            raise ValueError(
                f"Goal image {str(path)!r} is {array.shape[1]}x{array.shape[0]} but the model observes {w}x{h}; "
                "pass --resize to resize it."
            )
        channels = [np.asarray(Image.fromarray(array[..., i]).resize((w, h), Image.BILINEAR)) for i in range(c)]
        array = np.stack(channels, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


@torch.inference_mode()
def latent_distances(model: WorldModel, pixels: torch.Tensor, goal: torch.Tensor) -> dict:
    """Cosine distance and L2 distance between ``embed_goal`` of observations ``[N,C,H,W]`` and of the goal."""
    feats = model.embed_goal(pixels.to(model.device))
    goal_feat = model.embed_goal(goal[None].to(model.device)).expand_as(feats)
    cosine = torch.nn.functional.cosine_similarity(feats, goal_feat, dim=-1)
    return {"cosine_distance": (1 - cosine).cpu(), "l2": (feats - goal_feat).norm(dim=-1).cpu()}


def side_by_side(observations: torch.Tensor, goal: torch.Tensor, upscale: int = 3) -> np.ndarray:
    """Video frames: each observation ``[T,C,H,W]`` beside the goal ``[C,H,W]`` -> uint8 ``[T,H',W',3]``."""
    goal_frames = goal[None].expand_as(observations)
    gap = torch.full_like(observations[..., :2], 255)
    frames = torch.cat([observations, gap, goal_frames], dim=-1)  # [T,C,H,2W+2]
    if frames.shape[1] == 2:  # two-channel (Two Rooms): show as RG
        frames = torch.cat([frames, torch.zeros_like(frames[:, :1])], dim=1)
    frames = frames.repeat_interleave(upscale, -1).repeat_interleave(upscale, -2)
    return frames.permute(0, 2, 3, 1).cpu().numpy()
