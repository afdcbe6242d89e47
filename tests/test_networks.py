"""Conv encoder/decoder and MLP: shapes over batch shapes, the conv_ha arithmetic, clear errors."""

import pytest
import torch
from torch import nn

from worldmodels.models.networks import MLP, ConvDecoder, ConvEncoder, activation_module, subpixel_deconv

BATCH_SHAPES = [(), (3,), (2, 4)]


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_encoder_shapes(batch):
    enc = ConvEncoder((3, 64, 64), depth=4)
    out = enc(torch.rand(*batch, 3, 64, 64))
    assert out.shape == (*batch, 4 * 32) and enc.output_dim == 128


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_decoder_shapes(batch):
    dec = ConvDecoder(10, (3, 64, 64), depth=4)
    assert dec(torch.randn(*batch, 10)).shape == (*batch, 3, 64, 64)


@pytest.mark.parametrize("batch", BATCH_SHAPES)
def test_mlp_shapes(batch):
    mlp = MLP(7, 2, units=5, layers=3)
    assert mlp(torch.randn(*batch, 7)).shape == (*batch, 2)
    assert sum(isinstance(m, nn.Linear) for m in mlp.modules()) == 4


def test_encoder_matches_plain_convs_and_paper_depth():
    torch.manual_seed(0)
    enc = ConvEncoder((3, 64, 64), depth=32)
    assert enc.output_dim == 1024  # conv_ha: 256 channels x 2 x 2
    x = torch.rand(2, 3, 64, 64)
    ref = x
    for layer in enc.convs:  # same math on default (contiguous) memory format
        ref = nn.functional.conv2d(ref, layer.weight.contiguous(), layer.bias, stride=2) if isinstance(layer, nn.Conv2d) else layer(ref)
    assert torch.allclose(enc(x), ref.flatten(1), atol=1e-5)


@pytest.mark.parametrize("frames", [5, 300])  # per-frame path and merged dense+first-layer path
def test_decoder_first_layer_equals_transposed_conv(frames):
    torch.manual_seed(0)
    dec = ConvDecoder(12, (3, 64, 64), depth=4)
    f = torch.randn(frames, 12)
    ref = torch.relu(dec.first(dec.dense(f)[:, :, None, None]))  # [5, 16, 5, 5] via ConvTranspose2d
    assert ref.shape[-2:] == (5, 5)
    ref = dec.last(dec.deconvs(ref))  # plain ConvTranspose2d for the last layer too
    assert torch.allclose(dec(f), ref, atol=1e-5)


def test_subpixel_deconv_equals_transposed_conv():
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(5, 3, kernel_size=6, stride=2)
    x = torch.randn(2, 5, 7, 7, requires_grad=True)
    out = subpixel_deconv(x, layer.weight, layer.bias)
    ref = layer(x)
    assert out.shape == ref.shape == (2, 3, 18, 18)
    assert torch.allclose(out, ref, atol=1e-5)
    g = torch.randn_like(ref)
    assert torch.allclose(torch.autograd.grad((out * g).sum(), layer.weight)[0], torch.autograd.grad((ref * g).sum(), layer.weight)[0], atol=1e-4)


def test_gradients_flow_through_encoder_and_decoder():
    torch.manual_seed(0)
    enc, dec = ConvEncoder(depth=4), ConvDecoder(128, depth=4)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    dec(enc(x)).square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*enc.parameters(), *dec.parameters()])


def test_clear_errors_for_wrong_sizes():
    with pytest.raises(ValueError, match="64"):
        ConvEncoder((3, 32, 32))
    with pytest.raises(ValueError, match="64"):
        ConvDecoder(10, (3, 96, 96))
    with pytest.raises(ValueError, match="ConvEncoder expects images"):
        ConvEncoder((3, 64, 64), depth=4)(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match="features"):
        ConvDecoder(10, depth=4)(torch.rand(2, 11))
    with pytest.raises(ValueError, match="allowed"):
        activation_module("gelu")
