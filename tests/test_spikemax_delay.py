"""Axonal delays: exact integer shifts, linear interpolation, gradient in d, and learning a known delay."""

import pytest
import torch

from spikeforge.layers.delay import AxonalDelay, fractional_shift


def test_integer_and_fractional_shift_hand_worked():
    x = torch.zeros(8, 1, 2)
    x[1, 0, 0] = 1.0
    x[0, 0, 1] = 1.0
    y = fractional_shift(x, torch.tensor([3.0, 2.5]))
    assert y[:, 0, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]  # spike at 1 moved to 4
    assert y[:, 0, 1].tolist() == [0, 0, 0.5, 0.5, 0, 0, 0, 0]  # spike at 0 split between 2 and 3


def test_per_channel_delay_on_conv_maps():
    x = torch.rand(6, 2, 3, 4, 4)
    y = fractional_shift(x, torch.tensor([0.0, 1.0, 2.0]).view(3, 1, 1))
    torch.testing.assert_close(y[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(y[1:, :, 1], x[:-1, :, 1])
    torch.testing.assert_close(y[2:, :, 2], x[:-2, :, 2])
    assert (y[:2, :, 2] == 0).all()


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.tensor([0.3, 1.6, 2.2], dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(fractional_shift, (x, d))


def test_learns_known_delays():
    """Gaussian bumps at t = 12 must be moved onto targets at t = 12 + d*; the MSE minimum is d*."""
    t = torch.arange(48, dtype=torch.float32).view(48, 1, 1)
    best = torch.tensor([2.5, 6.3, 0.7])
    x = torch.exp(-((t - 12.0) ** 2) / 18.0).expand(48, 1, 3)
    target = torch.exp(-((t - 12.0 - best) ** 2) / 18.0)
    layer = AxonalDelay(3, init=3.0, max_delay=20.0)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        ((layer(x) - target) ** 2).sum().backward()
        opt.step()
        layer.constrain_()
    torch.testing.assert_close(layer.delay.detach(), best, atol=0.05, rtol=0)


def test_bad_delays():
    with pytest.raises(ValueError, match="≥ 0"):
        fractional_shift(torch.zeros(4, 1, 2), torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="init delay"):
        AxonalDelay(3, init=5.0, max_delay=2.0)
    with pytest.raises(ValueError, match=r"\[T, B, C, \.\.\.\]"):
        fractional_shift(torch.zeros(4, 2), torch.tensor([1.0]))
