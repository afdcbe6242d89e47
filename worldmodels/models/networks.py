"""Pixel encoder/decoder, observation-vector encoder and MLP shared by the RSSM world models.

The conv encoder/decoder are PlaNet's ``conv_ha`` (Hafner et al. 2019, ``planet/networks/conv_ha.py``),
the World Models architecture (Ha & Schmidhuber 2018) that DreamerV2 also uses:

* encoder: 4 convs, kernel 4, stride 2, no padding, channels ``depth * (1, 2, 4, 8)``, ReLU;
  64 -> 31 -> 14 -> 6 -> 2, flattened to ``depth * 32`` features (1024 at depth 32);
* decoder: dense to ``depth * 32`` (no activation), viewed as a 1x1 image, then transposed convs
  with kernels 5, 5, 6, 6, stride 2, channels ``depth * (4, 2, 1)`` then the image channels;
  1 -> 5 -> 13 -> 30 -> 64.

Both accept any leading batch shape (``[]``, ``[B]``, ``[B, T]``): all frames are flattened into one
conv call. Convolutions run in ``channels_last`` memory format, which oneDNN executes markedly
faster on CPU for these sizes (see ``benchmarks/bench_model.py``). The first transposed conv of the
decoder acts on a 1x1 image, which is exactly a matrix product with its weight; it is computed as
one (same parameters, same result, no im2col), and the last transposed conv as its sub-pixel
form (:func:`subpixel_deconv`). Together these make the decoder about 2x faster than stacked
``ConvTranspose2d`` layers on CPU (``benchmarks/bench_model.py``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE_SIZE = 64
"""The only image side ``conv_ha`` is defined for (PlaNet/Dreamer: 64x64)."""

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def activation_module(name: str, inplace: bool = False) -> nn.Module:
    """``"relu" | "elu" | "silu"`` -> a fresh activation module (ValueError otherwise).

    ``inplace`` (ReLU and ELU only; their backward reads the output) overwrites the input: used after
    convolutions, whose backward does not need their output, to avoid allocating (and page-faulting)
    another activation-sized tensor per layer.
    """
    if name not in _ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; allowed: {', '.join(_ACTIVATIONS)}.")
    return _ACTIVATIONS[name](inplace=inplace and name in ("relu", "elu"))


def _check_image_shape(image_shape: tuple[int, int, int], who: str) -> None:
    if len(image_shape) != 3 or image_shape[1] != IMAGE_SIZE or image_shape[2] != IMAGE_SIZE:
        raise ValueError(
            f"{who} (conv_ha) needs images of shape (C, {IMAGE_SIZE}, {IMAGE_SIZE}), got {tuple(image_shape)}; "
            f"render the environment at {IMAGE_SIZE}x{IMAGE_SIZE}."
        )


class ConvEncoder(nn.Module):
    """``conv_ha`` image encoder: float images ``[..., C, 64, 64]`` -> ``[..., 32 * depth]``.

    Args:
        image_shape: ``(C, H, W)``; H = W = 64 is required by the architecture.
        depth: base channel count (PlaNet: 32, DreamerV2: 48).
        activation: ``"relu"`` (PlaNet) or ``"elu"`` (DreamerV2).

    Shapes:
        input ``[*batch, C, 64, 64]`` float (already preprocessed), output ``[*batch, 32 * depth]``.

    Example:
        >>> enc = ConvEncoder((3, 64, 64), depth=32)
        >>> enc(torch.zeros(2, 5, 3, 64, 64)).shape
        torch.Size([2, 5, 1024])
    """

    def __init__(self, image_shape: tuple[int, int, int] = (3, 64, 64), depth: int = 32, activation: str = "relu"):
        super().__init__()
        _check_image_shape(image_shape, "ConvEncoder")
        self.image_shape = tuple(image_shape)
        channels = [image_shape[0], depth, 2 * depth, 4 * depth, 8 * depth]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2), activation_module(activation, inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.output_dim = 8 * depth * 2 * 2  # [8*depth, 2, 2] flattened
        self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[-3:]) != self.image_shape:
            raise ValueError(
                f"ConvEncoder expects images [..., {', '.join(map(str, self.image_shape))}], got {list(images.shape)}."
            )
        batch = images.shape[:-3]
        x = images.reshape(-1, *self.image_shape).contiguous(memory_format=torch.channels_last)  # [N,C,H,W]
        x = self.convs(x)  # [N, 8d, 2, 2]
        return x.reshape(*batch, self.output_dim)


class ConvDecoder(nn.Module):
    """``conv_ha`` image decoder: features ``[..., F]`` -> image means ``[..., C, 64, 64]``.

    Args:
        feature_dim: input size F.
        image_shape: ``(C, H, W)``; H = W = 64 is required by the architecture.
        depth: base channel count (PlaNet: 32).
        activation: nonlinearity between transposed convs.

    Shapes:
        input ``[*batch, F]``, output ``[*batch, C, 64, 64]`` (unbounded means; the caller shifts them).
    """

    def __init__(
        self, feature_dim: int, image_shape: tuple[int, int, int] = (3, 64, 64), depth: int = 32, activation: str = "relu"
    ):
        super().__init__()
        _check_image_shape(image_shape, "ConvDecoder")
        self.image_shape = tuple(image_shape)
        self.feature_dim = feature_dim
        self.dense = nn.Linear(feature_dim, 32 * depth)  # no activation (conv_ha)
        # First transposed conv (k=5, 1x1 -> 5x5) as a matmul over its own parameters.
        self.first = nn.ConvTranspose2d(32 * depth, 4 * depth, kernel_size=5, stride=2)
        self.act = activation_module(activation, inplace=True)
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(4 * depth, 2 * depth, kernel_size=5, stride=2),
            activation_module(activation, inplace=True),
            nn.ConvTranspose2d(2 * depth, depth, kernel_size=6, stride=2),
            activation_module(activation, inplace=True),
        )
        # Last transposed conv (k=6, few output channels) runs as its sub-pixel form, see subpixel_deconv.
        self.last = nn.ConvTranspose2d(depth, image_shape[0], kernel_size=6, stride=2)
        self.to(memory_format=torch.channels_last)

    def forward(self, features: Tensor) -> Tensor:
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"ConvDecoder expects features [..., {self.feature_dim}], got {list(features.shape)}.")
        batch = features.shape[:-1]
        f = features.reshape(-1, self.feature_dim)  # [N, F]
        w = self.first.weight  # [32d, 4d, 5, 5]
        d_hidden, c_out = w.shape[:2]
        # 1x1 input: out[n, o, i, j] = sum_c h[n, c] * w[c, o, i, j] + b[o], in (i, j, o) order (channels_last).
        w_first = w.permute(0, 2, 3, 1).reshape(d_hidden, -1)  # [32d, 25*4d]
        b_first = self.first.bias.repeat(25)  # [25*4d]
        n, p = f.shape[0], w_first.shape[1]
        # dense and first layer are both linear (no activation between them in conv_ha): for large N it is
        # cheaper to multiply the two weights once than to go through the 32d-wide hidden layer per frame.
        if n * (self.feature_dim * d_hidden + d_hidden * p - self.feature_dim * p) > self.feature_dim * d_hidden * p:
            combined = self.dense.weight.t() @ w_first  # [F, 25*4d]
            x = torch.addmm(torch.addmv(b_first, w_first.t(), self.dense.bias), f, combined)
        else:
            x = torch.addmm(b_first, self.dense(f), w_first)  # [N, 25*4d]
        x = self.act(x.view(-1, 5, 5, c_out)).permute(0, 3, 1, 2)  # [N, 4d, 5, 5] channels_last view
        x = self.deconvs(x)  # [N, d, 30, 30]
        x = subpixel_deconv(x, self.last.weight, self.last.bias)  # [N, C, 64, 64]
        return x.reshape(*batch, *self.image_shape)


def subpixel_deconv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``ConvTranspose2d(kernel 6, stride 2)`` computed as one stride-1 conv + pixel shuffle (same result).

    Output pixel ``(2m + p, 2n + q)`` of a stride-2 transposed conv only meets kernel taps
    ``(p + 2r, q + 2s)``, r, s in {0, 1, 2}: each of the 4 output phases is an ordinary 3x3 conv of the
    input (padding 2) with a flipped, sub-sampled kernel (Shi et al. 2016, "sub-pixel convolution").
    All 4 phases run as one conv with ``4 * C_out`` output channels, interleaved by ``pixel_shuffle``.
    oneDNN runs this markedly faster than a transposed conv with 3 output channels.

    Shapes:
        ``x [N, C_in, H, W]``, ``weight [C_in, C_out, 6, 6]`` -> ``[N, C_out, 2H + 4, 2W + 4]``.
    """
    c_in, c_out, k, _ = weight.shape
    if k != 6:
        raise ValueError(f"subpixel_deconv needs a 6x6 kernel, got {k}x{k}.")
    w = weight.view(c_in, c_out, 3, 2, 3, 2)  # [c, o, r, p, s, q]: tap (p + 2r, q + 2s)
    w = w.permute(1, 3, 5, 0, 2, 4).flip(-1, -2).reshape(4 * c_out, c_in, 3, 3)  # [(o, p, q), c, 2-r, 2-s]
    y = F.conv2d(x, w, bias.repeat_interleave(4), padding=2)  # [N, 4*C_out, H+2, W+2]
    return F.pixel_shuffle(y, 2)


