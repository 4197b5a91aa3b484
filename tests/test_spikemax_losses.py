"""Spike-rate and spikemax losses: values on hand-worked examples, gradients against eqs. (11), (12), (14)."""

import math

import numpy as np
import pytest
import torch

from spikeforge.losses.spikemax import window_counts
from spikeforge.registry import LOSSES


def _spikes(seed: int, T: int = 12, B: int = 3, C: int = 4, rate: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, C, generator=g) < rate).double()


def _grad(loss_name: str, s: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    LOSSES.get(loss_name)(s, y, **kw).backward()
    return s.grad


def test_registered_names():
    for name in ("spike_rate", "spikemax", "spikemax_g", "spikemax_s"):
        assert callable(LOSSES.get(name))


def test_spike_rate_hand_worked():
    # T = 4, one sample, 2 classes; class 0 spikes twice (r = 0.5), class 1 once (r = 0.25); label 1
    s = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 0.0]]])
    loss = LOSSES.get("spike_rate")(s, torch.tensor([1]), true_rate=0.5, false_rate=0.1)
    assert loss.item() == pytest.approx((0.5 - 0.1) ** 2 + (0.25 - 0.5) ** 2)  # eq. (4)


def test_spike_rate_gradient_closed_form():
    s, y = _spikes(0), torch.tensor([0, 2, 3])
    g = _grad("spike_rate", s, y, true_rate=0.3, false_rate=0.05)
    T, B, C = s.shape
    r_hat = torch.full((B, C), 0.05, dtype=torch.float64)
    r_hat[torch.arange(B), y] = 0.3
    expected = 2 * (s.mean(0) - r_hat) / (T * B)
    torch.testing.assert_close(g, expected.expand(T, B, C))


def test_window_counts_hand_worked():
    s = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]).view(6, 1, 1)
    c = window_counts(s, 3).flatten().tolist()
    assert c == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]  # eq. (5), truncated at t < W


def _numpy_spikemax(s: np.ndarray, y: np.ndarray, W: int, eps: float):
    """Independent loop over t of eqs. (5), (6), (8) and the closed-form gradient eq. (11)."""
    T, B, C = s.shape
    loss, grad = 0.0, np.zeros_like(s)
    for b in range(B):
        for t in range(T):
            c = s[max(0, t - W + 1) : t + 1, b].sum(0) + eps
            p = c / c.sum()
            loss += -math.log(p[y[b]]) / (T * B)
            onehot = np.eye(C)[y[b]]
            grad[t, b] = (p - onehot) / (c / W) / B
    return loss, grad


def test_spikemax_value_and_eq11_gradient():
    s, y = _spikes(1), torch.tensor([1, 0, 3])
    loss_ref, grad_ref = _numpy_spikemax(s.numpy(), y.numpy(), W=5, eps=0.01)
    assert LOSSES.get("spikemax")(s, y, window=5, eps=0.01).item() == pytest.approx(loss_ref, rel=1e-12)
    torch.testing.assert_close(_grad("spikemax", s, y, window=5, eps=0.01), torch.from_numpy(grad_ref))


def test_spikemax_exact_gradient_is_the_derivative():
    s = torch.rand(8, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1
    y = torch.tensor([2, 0])
    torch.autograd.gradcheck(lambda x: LOSSES.get("spikemax")(x, y, window=3, gradient="exact"), (s.requires_grad_(),))


def test_spikemax_eq11_equals_T_times_exact_when_counts_are_steady():
    # with W = 1 each window holds one step, so eq. (11) is exactly T times the exact derivative of eq. (8)
    s, y = _spikes(3), torch.tensor([0, 1, 2])
    paper = _grad("spikemax", s, y, window=1)
    exact = _grad("spikemax", s, y, window=1, gradient="exact")
    torch.testing.assert_close(paper, s.shape[0] * exact)


def test_spikemax_g_eq12_gradient():
    s, y = _spikes(4), torch.tensor([3, 3, 1])
    T, B, C = s.shape
    eps = 0.01
    c = s.sum(0) + eps
    p = c / c.sum(1, keepdim=True)
    onehot = torch.nn.functional.one_hot(y, C).double()
    expected = ((p - onehot) / (c / T) / B).expand(T, B, C)  # eq. (12)
    torch.testing.assert_close(_grad("spikemax_g", s, y, eps=eps), expected)
    assert LOSSES.get("spikemax_g")(s, y, eps=eps).item() == pytest.approx(-p[torch.arange(B), y].log().mean().item())
    # the exact derivative of the same loss is T times smaller (the released implementation's scale)
    torch.testing.assert_close(_grad("spikemax_g", s, y, eps=eps, gradient="exact"), expected / T)


def test_spikemax_s_eq14_gradient():
    s, y = _spikes(5), torch.tensor([0, 2, 1])
    T, B, C = s.shape
    ps = torch.softmax(s.sum(0), dim=1)  # eq. (13)
    expected = ((ps - torch.nn.functional.one_hot(y, C).double()) / B).expand(T, B, C)  # eq. (14)
    torch.testing.assert_close(_grad("spikemax_s", s, y), expected)


def test_silent_true_class_is_finite():
    s = torch.zeros(10, 2, 4)
    s[:, 0, 1] = 1.0
    y = torch.tensor([0, 3])
    for name, kw in (("spikemax", {"window": 4}), ("spikemax_g", {}), ("spikemax_s", {})):
        g = _grad(name, s.double(), y, **kw)
        assert torch.isfinite(g).all()
        assert (g[:, :, 0][:, 0] < 0).all()  # the silent true class is pushed to spike
    loss = LOSSES.get("spikemax_g")(s, y, eps=0.01)
    assert loss.item() == pytest.approx(-(math.log(0.01 / 10.04) + math.log(0.25)) / 2, rel=1e-5)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("spikemax", {"window": 11}, "window W = 11"),
        ("spikemax", {"window": 0}, "window W = 0"),
        ("spikemax_g", {"eps": 0.0}, "eps"),
        ("spikemax", {"gradient": "slayer"}, "gradient must be"),
        ("spike_rate", {"true_rate": 1.5}, r"true_rate must be a spike rate in \[0, 1\]"),
        ("spike_rate", {"false_rate": -0.1}, r"false_rate"),
    ],
)
def test_bad_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LOSSES.get(name)(torch.zeros(10, 2, 4), torch.tensor([0, 1]), **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[T, B, classes\]"):
        LOSSES.get("spikemax")(torch.zeros(10, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets must lie in"):
        LOSSES.get("spikemax_s")(torch.zeros(10, 2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="B = 2"):
        LOSSES.get("spike_rate")(torch.zeros(10, 2, 4), torch.tensor([0, 1, 2]))
