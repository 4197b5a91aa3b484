"""Encoders: direct, rate, time-to-first-spike (hybrid §2.2), send-on-delta (s2net report §4.2–4.4)."""

from __future__ import annotations

import pytest
import torch

from spikeforge.functional.encoders import (
    direct,
    on_off_directions,
    rate,
    send_on_delta,
    send_on_delta_decode,
    ttfs,
    ttfs_raster,
)


def test_direct_repeats_the_input_as_a_current_over_time():
    x = torch.tensor([[0.5, -1.0], [2.0, 0.0]], requires_grad=True)
    out = direct(x, 3)
    assert out.shape == (3, 2, 2)
    assert torch.equal(out[0], x) and torch.equal(out[2], x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


@pytest.mark.parametrize("kind", ["bernoulli", "poisson"])
def test_rate_mean_matches_the_probability(kind):
    p = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]])
    spikes = rate(p, 4000, generator=torch.Generator().manual_seed(0), kind=kind)
    assert spikes.shape == (4000, 1, 5)
    mean = spikes.mean(0)[0]
    assert torch.allclose(mean, p[0], atol=0.03)
    assert spikes[:, 0, 0].sum() == 0  # probability 0 never fires


def test_rate_bernoulli_is_binary_with_variance_p_one_minus_p():
    p = torch.tensor([[0.2, 0.5, 0.9]])
    spikes = rate(p, 4000, generator=torch.Generator().manual_seed(1))
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(spikes.var(0)[0], p[0] * (1 - p[0]), atol=0.02)


def test_rate_poisson_counts_have_variance_equal_to_the_rate():
    p = torch.tensor([[0.2, 0.5, 0.9]])
    spikes = rate(p, 4000, generator=torch.Generator().manual_seed(2), kind="poisson")
    assert spikes.max() >= 2  # a step can carry several spikes
    assert torch.allclose(spikes.var(0)[0], p[0], atol=0.06)


def test_rate_is_reproducible_with_a_generator():
    p = torch.full((2, 3), 0.4)
    a = rate(p, 20, generator=torch.Generator().manual_seed(5))
    b = rate(p, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_ttfs_is_one_minus_intensity():
    x = torch.tensor([[0.0, 0.25, 1.0]])
    assert torch.allclose(ttfs(x), torch.tensor([[1.0, 0.75, 0.0]]))


def test_ttfs_raster_puts_one_spike_at_the_rounded_time():
    x = torch.tensor([[0.0, 0.25, 1.0]])
    raster = ttfs_raster(x, 5)  # t = 1, 0.75, 0 → steps 4, 3, 0
    assert raster.shape == (5, 1, 3)
    assert torch.equal(raster.sum(0), torch.ones(1, 3))
    assert torch.equal(raster.argmax(0), torch.tensor([[4, 3, 0]]))


def test_send_on_delta_hand_worked_on_off_example():
    x = torch.tensor([0.5, 1.2, 2.9, 1.4, -0.2], dtype=torch.float64).view(5, 1, 1)
    w = on_off_directions(1, 1.0, dtype=torch.float64)
    spikes = send_on_delta(x, w)
    # reference 0 → 0 → 1 → 2 → 2 → 0: ON at steps 1, 2; two OFF spikes at step 4
    assert torch.equal(spikes[:, 0, 0], torch.tensor([0, 1, 1, 0, 0], dtype=torch.float64))
    assert torch.equal(spikes[:, 0, 1], torch.tensor([0, 0, 0, 0, 2], dtype=torch.float64))
    recon = send_on_delta_decode(spikes, w)
    assert torch.allclose(recon[:, 0, 0], torch.tensor([0, 1, 2, 2, 0], dtype=torch.float64))


def test_send_on_delta_reconstruction_stays_within_delta():
    g = torch.Generator().manual_seed(3)
    t = torch.linspace(0, 6.28, 200, dtype=torch.float64).view(200, 1, 1)
    x = torch.sin(t * torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64)) * 2.0
    x = x.expand(200, 4, 3) + 0.3 * torch.randn(200, 4, 3, generator=g, dtype=torch.float64)
    delta = 0.25
    w = on_off_directions(3, delta, dtype=torch.float64)
    spikes = send_on_delta(x, w)
    recon = send_on_delta_decode(spikes, w)
    assert (x - recon).abs().max() < delta
    assert spikes.sum() < x.numel()  # fewer events than samples