class MLP(nn.Module):
    """Dense network ``in_dim -> [units] * layers -> out_dim`` with an activation between layers.

    Args:
        in_dim: input size.
        out_dim: output size (no activation on the output).
        units: hidden layer width (PlaNet heads: 300).
        layers: number of hidden layers (PlaNet heads: 3).
        activation: ``"relu"``, ``"elu"`` or ``"silu"``.

    Shapes:
        ``[*batch, in_dim] -> [*batch, out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, units: int, layers: int, activation: str = "relu"):
        super().__init__()
        modules: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            modules += [nn.Linear(width, units), activation_module(activation)]
            width = units
        modules.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*modules)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"MLP expects inputs [..., {self.in_dim}], got {list(x.shape)}.")
        return self.net(x)


class VectorEncoder(nn.Module):
    """MLP embedding of an observation vector (DreamerV2 ``Encoder._mlp``): ``layers`` dense layers of
    ``units``, each followed by the activation, so the embedding is the last hidden layer.

    The decoder of the vector is a plain :class:`MLP` ``F -> [units] * layers -> P`` (DreamerV2
    ``Decoder._mlp`` + its ``DistLayer`` mean, a unit-variance Gaussian: ``dist: mse``).

    Args:
        in_dim: P, size of the observation vector.
        units: width (DreamerV2: 400).
        layers: dense layers (DreamerV2: 4).
        activation: ``"relu"``, ``"elu"`` or ``"silu"``.

    Shapes:
        ``[*batch, P] -> [*batch, units]``.
    """

    def __init__(self, in_dim: int, units: int, layers: int, activation: str = "elu"):
        super().__init__()
        if in_dim < 1 or units < 1 or layers < 1:
            raise ValueError(f"VectorEncoder needs in_dim, units, layers >= 1, got {in_dim}, {units}, {layers}.")
        modules: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            modules += [nn.Linear(width, units), activation_module(activation)]
            width = units
        self.net = nn.Sequential(*modules)
        self.in_dim, self.output_dim = in_dim, units

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"VectorEncoder expects vectors [..., {self.in_dim}], got {list(x.shape)}.")
        return self.net(x)


__all__ = ["ConvEncoder", "ConvDecoder", "MLP", "VectorEncoder", "activation_module", "subpixel_deconv", "IMAGE_SIZE"]
