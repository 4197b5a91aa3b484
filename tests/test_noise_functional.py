"""Noisy single-step LIF and its T-step conversion: eqs. (1)–(9), noise-based faster SNN training paper."""

import math

import pytest
import torch

from spikeforge.functional.noisy_lif import (
    lif_step,
    noisy_lif_scan,
    normalised_potential,
    residual_halfwidth,
    sample_unit_noise,
)
from spikeforge.functional.surrogate import surrogate_grad


def _weighted_grad(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(-1.0, 1.0, s.numel()).view_as(s)
    (g,) = torch.autograd.grad((s * weights).sum(), x)
    return g


def test_lif_step_hand_worked():
    # eq. (1): H = 0.5·V + I; eq. (2): S = Θ(H − 1); eq. (3): V′ = H·(1 − S)
    v = torch.tensor([[0.8, 0.4, 1.0]])
    i = torch.tensor([[0.7, 0.5, 0.5]])
    s, v_next = lif_step(i, v, 0.5, 1.0, "sigmoid", 4.0)
    assert s.tolist() == [[1.0, 0.0, 0.0]]  # H = 1.1, 0.7, 1.0 (1.0 is not > V_th)
    assert torch.allclose(v_next, torch.tensor([[0.0, 0.7, 1.0]]))


def test_lif_mode_three_steps_hand_worked():
    current = torch.tensor([0.6, 0.6, 0.6, 0.0]).view(4, 1, 1)
    s = noisy_lif_scan(current, None, mode="lif", impl="reference")
    # H: 0.6 → 0.9 → 1.05 (spike, V = 0) → 0.0
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("mode", ["ensemble", "lif"])
def test_fused_equals_reference_forward_and_gradient(mode):
    torch.manual_seed(0)
    current = (torch.randn(7, 3, 4, 5, 5) * 0.8 + 0.4).requires_grad_()
    unit = sample_unit_noise(current.shape, "gaussian")
    s_f = noisy_lif_scan(current, unit, mode=mode, impl="fused")
    s_r = noisy_lif_scan(current, unit, mode=mode, impl="reference")
    assert torch.equal(s_f, s_r)
    assert 0.05 < s_f.mean() < 0.95
    torch.testing.assert_close(_weighted_grad(s_f, current), _weighted_grad(s_r, current), rtol=1e-5, atol=1e-6)


def test_ensemble_is_eq5_with_scaled_unit_noise():
    # H = N_noise + I with N_noise = β + r·u ∈ [0, 1] (β = 0.5, r = 0.5)
    current = torch.full((1, 1, 3), 0.3)
    unit = torch.tensor([1.0, -1.0, 0.0]).view(1, 1, 3)
    s = noisy_lif_scan(current, unit, mode="ensemble")  # H = 1.3, 0.3, 0.8
    assert s.flatten().tolist() == [1.0, 0.0, 0.0]
    s_shifted = noisy_lif_scan(current + 0.45, unit, mode="ensemble")  # H = 1.75, 0.75, 1.25
    assert s_shifted.flatten().tolist() == [1.0, 0.0, 1.0]


def test_ensemble_surrogate_gradient_at_noisy_membrane():
    current = torch.tensor([0.3, 0.7, 1.2]).view(1, 1, 3).requires_grad_()
    unit = torch.tensor([0.2, -0.6, 0.0]).view(1, 1, 3)
    s = noisy_lif_scan(current, unit, mode="ensemble", surrogate="sigmoid", scale=4.0)
    (g,) = torch.autograd.grad(s.sum(), current)
    h = current.detach() + 0.5 + 0.5 * unit
    torch.testing.assert_close(g, surrogate_grad(h - 1.0, "sigmoid", 4.0))


def test_normalised_potential_hand_worked():
    # A = [0, 1, 2]: μ = 1, σ = √(2/3), Â = ±1.2247, 0; eq. (9) with α = 4, β = 0.5 → [0.25, 0.5, 0.75]
    a = torch.tensor([[0.0, 1.0, 2.0]])
    torch.testing.assert_close(normalised_potential(a, 4.0, 0.5), torch.tensor([[0.25, 0.5, 0.75]]))
    torch.testing.assert_close(normalised_potential(a, 2.0, 0.5), torch.tensor([[0.0, 0.5, 1.0]]))


def test_normalised_potential_statistics_per_layer_or_per_sample():
    torch.manual_seed(1)
    a = torch.randn(4, 6, 3, 3) * torch.tensor([1.0, 5.0, 0.1, 2.0]).view(4, 1, 1, 1) + 3.0
    n = normalised_potential(a, 4.0, 0.5, stats="batch")
    assert math.isclose(n.mean().item(), 0.5, abs_tol=1e-6)  # mean β over the layer
    assert math.isclose((n - 0.5).abs().max().item(), 0.25, rel_tol=1e-6)  # range (β − 1/α, β + 1/α)
    per = normalised_potential(a, 4.0, 0.5, stats="sample")
    torch.testing.assert_close(per.mean(dim=(1, 2, 3)), torch.full((4,), 0.5))
    torch.testing.assert_close((per - 0.5).abs().amax(dim=(1, 2, 3)), torch.full((4,), 0.25))


def _eqs_7_to_9_literal(a, alpha, beta, dims):
    mu = a.mean(dim=dims, keepdim=True)
    sigma = a.std(dim=dims, keepdim=True, unbiased=False)
    a_hat = (a - mu) / sigma  # eq. (8)
    return a_hat / (alpha * a_hat.abs().amax(dim=dims, keepdim=True)) + beta  # eq. (9)


@pytest.mark.parametrize("stats, dims", [("batch", (0, 1, 2)), ("sample", (1, 2))])
def test_normalised_potential_equals_the_literal_equations(stats, dims):
    torch.manual_seed(4)
    a = torch.rand(5, 7, 3).pow(3) * 2.0  # skewed, like λ·V(t−1) after resets
    torch.testing.assert_close(normalised_potential(a, 3.0, 0.4, stats=stats), _eqs_7_to_9_literal(a, 3.0, 0.4, dims))


def test_normalised_potential_constant_and_infinite_alpha_give_beta():
    assert torch.equal(normalised_potential(torch.zeros(2, 5), 4.0, 0.5), torch.full((2, 5), 0.5))
    assert torch.equal(normalised_potential(torch.randn(2, 5), math.inf, 0.3), torch.full((2, 5), 0.3))


def test_residual_noise_keeps_the_training_range():
    # eq. (6): N(λV) ∈ β ± 1/α plus N′ ∈ ±(r − 1/α) spans exactly β ± r
    for alpha in (2.0, 3.0, 4.0, 10.0):
        assert math.isclose(1 / alpha + residual_halfwidth(alpha, 0.5), 0.5)
    assert residual_halfwidth(2.0, 0.5) == 0.0  # §3.3: α = 2, no residual noise
    assert residual_halfwidth(math.inf, 0.5) == 0.5  # §3.3: α = ∞, only noise (step 2)


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_non_positive_alpha_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha must be > 0"):
        residual_halfwidth(alpha, 0.5)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        noisy_lif_scan(torch.zeros(2, 1, 3), None, mode="accumulate", alpha=alpha)


def test_alpha_too_small_for_the_noise_range_is_rejected():
    with pytest.raises(ValueError, match="alpha >= 1/spread = 2"):
        residual_halfwidth(1.0, 0.5)


def test_accumulate_two_steps_hand_worked():
    # step 1: V(0) = 0 → N(λV) = β; H = 0.5 + 0.25·u + I. Step 2: A = 0.5·V(1), eqs. (7)–(9).
    current = torch.tensor([[0.2, 0.4, 0.6, 0.7], [0.3, 0.3, 0.3, 0.3]]).view(2, 1, 4)
    unit = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, -1.0]]).view(2, 1, 4)
    s = noisy_lif_scan(current, unit, mode="accumulate", alpha=4.0)
    # H(1) = [0.7, 0.9, 1.1, 1.2] → S = [0, 0, 1, 1], V(1) = [0.7, 0.9, 0, 0]
    # A = [0.35, 0.45, 0, 0]: μ = 0.2, Â ∝ [0.15, 0.25, −0.2, −0.2] / σ, max|Â| ∝ 0.25
    # N = Â/(4·max|Â|) + 0.5 = [0.65, 0.75, 0.3, 0.3]; H(2) = N + 0.25·u + 0.3 = [1.2, 1.05, 0.6, 0.35]
    assert s[0].flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    assert s[1].flatten().tolist() == [1.0, 1.0, 0.0, 0.0]


