import math

import pytest
import torch

from spikeforge.functional.surrogate import SURROGATES, spike_fn, surrogate_grad


def test_forward_is_strict_heaviside():
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0])
    assert spike_fn(x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_sigmoid_is_eq8_of_low_activity_paper():
    # Θ′(x) ≈ a·sig(ax)·sig(−ax); peak a/4 at 0.
    a = 10.0
    x = torch.tensor([0.0, 0.1, -0.3], dtype=torch.float64)
    expected = a * torch.sigmoid(a * x) * torch.sigmoid(-a * x)
    assert torch.allclose(surrogate_grad(x, "sigmoid", a), expected)
    assert surrogate_grad(torch.tensor(0.0), "sigmoid", a).item() == pytest.approx(a / 4)
    assert surrogate_grad(torch.tensor(0.0), "sigmoid_unscaled", a).item() == pytest.approx(0.25)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_backward_matches_finite_differences_of_its_smooth_primitive(name):
    # Each surrogate is the derivative of a smooth step; compare with central differences of it.
    a = 3.0
    primitives = {
        "sigmoid": lambda x: torch.sigmoid(a * x),
        "sigmoid_unscaled": lambda x: torch.sigmoid(a * x) / a,
        "fast_sigmoid": lambda x: x / (1 + a * x.abs()),
        "triangle": lambda x: torch.where(x < 0, 0.5 * torch.clamp(1 + a * x, min=0) ** 2, 1 - 0.5 * torch.clamp(1 - a * x, min=0) ** 2),
        "arctan": lambda x: torch.atan(math.pi / 2 * a * x) / math.pi + 0.5,
    }
    x = torch.linspace(-200, 200, 4001, dtype=torch.float64)
    x = x[(x * a).abs().sub(1).abs() > 1e-3]  # avoid the triangle's kinks
    h = 1e-6
    fd = (primitives[name](x + h) - primitives[name](x - h)) / (2 * h)
    xg = x.clone().requires_grad_()
    spike_fn(xg, name, a).sum().backward()
    assert torch.isfinite(xg.grad).all()
    assert torch.allclose(xg.grad, fd, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_no_overflow_for_huge_inputs(name):
    x = torch.tensor([-1e30, -1e4, 1e4, 1e30], requires_grad=True)
    spike_fn(x, name, 100.0).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_unknown_surrogate_names_the_choices():
    with pytest.raises(ValueError, match="unknown surrogate 'sigmod'.*sigmoid"):
        spike_fn(torch.zeros(2), "sigmod")
    with pytest.raises(ValueError, match="scale must be > 0"):
        spike_fn(torch.zeros(2), "sigmoid", 0.0)
