import itertools

import pytest
import torch

from spikeforge.functional.filters import leaky_integrate
from spikeforge.functional.lif import lif_scan


def test_hand_worked_lif_eq4_subtract_reset():
    # Low-activity paper eq. (4) with β = 0.5, b = 1, ‖W‖² = 2 (so the threshold is b·‖W‖² = 2):
    # U[0] = 1.5 → no spike; U[1] = 0.5·1.5 + 1.5 = 2.25 → spike, R = 2;
    # U[2] = 0.5·(2.25 − 2) + 0 = 0.125 → no spike; U[3] = 0.0625 + 2 = 2.0625 → spike.
    current = torch.tensor([1.5, 1.5, 0.0, 2.0]).view(4, 1, 1)
    spikes, membrane = lif_scan(current, 0.5, torch.tensor([1.0]), torch.tensor([2.0]), eps=0.0)
    assert membrane.flatten().tolist() == pytest.approx([1.5, 2.25, 0.125, 2.0625])
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_hand_worked_one_minus_beta_scaling_and_zero_reset():
    # Report eq. (5.1): U = β(U − R) + (1 − β)·I, here with a hard reset to zero, b = 1, no norm.
    current = torch.tensor([2.0, 2.0, 2.0]).view(3, 1, 1)
    spikes, membrane = lif_scan(current, 0.75, torch.tensor([1.0]), reset="zero", input_scale="one_minus_beta")
    # U0 = 0.5; U1 = 0.375 + 0.5 = 0.875; U2 = 0.65625 + 0.5 = 1.15625 → spike.
    assert membrane.flatten().tolist() == pytest.approx([0.5, 0.875, 1.15625])
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0]


def test_nlif_integrates_without_leak():
    current = torch.full((5, 1, 1), 0.3)
    _, membrane = lif_scan(current, 1.0, torch.tensor([10.0]))
    assert membrane.flatten().tolist() == pytest.approx([0.3, 0.6, 0.9, 1.2, 1.5])


def test_lateral_reset_uses_gram_matrix():
    # Report eq. (5.3): R = W·Wᵀ·S. Neuron 0 spikes at step 0 and resets neuron 1 by ⟨W0, W1⟩.
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    gram = w @ w.t()
    norm = (w * w).sum(1)
    current = torch.tensor([[5.0, 0.5], [0.0, 0.0]]).view(2, 1, 2)
    spikes, membrane = lif_scan(current, 1.0, torch.tensor([1.0, 1.0]), norm, gram, eps=0.0)
    assert spikes[0].flatten().tolist() == [1.0, 0.0]
    # U1 = 1·(U0 − G·S0) = [5 − 2, 0.5 − 1]
    assert membrane[1].flatten().tolist() == pytest.approx([3.0, -0.5])