def test_multidimensional_send_on_delta_hand_worked():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.8], [0.0, -1.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.1], [1.0, -0.5]], dtype=torch.float64).view(2, 1, 2)
    spikes = send_on_delta(x, w)
    # step 0: levels (1.0, 1.1, 1.3125, -1.1) → neuron 2 fires, reference (0.8, 0.8), then none ≥ 1
    # step 1: error (0.2, −1.3) → neuron 3 fires (level 1.3), reference (0.8, −0.2)
    assert torch.equal(spikes[:, 0], torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64))
    recon = send_on_delta_decode(spikes, w)
    assert torch.allclose(recon[:, 0], torch.tensor([[0.8, 0.8], [0.8, -0.2]], dtype=torch.float64))


def test_multidimensional_guarantee_projection_error_below_threshold():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(12, 3, generator=g, dtype=torch.float64) * 0.3
    x = torch.cumsum(0.2 * torch.randn(100, 5, 3, generator=g, dtype=torch.float64), dim=0)
    spikes = send_on_delta(x, w)
    recon = send_on_delta_decode(spikes, w)
    # §4.4: after each step every neuron is below threshold, ⟨w_i, x − x_ref⟩ < ‖w_i‖²
    potential = (x - recon) @ w.T
    assert (potential < w.pow(2).sum(1)).all()
    assert spikes.sum() > 0


def _send_on_delta_if_network(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """IF neurons driven by ⟨w_i, ẋ⟩ with lateral weights −⟨w_j, w_i⟩ and threshold ‖w_i‖² (eqs. 4.2–4.3, §4.4)."""
    gram = w @ w.T
    u = torch.zeros(x.shape[1], w.shape[0], dtype=x.dtype)
    previous = torch.zeros_like(x[0])
    out = torch.zeros(x.shape[0], x.shape[1], w.shape[0], dtype=x.dtype)
    for n in range(x.shape[0]):
        u = u + (x[n] - previous) @ w.T  # input current w·ẋ
        previous = x[n]
        for b in range(x.shape[1]):
            while True:
                level = u[b] / gram.diagonal()
                i = int(level.argmax())
                if level[i] < 1.0:
                    break
                out[n, b, i] += 1
                u[b] = u[b] - gram[:, i]  # lateral connection −⟨w_j, w_i⟩, self-reset −‖w_i‖²
    return out


def test_send_on_delta_equals_the_if_neuron_network():
    g = torch.Generator().manual_seed(6)
    w = torch.randn(6, 2, generator=g, dtype=torch.float64) * 0.4
    x = torch.cumsum(0.3 * torch.randn(40, 3, 2, generator=g, dtype=torch.float64), dim=0)
    assert torch.equal(send_on_delta(x, w), _send_on_delta_if_network(x, w))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: direct(x, 4),
        lambda x: rate(x.clamp(0, 1), 4),
        lambda x: ttfs(x.clamp(0, 1)),
    ],
)
def test_static_encoders_reject_bad_input(call):
    with pytest.raises(ValueError, match="rank"):
        call(torch.rand(5))
    with pytest.raises(ValueError, match="dtype"):
        call(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        call(torch.tensor([[0.5, float("nan")]]))


def test_range_and_argument_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"\[0, 1\].*normalise"):
        ttfs(torch.tensor([[0.5, 1.5]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rate(torch.tensor([[-0.1, 0.5]]), 3)
    with pytest.raises(ValueError, match="kind"):
        rate(torch.rand(2, 3), 3, kind="gauss")
    with pytest.raises(ValueError, match="steps"):
        direct(torch.rand(2, 3), 0)


def test_send_on_delta_rejects_bad_input():
    w = on_off_directions(2, 0.1)
    with pytest.raises(ValueError, match=r"\[T, B, D\]"):
        send_on_delta(torch.rand(10, 2), w)
    with pytest.raises(ValueError, match="dtype"):
        send_on_delta(torch.ones(4, 1, 2, dtype=torch.int32), w)
    with pytest.raises(ValueError, match="NaN"):
        send_on_delta(torch.full((4, 1, 2), float("nan")), w)
    with pytest.raises(ValueError, match="D = 3"):
        send_on_delta(torch.rand(4, 1, 3), w)
    with pytest.raises(ValueError, match="non-zero"):
        send_on_delta(torch.rand(4, 1, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="n = 4"):
        send_on_delta_decode(torch.zeros(4, 1, 4), torch.ones(3, 2))
    with pytest.raises(ValueError, match="delta"):
        on_off_directions(2, 0.0)
