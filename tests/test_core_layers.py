import pytest
import torch

from spikeforge.layers import Flatten, Pool, Readout, RecurrentPool, SpikingConv, SpikingLinear
from spikeforge.losses.regularizer import activity_regularizer, layer_activity, regularizer_weights
from spikeforge.metrics.reduce import cumulative_logits, reduce_time
from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.neurons import LIF


def test_lif_inits_and_constraints():
    torch.manual_seed(0)
    lif = LIF(2000)
    assert lif.beta.dim() == 0 and abs(lif.beta.item() - 0.7) < 0.05
    assert abs(lif.threshold.mean().item() - 1.0) < 0.002 and abs(lif.threshold.std().item() - 0.01) < 0.002
    with torch.no_grad():
        lif.beta.fill_(1.3)
        lif.threshold[:5] = -1.0
    lif.constrain_()
    assert lif.beta.item() == 1.0 and lif.threshold.min().item() >= 0.0
    nlif = LIF(3, nlif=True)
    assert nlif.beta.item() == 1.0 and not isinstance(nlif.beta, torch.nn.Parameter)
    with pytest.raises(ValueError, match="NLIF"):
        LIF(3, nlif=True, input_scale="one_minus_beta")


def test_dense_layer_threshold_is_normalised_by_weight_norm():
    layer = SpikingLinear(2, 1, beta_init=1.0, threshold_init=1.0)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))  # ‖W‖² = 5
    x = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]], [[0.0, 0.0]]])  # I = 3, 1, 0
    spikes, membrane = layer.spikes_and_membrane(x)
    # U = 3, 4 (> 5? no), 4 → threshold b·‖W‖² = 5 is never crossed; U/(‖W‖²) − b < 0.
    assert spikes.sum().item() == 0 and membrane.flatten().tolist() == pytest.approx([3.0, 4.0, 4.0])
    with torch.no_grad():
        layer.neuron.threshold.fill_(0.7)  # threshold 3.5: crossed at step 1, reset by 3.5
    spikes, membrane = layer.spikes_and_membrane(x)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0]
    assert membrane.flatten().tolist() == pytest.approx([3.0, 4.0, 0.5])