def test_accumulate_with_infinite_alpha_is_step_2():
    torch.manual_seed(2)
    current = torch.randn(6, 4, 8) * 0.5 + 0.5
    unit = sample_unit_noise(current.shape, "gaussian")
    s3 = noisy_lif_scan(current, unit, mode="accumulate", alpha=math.inf)
    s2 = noisy_lif_scan(current, unit, mode="ensemble")
    assert torch.equal(s3, s2)


def test_accumulate_with_alpha_two_has_no_residual_noise():
    torch.manual_seed(3)
    current = torch.randn(6, 4, 8) * 0.5 + 0.5
    a = noisy_lif_scan(current, sample_unit_noise(current.shape, "gaussian"), mode="accumulate", alpha=2.0)
    b = noisy_lif_scan(current, sample_unit_noise(current.shape, "uniform"), mode="accumulate", alpha=2.0)
    assert torch.equal(a, b)
    c = noisy_lif_scan(current, sample_unit_noise(current.shape, "gaussian"), mode="accumulate", alpha=4.0)
    assert not torch.equal(a, c)


def test_accumulate_uses_the_previous_potential():
    # one unit below threshold every step: it fires only through the accumulated λ·V(t−1) term
    current = torch.tensor([[0.9, 0.1], [0.35, 0.35]]).view(2, 1, 2)
    s = noisy_lif_scan(current, None, mode="accumulate", alpha=2.0)
    # step 1: H = 0.5 + I = [1.4, 0.6] → S = [1, 0], V = [0, 0.6]; step 2: A = [0, 0.3] → N = [0, 1]
    assert s[0].flatten().tolist() == [1.0, 0.0]
    assert s[1].flatten().tolist() == [0.0, 1.0]
    assert noisy_lif_scan(current, None, mode="ensemble")[1].flatten().tolist() == [0.0, 0.0]


def test_unit_noise_distributions():
    g = torch.Generator().manual_seed(0)
    gauss = sample_unit_noise((200_000,), "gaussian", generator=g)
    uni = sample_unit_noise((200_000,), "uniform", generator=g)
    for u in (gauss, uni):
        assert u.min() >= -1.0 and u.max() <= 1.0 and abs(u.mean()) < 0.01
    assert abs(gauss.std() - 1 / 3) < 0.01
    assert abs(uni.std() - 1 / math.sqrt(3)) < 0.01
    assert sample_unit_noise((3,), "none") is None
    with pytest.raises(ValueError, match="noise must be one of"):
        sample_unit_noise((3,), "laplace")


def test_bad_steps_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        noisy_lif_scan(torch.zeros(0, 2, 3), None)
    with pytest.raises(ValueError, match=r"time-major \[T, B, C"):
        noisy_lif_scan(torch.zeros(2, 3), None)
    with pytest.raises(ValueError, match="unit_noise must have the shape"):
        noisy_lif_scan(torch.zeros(2, 1, 3), torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="mode must be one of"):
        noisy_lif_scan(torch.zeros(2, 1, 3), None, mode="average")