def _case(impl, reset, input_scale, lateral, recurrent, norm_on, surrogate, spatial, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    steps, batch, channels = 16, 3, 4
    shape = (steps, batch, channels) + ((5,) if spatial else ())
    current = (torch.randn(shape, generator=g, dtype=dtype) * 1.5 + 0.6).requires_grad_()
    beta = torch.tensor(0.7, dtype=dtype, requires_grad=True)
    threshold = (torch.rand(channels, generator=g, dtype=dtype) * 0.5 + 0.5).requires_grad_()
    w = (torch.randn(channels, 6, generator=g, dtype=dtype) * 0.35).requires_grad_()
    v = (torch.randn(channels, channels, generator=g, dtype=dtype) * 0.3).requires_grad_()
    norm = (w * w).sum(1) if norm_on else None
    gram = w @ w.t() if lateral else None
    spikes, membrane = lif_scan(current, beta, threshold, norm, gram, v if recurrent else None,
                                reset=reset, input_scale=input_scale, surrogate=surrogate, scale=4.0, impl=impl)
    probe_s = torch.randn(shape, generator=g, dtype=dtype)
    probe_u = torch.randn(shape, generator=g, dtype=dtype)
    loss = (spikes * probe_s).sum() + 0.1 * (membrane * probe_u).sum()
    params = [current, beta, threshold, w] + ([v] if recurrent else [])
    return spikes.detach(), membrane.detach(), torch.autograd.grad(loss, params, allow_unused=True)


CASES = [
    c for c in itertools.product(["subtract", "zero", "none"], ["none", "one_minus_beta"], [False, True], [False, True],
                                 [False, True], ["sigmoid", "arctan"], [False, True])
    if not (c[2] and (c[0] != "subtract" or not c[4]))
] + [("subtract", "none", lat, False, True, s, True) for s in ("fast_sigmoid", "triangle", "sigmoid_unscaled") for lat in (False, True)]


@pytest.mark.parametrize("impl", ["fused", "fused_torch"])
@pytest.mark.parametrize("reset,input_scale,lateral,recurrent,norm_on,surrogate,spatial", CASES)
def test_fused_equals_reference_forward_and_gradients(impl, reset, input_scale, lateral, recurrent, norm_on, surrogate, spatial):
    ref = _case("reference", reset, input_scale, lateral, recurrent, norm_on, surrogate, spatial)
    fused = _case(impl, reset, input_scale, lateral, recurrent, norm_on, surrogate, spatial)
    assert 0.02 < ref[0].mean() < 0.98, "the case must actually spike and reset"
    assert torch.equal(ref[0], fused[0])
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-12, atol=1e-12)
    uses_w = norm_on or lateral
    for i, (g_ref, g_fused) in enumerate(zip(ref[2], fused[2])):
        if i == 3 and not uses_w:  # W only enters through ‖W‖² and W·Wᵀ
            assert g_ref is None and g_fused is None
            continue
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("impl", ["fused", "fused_torch"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("lateral", [False, True])
def test_fused_equals_reference_in_float32_to_1e5(impl, reset, lateral):
    if lateral and reset == "zero":
        pytest.skip("a lateral reset is subtractive by definition")
    ref = _case("reference", reset, "none", lateral, False, True, "sigmoid", True, dtype=torch.float32, seed=3)
    fused = _case(impl, reset, "none", lateral, False, True, "sigmoid", True, dtype=torch.float32, seed=3)
    assert torch.equal(ref[0], fused[0])
    for g_ref, g_fused in zip(ref[2], fused[2]):
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("surrogate", ["sigmoid", "sigmoid_unscaled", "fast_sigmoid", "triangle", "arctan"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_beta_and_threshold_give_the_same_input_gradient(reset, surrogate, dtype):
    # With β and b fixed the compiled backward skips their partial sums: the input gradient must keep its bits
    # (same arithmetic) and match the reference.
    g = torch.Generator().manual_seed(5)
    current = torch.randn(40, 3, 64, generator=g, dtype=dtype) * 1.5 + 0.6
    threshold = torch.rand(64, generator=g, dtype=dtype) * 0.5 + 0.5
    probe = torch.randn(current.shape, generator=g, dtype=dtype)
    grads = {}
    for impl, learn in (("fused", True), ("fused", False), ("reference", False)):
        cur = current.clone().requires_grad_()
        beta = torch.tensor(0.7, dtype=dtype, requires_grad=learn)
        spikes, _ = lif_scan(cur, beta, threshold.clone().requires_grad_(learn), reset=reset, surrogate=surrogate, scale=2.0,
                             impl=impl)
        grads[impl, learn] = torch.autograd.grad((spikes * probe).sum(), cur)[0]
    assert torch.equal(grads["fused", True], grads["fused", False])
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(grads["fused", False], grads["reference", False], rtol=tol, atol=tol)
    assert grads["fused", False].abs().max() > 0.1


def test_streaming_in_chunks_equals_one_pass():
    g = torch.Generator().manual_seed(0)
    current = torch.randn(20, 2, 3, generator=g) + 0.5
    beta, threshold, norm = torch.tensor(0.8), torch.ones(3), torch.full((3,), 0.5)
    s_all, u_all = lif_scan(current, beta, threshold, norm)
    s1, u1 = lif_scan(current[:7], beta, threshold, norm)
    s2, u2 = lif_scan(current[7:], beta, threshold, norm, initial=(u1[-1], s1[-1]))
    assert torch.equal(torch.cat([s1, s2]), s_all)
    torch.testing.assert_close(torch.cat([u1, u2]), u_all)


def test_bad_parameter_shapes_are_named():
    current = torch.zeros(4, 2, 3)
    with pytest.raises(ValueError, match=r"threshold must have shape \(3,\)"):
        lif_scan(current, 0.5, torch.ones(2))
    with pytest.raises(ValueError, match="beta must be one scalar"):
        lif_scan(current, torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="lateral reset.*reset='subtract'"):
        lif_scan(current, 0.5, torch.ones(3), gram=torch.eye(3), reset="zero")
    with pytest.raises(ValueError, match="reset must be one of"):
        lif_scan(current, 0.5, torch.ones(3), reset="soft")
    with pytest.raises(ValueError, match="time-major"):
        lif_scan(torch.zeros(4, 3), 0.5, torch.ones(3))
    with pytest.raises(ValueError, match="initial state"):
        lif_scan(current, 0.5, torch.ones(3), initial=(torch.zeros(2, 2), torch.zeros(2, 2)))


def test_compiled_cpu_kernels_are_available_here():
    # The fast path on the CPU: if numba is missing, `fused` silently becomes `fused_torch`.
    from spikeforge.functional import lif_cpu

    assert lif_cpu.available


def test_leaky_integrate_fused_equals_reference():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(30, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    a1 = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    a2 = a1.detach().clone().requires_grad_()
    probe = torch.randn(30, 2, 3, generator=g, dtype=torch.float64)
    y1 = leaky_integrate(x1, a1, impl="reference")
    y2 = leaky_integrate(x2, a2)
    torch.testing.assert_close(y2, y1)
    (y1 * probe).sum().backward()
    (y2 * probe).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(a2.grad, a1.grad)
    # impulse response is α^n
    impulse = torch.zeros(5, 1)
    impulse[0] = 1
    assert leaky_integrate(impulse, 0.5).flatten().tolist() == pytest.approx([1, 0.5, 0.25, 0.125, 0.0625])


def test_compiled_kernels_leave_torch_thread_count_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(6, 2, 3, requires_grad=True)
        spikes, _ = lif_scan(x, 0.5, torch.ones(3))
        spikes.sum().backward()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_vectorised_float32_exp_of_the_compiled_backward_is_accurate():
    import numpy as np
    from numba import njit

    from spikeforge.functional import lif_cpu

    @njit
    def run(y, out):
        for i in range(y.shape[0]):
            out[i] = lif_cpu._exp_nonpositive_f32(y[i])

    y = np.concatenate([-np.logspace(-8, 2.2, 20000), [0.0], -np.linspace(0, 90, 20000)]).astype(np.float32)
    out = np.empty_like(y)
    run(y, out)
    ref = np.exp(y.astype(np.float64))
    normal = ref > 1e-37
    assert np.max(np.abs(out[normal] - ref[normal]) / ref[normal]) < 2e-7
    assert np.all(out[~normal] < 2e-37)  # below exp(−87) it flushes to (almost) zero, as the surrogate allows


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_inference_without_the_membrane_gives_the_same_spikes(impl):
    current = torch.randn(40, 3, 5, generator=torch.Generator().manual_seed(4))
    threshold = torch.full((5,), 0.8, requires_grad=True)  # a parameter, as in a layer
    spikes, membrane = lif_scan(current, 0.7, threshold, impl=impl)
    with torch.no_grad():
        lean, none = lif_scan(current, 0.7, threshold, impl=impl, keep_membrane=False)
    assert none is None and torch.equal(lean, spikes) and 0 < float(spikes.detach().mean()) < 1
    # with a gradient needed the membrane is still stored (backward reads it), only not returned
    cur = current.clone().requires_grad_()
    kept, _ = lif_scan(cur, 0.7, threshold, impl=impl, keep_membrane=False)
    (g,) = torch.autograd.grad(kept.sum(), cur)
    (g_ref,) = torch.autograd.grad(lif_scan(cur, 0.7, threshold, impl=impl)[0].sum(), cur)
    torch.testing.assert_close(g, g_ref)


def test_consumed_current_becomes_the_membrane_with_the_same_gradients():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(30, 2, 6, generator=g)
    w = torch.randn(4, 6, generator=g, requires_grad=True)
    threshold = torch.full((4,), 0.5, requires_grad=True)
    beta = torch.tensor(0.8, requires_grad=True)
    probe_s, probe_u = torch.randn(30, 2, 4, generator=g), torch.randn(30, 2, 4, generator=g)
    results = []
    for consume in (False, True):
        current = x @ w.t()  # a fresh tensor that only the scan uses
        spikes, membrane = lif_scan(current, beta, threshold, consume_current=consume)
        assert (membrane.data_ptr() == current.data_ptr()) == consume  # the buffer was reused, or not
        loss = (spikes * probe_s).sum() + (membrane * probe_u).sum()
        results.append((spikes.detach(), membrane.detach(), *torch.autograd.grad(loss, (w, threshold, beta))))
    assert 0 < float(results[0][0].mean()) < 1
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_consumed_current_becomes_the_spikes_in_inference(reset):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 3, 8, 5, generator=g) + 0.3
    threshold = torch.full((8,), 0.5)
    expected, _ = lif_scan(x, 0.8, threshold, reset=reset, impl="reference")
    current = x.clone()  # a fresh tensor that only the scan uses
    with torch.no_grad():
        spikes, membrane = lif_scan(current, 0.8, threshold, reset=reset, keep_membrane=False, consume_current=True)
    assert membrane is None and spikes.data_ptr() == current.data_ptr()  # the spikes were written over the current
    assert 0 < float(expected.mean()) < 1
    torch.testing.assert_close(spikes, expected, rtol=0, atol=0)


def test_a_loss_on_the_membrane_alone_matches_the_reference():
    # the spikes then get no gradient at all (None): the compiled backward reads one zero row for them
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    threshold = torch.full((4,), 0.5, dtype=torch.float64, requires_grad=True)
    grads = []
    for impl in ("fused", "reference"):
        spikes, membrane = lif_scan(x, 0.8, threshold, impl=impl)
        assert 0 < float(spikes.detach().mean()) < 1
        grads.append(torch.autograd.grad((membrane * membrane).sum(), (x, threshold)))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