def _manual_causal_conv1d(x, w, time_dilation, dilation):
    """Brute force: out[n, b, o, f] = Σ_{i,k,j} w[o,i,k,j]·x[n − (K−1−k)·dt, b, i, f + (j−1)·d]."""
    steps, batch, cin, freq = x.shape
    cout, _, kt, kf = w.shape
    out = torch.zeros(steps, batch, cout, freq, dtype=x.dtype)
    for n in range(steps):
        for k in range(kt):
            src = n - (kt - 1 - k) * time_dilation
            if src < 0:
                continue
            for j in range(kf):
                off = (j - kf // 2) * dilation
                lo, hi = max(0, -off), min(freq, freq - off)
                out[n, :, :, lo:hi] += torch.einsum("oi,bif->bof", w[:, :, k, j], x[src, :, :, lo + off : hi + off])
    return out


def test_conv_over_time_is_causal_and_dilated():
    torch.manual_seed(0)
    layer = SpikingConv(2, 3, 3, spatial_dims=1, time_kernel=4, dilation=3, time_dilation=2).double()
    x = torch.randn(12, 2, 2, 10, dtype=torch.float64)
    torch.testing.assert_close(layer.current(x), _manual_causal_conv1d(x, layer.weight.detach(), 2, 3))
    later = x.clone()
    later[7:] += 5.0
    assert torch.equal(layer(x)[:7], layer(later)[:7]), "output step n must not see inputs after n"


def test_channels_last_time_conv_matches_brute_force_forward_and_gradients():
    # the dense causal conv runs channels-last; forward and both gradients against the brute-force sums
    torch.manual_seed(0)
    layer = SpikingConv(3, 4, 3, spatial_dims=1, time_kernel=4, dilation=2, time_dilation=3, bias=True).double()
    x = torch.randn(15, 2, 3, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(15, 2, 4, 9, dtype=torch.float64)
    y = layer._causal_time_conv(x)
    assert y.is_contiguous() and y.shape == (15, 2, 4, 9)
    x_ref = x.detach().clone().requires_grad_()
    w_ref = layer.weight.detach().clone().requires_grad_()
    b_ref = layer.bias.detach().clone().requires_grad_()
    y_ref = _manual_causal_conv1d(x_ref, w_ref, 3, 2) + b_ref.view(-1, 1)
    torch.testing.assert_close(y, y_ref)
    got = torch.autograd.grad(y, [x, layer.weight, layer.bias], g)
    want = torch.autograd.grad(y_ref, [x_ref, w_ref, b_ref], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_conv3d_with_time_kernel_matches_time_taps():
    torch.manual_seed(0)
    layer = SpikingConv(1, 2, 3, spatial_dims=3, time_kernel=2, time_dilation=3).double()
    x = torch.randn(6, 1, 1, 4, 4, 4, dtype=torch.float64)
    w = layer.weight.detach()
    expected = torch.zeros(6, 1, 2, 4, 4, 4, dtype=torch.float64)
    for n in range(6):
        for k in range(2):
            src = n - (1 - k) * 3
            if src >= 0:
                expected[n] += torch.nn.functional.conv3d(x[src], w[:, :, k], padding=1)
    torch.testing.assert_close(layer.current(x), expected)


def test_conv_lateral_gram_is_channel_gram_of_kernels():
    layer = SpikingConv(2, 3, 3, spatial_dims=2, lateral=True)
    w = layer.weight.detach().flatten(1)
    x = torch.rand(5, 2, 2, 6, 6)
    spikes, membrane = layer.spikes_and_membrane(x)
    from spikeforge.functional.lif import lif_scan
    s_ref, u_ref = lif_scan(layer.current(x).detach(), layer.neuron.beta.detach(), layer.neuron.threshold.detach(),
                            (w * w).sum(1), w @ w.t(), impl="reference")
    assert torch.equal(spikes, s_ref)
    torch.testing.assert_close(membrane, u_ref)


def test_kws_shaped_model_has_about_0_13_m_parameters_and_trains():
    kw = dict(spatial_dims=1, time_kernel=4)
    model = torch.nn.Sequential(
        SpikingConv(1, 64, 3, **kw), SpikingConv(64, 64, 3, dilation=3, time_dilation=4, **kw),
        SpikingConv(64, 64, 3, dilation=9, time_dilation=16, **kw), Readout(64 * 40, 12))
    assert 125_000 < sum(p.numel() for p in model.parameters()) < 135_000
    x = torch.randn(20, 2, 1, 40)
    with SpikeRecorder(model) as rec:
        logits = reduce_time(model(x), "mean")
    assert logits.shape == (2, 12) and list(rec.rates()) == ["0", "1", "2"]
    reg = activity_regularizer(list(rec.spikes.values()), regularizer_weights(3, 0.1))
    (torch.nn.functional.cross_entropy(logits, torch.tensor([1, 2])) + reg).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_recurrent_pool_feeds_back_its_spikes():
    pool = RecurrentPool(1, 4, 3, spatial_dims=1)
    with torch.no_grad():
        pool.recurrent.copy_(torch.eye(4) * 0.5)
    x = torch.rand(6, 2, 1, 5)
    spikes, membrane = pool.spikes_and_membrane(x)
    w = pool.weight.detach().flatten(1)
    from spikeforge.functional.lif import lif_scan
    _, u_ref = lif_scan(pool.current(x).detach(), pool.neuron.beta.detach(), pool.neuron.threshold.detach(),
                        (w * w).sum(1), None, torch.eye(4) * 0.5, impl="reference")
    torch.testing.assert_close(membrane, u_ref)


def test_readout_modes():
    readout = Readout(3, 2)
    x = torch.rand(4, 5, 3)
    y = readout(x)
    torch.testing.assert_close(y, x @ readout.weight.t() + readout.bias)
    norm = Readout(3, 2, normalized=True)
    torch.testing.assert_close(norm(x), (x @ norm.weight.t()) / ((norm.weight ** 2).sum(1) + 1e-8) + norm.bias)
    leaky = Readout(3, 2, integrate=0.5)
    z = x @ leaky.weight.t() + leaky.bias
    torch.testing.assert_close(leaky(x)[1], 0.5 * z[0] + z[1])


def test_reductions_and_accuracy_over_time():
    seq = torch.tensor([[[1.0, 0.0]], [[0.0, 3.0]], [[2.0, 0.0]]])
    assert reduce_time(seq, "mean").tolist() == [[1.0, 1.0]]
    assert reduce_time(seq, "max").tolist() == [[2.0, 3.0]]
    assert reduce_time(seq, "sum").tolist() == [[3.0, 3.0]]
    assert cumulative_logits(seq, "mean")[1].tolist() == [[0.5, 1.5]]
    assert cumulative_logits(seq, "max")[0].tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="reduction must be one of"):
        reduce_time(seq, "median")


def test_pooling_including_min_pool():
    x = torch.tensor([[1.0, 5.0], [3.0, 2.0]]).view(1, 1, 1, 2, 2)
    assert Pool("avg", 2)(x).item() == 2.75
    assert Pool("max", 2)(x).item() == 5.0
    assert Pool("min", 2)(x).item() == 1.0
    assert Flatten()(torch.zeros(3, 2, 4, 5)).shape == (3, 2, 20)


def test_regulariser_hand_worked():
    # One layer, K = 2 neurons, N = 2 steps, B = 1: three spikes → 1/(2·2·2)·3 = 0.375.
    s = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    assert layer_activity(s).item() == pytest.approx(0.375)
    assert activity_regularizer([s, s], [0.1, 0.2]).item() == pytest.approx(0.3 * 0.375)
    assert regularizer_weights(4, 0.1, "linear") == pytest.approx([0.025, 0.05, 0.075, 0.1])
    # dS²/dU = 2·S·sig′: no gradient where no spike.
    x = torch.tensor([-0.1, 0.1], requires_grad=True)
    from spikeforge.functional.surrogate import spike_fn
    layer_activity(spike_fn(x).view(1, 1, 2)).backward()
    assert x.grad[0].item() == 0.0 and x.grad[1].item() > 0.0


def test_regulariser_with_a_spike_budget_charges_only_the_rate_above_it_by_hand():
    # 3 spikes of 4 (rate 0.75, L_r = 0.375) against a budget of 0.5: w·(0.375 − 0.25); a layer under the budget costs 0.
    s = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    quiet = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]]])  # rate 0.25
    assert activity_regularizer([s, quiet], [0.1, 0.2], budget=0.5).item() == pytest.approx(0.1 * 0.125)
    assert activity_regularizer([s], [0.1], budget=0.0).item() == pytest.approx(activity_regularizer([s], [0.1]).item())
    # above the budget the gradient is the plain regulariser's, under it zero
    from spikeforge.functional.surrogate import spike_fn
    for budget, active in [(0.4, True), (0.6, False)]:
        x = torch.tensor([-0.1, 0.1], requires_grad=True)  # one spike of two: rate 0.5
        activity_regularizer([spike_fn(x).view(1, 1, 2)], [1.0], budget=budget).backward()
        plain = torch.tensor([-0.1, 0.1], requires_grad=True)
        layer_activity(spike_fn(plain).view(1, 1, 2)).backward()
        torch.testing.assert_close(x.grad, plain.grad if active else torch.zeros(2))
    with pytest.raises(ValueError, match=r"spike budget is a rate per layer in \[0, 1\)"):
        activity_regularizer([s], [0.1], budget=1.5)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(2, 3, dtype=torch.float32), r"time-major tensor \[T, B, 4\].*got shape \(2, 3\)"),
    (torch.zeros(5, 2, 4, dtype=torch.int64), "expected a floating tensor.*torch.int64"),
    (torch.full((5, 2, 4), float("nan")), "contains NaN or Inf"),
    (torch.zeros(5, 2, 3), r"expected \[T, B, 4\], got \(5, 2, 3\)"),
])
def test_bad_input_is_named(bad, match):
    with pytest.raises(ValueError, match=match):
        SpikingLinear(4, 2)(bad)


