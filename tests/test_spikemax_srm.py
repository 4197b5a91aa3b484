"""SRM neuron: impulse responses against ε(t) and ν(t) of §II-A, fused path equal to the reference loop."""

import math

import numpy as np
import pytest
import torch

from spikeforge.functional.srm import refractory_kernel, spike_response_kernel, srm_scan
from spikeforge.neurons.srm import SRM


def _eps(t, tau):
    return t / tau * math.exp(1 - t / tau) if t >= 0 else 0.0


@pytest.mark.parametrize("tau_s", [1.0, 5.0])
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_psp_impulse_response_is_epsilon(tau_s, impl):
    T, w = 30, 7.0  # below threshold: no spike, membrane is w·ε(t)
    current = torch.zeros(T, 1, 1, dtype=torch.float64)
    current[0] = w
    spikes, u = srm_scan(current, tau_s, 1.0, 10.0, impl=impl)
    expected = torch.tensor([w * _eps(n, tau_s) for n in range(T)], dtype=torch.float64)
    assert spikes.sum() == 0
    torch.testing.assert_close(u.flatten(), expected)
    torch.testing.assert_close(spike_response_kernel(torch.arange(T, dtype=torch.float64), tau_s), expected / w)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_membrane_after_spikes_follows_refractory_kernel(impl):
    """u(t) = Σ w·ε(t − t_in) + Σ_f ν(t − t_f), spikes where u > ϑ, computed directly from the formulas."""
    T, tau_s, tau_r, theta = 40, 5.0, 3.0, 10.0
    inputs = {0: 30.0, 12: 18.0, 13: 25.0}
    u_ref, s_ref, fired = np.zeros(T), np.zeros(T), []
    for n in range(T):
        u_ref[n] = sum(w * _eps(n - k, tau_s) for k, w in inputs.items() if k <= n)
        u_ref[n] += sum(-2 * theta * _eps(n - f, tau_r) for f in fired)
        if u_ref[n] > theta:
            fired.append(n)
            s_ref[n] = 1.0
    current = torch.zeros(T, 1, 1, dtype=torch.float64)
    for k, w in inputs.items():
        current[k] = w
    spikes, u = srm_scan(current, tau_s, tau_r, theta, impl=impl)
    assert len(fired) >= 3
    torch.testing.assert_close(spikes.flatten(), torch.from_numpy(s_ref))
    torch.testing.assert_close(u.flatten(), torch.from_numpy(u_ref))
    t = torch.arange(5, dtype=torch.float64)
    torch.testing.assert_close(refractory_kernel(t, tau_r, theta), torch.tensor([-2 * theta * _eps(n, tau_r) for n in range(5)], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(25, 3, 6), (12, 2, 3, 4, 4)])
def test_fused_equals_reference_forward_and_gradient(shape):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 12).requires_grad_(True)
    w_s, w_u = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    results = {}
    for impl in ("reference", "fused"):
        s, u = srm_scan(x, 2.0, 3.0, 10.0, impl=impl)
        (gx,) = torch.autograd.grad((s * w_s).sum() + (u * w_u).sum(), x)
        results[impl] = (s, u, gx)
    assert results["fused"][0].sum() > 10  # the comparison covers spikes and refractory periods
    for ref, fused in zip(results["reference"], results["fused"]):
        torch.testing.assert_close(fused, ref)


def test_module_and_bad_input():
    neuron = SRM(tau_s=1.0, tau_r=1.0)
    s, u = neuron(torch.rand(5, 2, 3) * 40)
    assert s.shape == u.shape == (5, 2, 3)
    with pytest.raises(ValueError, match="tau_s must be > 0"):
        srm_scan(torch.zeros(5, 2, 3), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"\[T, B, C, \.\.\.\]"):
        srm_scan(torch.zeros(5), 1.0, 1.0)
    with pytest.raises(ValueError, match="impl"):
        SRM(impl="cuda")
