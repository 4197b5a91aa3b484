"""ReL-PSP exact spike times (eqs. 2–4, 7, 8, hybrid paper) and STDBP gradients (its ref. [14])."""

import pytest
import torch
import torch.nn.functional as F

from spikeforge.functional.encoders import ttfs
from spikeforge.functional.relpsp import force_firing, min_pool2d, relpsp_conv2d, relpsp_spike_times



@pytest.fixture(autouse=True)
def float64():
    """Exactness checks run in double precision; the default dtype is restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def brute_force_times(t_in, weight, threshold=1.0, horizon=6.0, steps=600_001):
    """First grid point where V(t) = Σ w K(t − t_i) reaches ϑ, on a fine uniform grid (eqs. 2–4)."""
    grid = torch.linspace(0.0, horizon, steps)
    out = torch.full((t_in.shape[0], weight.shape[1]), torch.inf)
    for b in range(t_in.shape[0]):
        v = (grid[:, None] - t_in[b][None, :]).clamp_min(0) @ weight  # [steps, J]
        hit = v >= threshold
        first = hit.to(torch.uint8).argmax(0)
        out[b] = torch.where(hit.any(0), grid[first], torch.inf)
    return out


def test_ttfs_rejects_out_of_range_intensities():
    assert torch.equal(ttfs(torch.tensor([[0.0, 0.25, 1.0]])), torch.tensor([[1.0, 0.75, 0.0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ttfs(torch.tensor([[0.5, 1.5]]))


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_spike_times_match_brute_force_grid(impl):
    gen = torch.Generator().manual_seed(1)
    t_in = torch.rand(5, 7, generator=gen)
    weight = torch.randn(7, 6, generator=gen) * 0.8
    weight[:, 0] = -0.1  # never fires
    t_out, fired = relpsp_spike_times(t_in, weight, impl=impl)
    expected = brute_force_times(t_in, weight)
    assert torch.equal(fired, torch.isfinite(expected))
    assert not fired[:, 0].any()
    assert torch.allclose(t_out[fired], expected[fired], atol=2e-5)  # grid spacing 1e-5


def test_fast_solver_equals_reference_forward_and_gradient():
    gen = torch.Generator().manual_seed(2)
    t_in = torch.rand(16, 40, generator=gen)
    # mixed regimes: neurons that fire after all inputs, before some inputs, and never
    weight = torch.randn(40, 30, generator=gen) * 0.15 + torch.linspace(-0.02, 0.1, 30)
    results = []
    for impl in ("reference", "fast"):
        t = t_in.clone().requires_grad_()
        w = weight.clone().requires_grad_()
        t_out, fired = relpsp_spike_times(t, w, impl=impl)
        (t_out * torch.linspace(0.5, 1.5, 30)).sum().backward()
        results.append((t_out.detach(), fired, t.grad, w.grad))
    (t_ref, f_ref, gt_ref, gw_ref), (t_fast, f_fast, gt_fast, gw_fast) = results
    assert torch.equal(f_ref, f_fast)
    assert 0 < f_ref.float().mean() < 1
    early = f_ref & (t_ref < t_in.max(1, keepdim=True).values)
    assert early.any(), "the check needs neurons that fire before their last input"
    assert torch.allclose(t_ref, t_fast, atol=1e-10)
    assert torch.allclose(gt_ref, gt_fast, atol=1e-10)
    assert torch.allclose(gw_ref, gw_fast, atol=1e-10)


def test_stdbp_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(3)
    t_in = torch.rand(3, 8, generator=gen)
    weight = torch.randn(8, 5, generator=gen) * 0.5 + 0.3
    t = t_in.clone().requires_grad_()
    w = weight.clone().requires_grad_()
    t_out, fired = relpsp_spike_times(t, w, min_denominator=1e-6)
    eps = 1e-6
    checked = 0
    for b in range(3):
        for j in range(5):
            if not fired[b, j]:
                continue
            g_t, g_w = torch.autograd.grad(t_out[b, j], (t, w), retain_graph=True)
            for i in range(8):
                for which, base, grad in (("w", weight, g_w[i, j]), ("t", t_in, g_t[b, i])):
                    plus, minus = base.clone(), base.clone()
                    idx = (i, j) if which == "w" else (b, i)
                    plus[idx] += eps
                    minus[idx] -= eps
                    args_p = (t_in, plus) if which == "w" else (plus, weight)
                    args_m = (t_in, minus) if which == "w" else (minus, weight)
                    numeric = (relpsp_spike_times(*args_p)[0][b, j] - relpsp_spike_times(*args_m)[0][b, j]) / (2 * eps)
                    assert abs(numeric - grad) < 1e-5, (which, b, i, j, float(numeric), float(grad))
                    checked += 1
    assert checked >= 40


def test_stdbp_formula_on_hand_example():
    # inputs at 0.2 and 0.5, weights 2 and 1, ϑ = 1: on [0.2, 0.5] V = 2(t − 0.2) rises only to 0.6;
    # after 0.5, V = 3t − 0.9 reaches 1 at t = 1.9 / 3 with both inputs causal.
    t = torch.tensor([[0.2, 0.5]], requires_grad=True)
    w = torch.tensor([[2.0], [1.0]], requires_grad=True)
    t_out, fired = relpsp_spike_times(t, w, impl="reference")
    assert fired.all() and torch.isclose(t_out[0, 0], torch.tensor(1.9 / 3))
    t_out.sum().backward()
    # ∂t/∂w_i = (t_i − t)/Σw, ∂t/∂t_i = w_i/Σw (spec notes)
    assert torch.allclose(w.grad[:, 0], (torch.tensor([0.2, 0.5]) - 1.9 / 3) / 3)
    assert torch.allclose(t.grad[0], torch.tensor([2.0, 1.0]) / 3)


def test_denominator_is_clipped():
    # weights 1.0 and −0.99 leave a causal weight sum of 0.01: gradients are bounded by |t_i − t| / min_denominator
    t = torch.tensor([[0.0, 0.1]], requires_grad=True)
    w = torch.tensor([[1.0], [-0.99]], requires_grad=True)
    t_out, fired = relpsp_spike_times(t, w, min_denominator=0.1)
    t_out.sum().backward()
    assert fired.all()
    assert torch.allclose(w.grad[:, 0], (t.detach()[0] - t_out.detach()[0, 0]) / 0.1)


def test_silent_neurons_get_latest_time_and_a_surrogate_gradient():
    t = torch.tensor([[0.1, 0.4], [0.3, 0.2]], requires_grad=True)
    w = torch.tensor([[2.0, -1.0], [1.0, 0.5]], requires_grad=True)  # neuron 1: Σw = −0.5, never fires
    t_out, fired = relpsp_spike_times(t, w)
    assert fired[:, 0].all() and not fired[:, 1].any()
    latest = torch.maximum(t_out[:, 0], t.max(1).values)
    assert torch.equal(t_out[:, 1], latest.detach())
    assert torch.isfinite(t_out).all()
    t_out[:, 1].sum().backward()
    assert torch.isfinite(w.grad).all()
    assert (w.grad[:, 1] < 0).all(), "the surrogate must push a silent neuron's weights up (earlier spike)"


def test_eq7_first_layer_fires_at_two_minus_u():
    # weights sum to 1, u = Σ w I = 0.54 < 1: the spike comes after every input, at 2 − u (eqs. 5–7)
    intensity = torch.tensor([[0.6, 0.2, 0.9]])
    w = torch.tensor([[0.5], [0.3], [0.2]])
    t_out, _ = relpsp_spike_times(ttfs(intensity), w)
    assert torch.isclose(t_out[0, 0], torch.tensor(2.0 - 0.54))


def test_force_firing_is_two_minus_relu_u():
    # u = −0.3: the neuron fires at 2.3 > 2, and FF(t) = min(t, 2) = 2 − ReLU(u) (eq. 8)
    intensity = torch.tensor([[0.1, 0.8]])
    w = torch.tensor([[1.5], [-0.5]])
    u = intensity @ w
    t = ttfs(intensity).requires_grad_()
    t_out, _ = relpsp_spike_times(t, w)
    assert torch.isclose(t_out[0, 0], 2.0 - u[0, 0])
    forced = force_firing(t_out, latest=2.0)
    assert torch.isclose(forced[0, 0], 2.0 - torch.relu(u[0, 0]))
    forced.sum().backward()
    assert torch.equal(t.grad, torch.zeros_like(t)), "a force-fired time is constant"
    assert torch.equal(force_firing(torch.tensor([2.5, 2.9, 3.4]), latest=3.0), torch.tensor([2.5, 2.9, 3.0]))


def test_min_pool_takes_first_spike_and_mirrors_max_pool():
    t = torch.tensor([[[[1.5, 1.2, 1.9, 1.1], [1.3, 1.8, 1.4, 1.6]]]])
    assert torch.equal(min_pool2d(t, 2), torch.tensor([[[[1.2, 1.1]]]]))
    h = torch.rand(2, 3, 4, 6)
    assert torch.allclose(min_pool2d(2.0 - h, 2), 2.0 - F.max_pool2d(h, 2))


def test_conv_layer_equals_ann_conv_including_padding():
    # non-negative weights summing to 1 per output channel: every neuron fires after its inputs, t = 2 − u exactly
    gen = torch.Generator().manual_seed(4)
    w = torch.rand(4, 2, 3, 3, generator=gen)
    w = w / w.flatten(1).sum(1).view(-1, 1, 1, 1)
    intensity = torch.rand(2, 2, 5, 5, generator=gen)
    u = F.conv2d(intensity, w, padding=1)
    t_out, fired = relpsp_conv2d(ttfs(intensity), w, padding=1, pad_time=1.0)
    assert fired.all()
    assert torch.allclose(t_out, 2.0 - u)
    t_ref, _ = relpsp_conv2d(ttfs(intensity), w, padding=1, pad_time=1.0, impl="reference")
    assert torch.allclose(t_out, t_ref)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="weights"):
        relpsp_spike_times(torch.rand(2, 3), torch.rand(4, 5))
    with pytest.raises(ValueError, match="NaN or inf"):
        relpsp_spike_times(torch.tensor([[torch.nan, 0.0]]), torch.rand(2, 1))
    with pytest.raises(ValueError, match="impl"):
        relpsp_spike_times(torch.rand(2, 3), torch.rand(3, 1), impl="grid")