def test_batch_major_conv_input_is_rejected_with_layout():
    conv = SpikingConv(1, 2, 3, spatial_dims=1)
    with pytest.raises(ValueError, match=r"\[T, B, 1, S0\].*got shape \(2, 1, 40\)"):
        conv(torch.zeros(2, 1, 40))


def test_synaptic_filter_makes_a_current_based_lif():
    # I_syn[n] = exp(−1/τ)·I_syn[n−1] + I[n], then the LIF scan on I_syn.
    import math

    from spikeforge.functional.lif import lif_scan

    lif = LIF(3, tau_syn=4.0, beta_init=0.8, threshold_init=1.0)
    current = torch.rand(10, 2, 3)
    decay = math.exp(-0.25)
    filtered = torch.zeros_like(current)
    acc = torch.zeros(2, 3)
    for n in range(10):
        acc = decay * acc + current[n]
        filtered[n] = acc
    spikes, membrane = lif(current)
    s_ref, u_ref = lif_scan(filtered, lif.beta.detach(), lif.threshold.detach(), impl="reference")
    torch.testing.assert_close(membrane, u_ref)
    assert torch.equal(spikes, s_ref)
    with pytest.raises(ValueError, match="tau_syn must be > 0"):
        LIF(3, tau_syn=0.0)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_a_nan_or_inf_among_sparse_spikes_is_named(bad_value):
    x = (torch.rand(20, 4, 64, generator=torch.Generator().manual_seed(0)) < 0.05).float()
    x[7, 2, 33] = bad_value  # the event path checks the compressed entries only: this one is among them
    with pytest.raises(ValueError, match=r"SpikingLinear input: input \[T, B, 64\] of shape \(20, 4, 64\) contains NaN or Inf"):
        SpikingLinear(64, 40)(x)
    with pytest.raises(ValueError, match=r"Readout input: .* contains NaN or Inf"):
        Readout(64, 5)(x)
