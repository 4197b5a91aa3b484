"""The stateful step interface equals the whole-sequence forward, layer by layer and for the KWS net."""

import pytest
import torch

from spikeforge.layers import Flatten, Pool, Readout, RecurrentPool, SpikingConv, SpikingLinear
from spikeforge.layers.delay import AxonalDelay
from spikeforge.models.kws import kws_dilated
from spikeforge.models.shorthand import parse_shorthand
from spikeforge.neurons.srm import SRM


def _stream(module, x):
    state = module.init_state(x.shape[1])
    out = []
    for t in range(x.shape[0]):
        y, state = module.step(x[t], state)
        out.append(y)
    return torch.stack(out)


def _spiky(*shape, p=0.4):
    return (torch.rand(*shape) < p).double()


CASES = {
    "linear": (lambda: SpikingLinear(6, 5, threshold_init=0.3), (20, 3, 6)),
    "linear_lateral_zero_syn": (lambda: SpikingLinear(6, 5, lateral=True, tau_syn=3.0, threshold_init=0.2), (20, 3, 6)),
    "linear_reset_zero_scaled": (lambda: SpikingLinear(6, 5, reset="zero", input_scale="one_minus_beta", threshold_init=0.1), (20, 3, 6)),
    "linear_reference": (lambda: SpikingLinear(6, 5, impl="reference", nlif=True), (20, 3, 6)),
    "conv1d_dilated_time": (lambda: SpikingConv(2, 4, 3, spatial_dims=1, time_kernel=4, time_dilation=3, dilation=2, threshold_init=0.2), (30, 2, 2, 9)),
    "conv2d_time_stride": (lambda: SpikingConv(2, 3, 3, spatial_dims=2, time_kernel=3, time_dilation=2, stride=2, padding=1, bias=True), (15, 2, 2, 6, 6)),
    "conv3d_time": (lambda: SpikingConv(1, 2, 3, spatial_dims=3, time_kernel=2, time_dilation=3, bias=True, threshold_init=0.2), (10, 1, 1, 4, 4, 4)),
    "conv2d_no_time": (lambda: SpikingConv(2, 3, 3, threshold_init=0.2), (8, 2, 2, 5, 5)),
    "recurrent_pool": (lambda: RecurrentPool(2, 4, 3, spatial_dims=1, time_kernel=2, threshold_init=0.2), (12, 2, 2, 7)),
    "pool_min": (lambda: Pool("min", 2), (6, 2, 3, 4, 4)),
    "flatten": (lambda: Flatten(), (6, 2, 3, 4)),
    "readout": (lambda: Readout(12, 4, normalized=True), (9, 2, 3, 4)),
    "readout_integrate": (lambda: Readout(12, 4, integrate=0.8), (9, 2, 12)),
    "delay": (lambda: AxonalDelay((3, 1), init=2.6, max_delay=5.0), (12, 2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_step_equals_sequence(name):
    torch.manual_seed(0)
    make, shape = CASES[name]
    layer = make().double()
    if name == "recurrent_pool":
        with torch.no_grad():
            layer.recurrent.normal_(0, 0.5)
    if name == "delay":
        with torch.no_grad():
            layer.delay.copy_(torch.tensor([[0.0], [1.5], [3.25]]))
    x = _spiky(*shape)
    with torch.no_grad():
        whole, stepped = layer(x), _stream(layer, x)
    if name not in ("pool_min", "flatten", "delay", "readout", "readout_integrate"):
        assert 0 < whole.mean() < 1, "the case must produce some spikes and some silences to test anything"
    torch.testing.assert_close(stepped, whole)


@pytest.mark.parametrize("tau_s, tau_r", [(1.0, 1.0), (5.0, 2.0)])
def test_srm_step_equals_the_scan_in_spikes_and_membrane(tau_s, tau_r):
    """Eqs. (1)–(2), spikemax paper: the four filter states carried step by step give the scan's u and spikes."""
    torch.manual_seed(0)
    neuron = SRM(tau_s, tau_r, threshold=1.0)
    current = torch.randn(60, 3, 4, 2, dtype=torch.float64)
    spikes, membrane = neuron(current)
    state, got, u = neuron.init_state(3), [], []
    for t in range(60):
        s, state = neuron.step(current[t], state)
        got.append(s)
        u.append(state["membrane"])
    assert 0.02 < float(spikes.mean()) < 0.5, "the case must spike, and the refractory kernel must act"
    torch.testing.assert_close(torch.stack(got), spikes, rtol=0, atol=0)
    torch.testing.assert_close(torch.stack(u), membrane)


def test_spikemax_shorthand_net_with_delays_streams_as_its_forward():
    """Conv, aggregate pooling and dense SRM layers with fractional axonal delays (the spikemax networks), step by step."""
    torch.manual_seed(0)
    model = parse_shorthand("8x8x2-4c3-2a-6-3", threshold=1.0, weight_scale=5.0).double()
    with torch.no_grad():
        for layer in model.layers:
            if layer.delay is not None:
                layer.delay.delay.uniform_(0.0, 4.0)
    x = _spiky(30, 2, 2, 8, 8, p=0.3)
    with torch.no_grad():
        whole = model(x)
        h = x
        for layer in model.layers:
            h = layer(h)
            assert 0 < float(h.mean()) < 1, "every layer must spike sometimes for the test to mean anything"
    torch.testing.assert_close(_stream(model, x), whole, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"one time step \[B, \.\.\.\] with \.\.\. = \(2, 8, 8\)"):
        model.step(x, model.init_state(2))


@pytest.mark.parametrize("readout_pool, band_pools, leak", [(1, None, None), (5, None, None), (1, [2, 1, 5], None), (1, None, 0.9)])
def test_kws_net_step_equals_forward(readout_pool, band_pools, leak):
    torch.manual_seed(0)
    model = kws_dilated(channels=[6, 6, 6], bands=10, readout_pool=readout_pool, band_pools=band_pools, readout_leak=leak).double().eval()
    with torch.no_grad():
        for conv in model.convs:
            conv.neuron.threshold.fill_(0.05)
    x = torch.randn(70, 2, 1, 10, dtype=torch.float64).abs()
    with torch.no_grad():
        whole, stepped = model(x), _stream(model, x)
        h = x
        for conv, band_pool in zip(model.convs, model.band_pools):
            h = band_pool(conv(h))
            assert 0 < float(h.mean()) < 1, "every layer must spike sometimes for the test to mean anything"
    torch.testing.assert_close(stepped, whole)


def test_step_rejects_a_sequence_and_a_foreign_state():
    layer = SpikingLinear(4, 3)
    state = layer.init_state(2)
    with pytest.raises(ValueError, match="one time step"):
        layer.step(torch.zeros(5, 2, 4), state)
    with pytest.raises(ValueError, match="init_state"):
        layer.step(torch.zeros(2, 4), None)
