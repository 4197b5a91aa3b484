"""The layout changes around oneDNN's convolutions: the same values as PyTorch's permute and pad, forward and gradient."""

import pytest
import torch
import torch.nn.functional as F

from spikeforge.functional import layout


def _reference_channels_last(x, reach):
    return F.pad(x.permute(1, 2, 0, 3), (0, 0, reach, 0))  # [B, C, reach + T, F]


@pytest.mark.parametrize("reach", [0, 12])
@pytest.mark.parametrize("shape", [(7, 3, 5, 4), (20, 2, 64, 40), (3, 1, 1, 9)])
def test_to_channels_last_equals_permute_and_pad_forward_and_backward(shape, reach):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    y = layout.to_channels_last(x, reach)
    ref = _reference_channels_last(x, reach)
    assert y.shape == ref.shape and y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, ref)
    g = torch.randn(ref.shape, dtype=torch.float64)
    assert torch.equal(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(ref, x, g)[0])


@pytest.mark.parametrize("channels_last", [True, False])
def test_to_time_major_equals_movedim_forward_and_backward(channels_last):
    torch.manual_seed(1)
    y = torch.randn(3, 6, 11, 5)
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    y.requires_grad_(True)
    out = layout.to_time_major(y)
    ref = y.movedim(2, 0)
    assert out.is_contiguous() and torch.equal(out, ref)
    g = torch.randn(ref.shape)
    assert torch.equal(torch.autograd.grad(out, y, g)[0], torch.autograd.grad(ref, y, g)[0])


def test_swap_inner_axes_reads_any_strides():
    src = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(3, 2, 4, 5).transpose(0, 1)  # not contiguous
    dst = torch.empty(2, 3, 5, 4)
    layout.swap_inner_axes(src, dst)
    assert torch.equal(dst, src.transpose(2, 3))


def test_swap_inner_axes_copies_other_dtypes_too():
    src = torch.randn(2, 3, 4, 5).to(torch.bfloat16)
    dst = torch.empty(2, 3, 5, 4, dtype=torch.bfloat16)
    layout.swap_inner_axes(src, dst)
    assert torch.equal(dst, src.transpose(2, 3))
