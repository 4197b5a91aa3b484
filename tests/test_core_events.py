"""Event-driven synapses (functional.events) against the dense PyTorch result, forward and gradient."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikeforge.functional import compress_cpu, events, events_cpu
from spikeforge.layers import Readout, SpikingConv, SpikingLinear



@pytest.fixture(autouse=True)
def _events_on_narrow_linear_layers(monkeypatch):
    """The small weights of these tests take the event path too (in use, layers under 32 outputs stay dense)."""
    monkeypatch.setattr(events, "LINEAR_MIN_OUTPUTS", 1)


def _spikes(*shape, density=0.05, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < density).to(dtype)


def _dense_causal_conv(x, w, b, time_dilation, padding, dilation):
    """The specification: pad `reach` steps in front of the sequence, one dense conv2d over (time, F)."""
    reach = (w.shape[2] - 1) * time_dilation
    xt = F.pad(x.movedim(0, 2), (0, 0, reach, 0))
    return F.conv2d(xt, w, b, padding=(0, padding), dilation=(time_dilation, dilation)).movedim(2, 0)


def _grads(y, inputs, g):
    return torch.autograd.grad(y, inputs, g)


def _check_linear_against_dense(x, backward_name):
    """events.linear on x `[30, 4, 50]` with 9 outputs: takes the path `backward_name`, equals F.linear forward and backward."""
    dtype = x.dtype
    w = torch.randn(9, 50, dtype=dtype, requires_grad=True)
    b = torch.randn(9, dtype=dtype, requires_grad=True)
    y = events.linear(x, w, b)
    assert type(y.grad_fn).__name__ == backward_name
    y0 = F.linear(x, w, b)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, y0, **tol)
    g = torch.randn_like(y)
    for a, c in zip(_grads(y, (x, w, b), g), _grads(y0, (x, w, b), g)):
        torch.testing.assert_close(a, c, **tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_event_linear_matches_dense_forward_and_gradients(dtype):
    x = _spikes(30, 4, 50, dtype=dtype).mul_(torch.linspace(0.5, 2.0, 50, dtype=dtype)).requires_grad_()  # any values
    _check_linear_against_dense(x, "_EventLinearBackward")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_narrow_linear_kernels_match_dense_forward_and_gradients(dtype, monkeypatch):
    monkeypatch.setattr(events, "LINEAR_MIN_OUTPUTS", 32)  # as in use: a layer of 9 outputs takes the narrow kernels
    x = torch.randn(30, 4, 50, dtype=dtype).requires_grad_()
    _check_linear_against_dense(x, "_NarrowLinearBackward")
    assert type(events.linear(x, torch.randn(32, 50, dtype=dtype)).grad_fn).__name__ != "_NarrowLinearBackward"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_narrow_linear_on_sparse_input_takes_the_events_and_matches_dense(dtype, monkeypatch):
    monkeypatch.setattr(events, "LINEAR_MIN_OUTPUTS", 32)  # as in use: 9 outputs, 5 % nonzero inputs
    x = _spikes(30, 4, 50, dtype=dtype).requires_grad_()
    _check_linear_against_dense(x, "_EventLinearBackward")


@pytest.mark.parametrize("density", [0.03, 0.3])  # the event path and the dense narrow kernels
def test_narrow_linear_bits_do_not_depend_on_the_thread_count(density, monkeypatch):
    monkeypatch.setattr(events, "LINEAR_MIN_OUTPUTS", 32)
    x = _spikes(40, 8, 64, density=density, dtype=torch.float32).requires_grad_()
    w = torch.randn(11, 64, requires_grad=True)
    g = torch.randn(40, 8, 11)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            y = events.linear(x, w)
            assert type(y.grad_fn).__name__ == ("_EventLinearBackward" if density < 0.1 else "_NarrowLinearBackward")
            results.append((y, *_grads(y, (x, w), g)))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_dense_input_takes_the_dense_path_and_silent_input_gives_the_bias():
    w, b = torch.randn(3, 8), torch.randn(3)
    dense = torch.rand(5, 2, 8)
    assert events.sparse_rows(dense, 10, 0.5) is None
    torch.testing.assert_close(events.linear(dense, w, b), F.linear(dense, w, b))
    silent = torch.zeros(5, 2, 8)
    wg = w.clone().requires_grad_()
    y = events.linear(silent, wg, b)
    assert type(y.grad_fn).__name__ == "_EventLinearBackward"
    torch.testing.assert_close(y, b.expand(5, 2, 3))
    (gw,) = torch.autograd.grad(y.sum(), wg)
    assert torch.count_nonzero(gw) == 0


def test_compressed_rows_hold_exactly_the_nonzero_entries():
    x = torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0] * 4, [1.0, 0.0, 0.0, -3.0]] + [[0.0] * 4] * 7)
    rows = events.sparse_rows(x, 10, 0.3)
    assert rows.indptr.tolist() == [0, 1, 1, 3] + [3] * 7
    assert rows.indices.tolist() == [1, 0, 3]
    assert rows.values.tolist() == [2.0, 1.0, -3.0]


def test_compressed_positions_list_the_active_channels_of_each_position():
    x = torch.zeros(2, 1, 3, 4)  # [T, B, C, F]
    x[0, 0, 2, 1] = 1.0
    x[0, 0, 0, 1] = 0.5
    x[1, 0, 1, 3] = 2.0
    rows = events.sparse_positions(x, 0.3)
    assert rows.indptr.tolist() == [0, 0, 2, 2, 2, 2, 2, 2, 3]  # positions (t·B + b)·F + f
    assert rows.indices.tolist() == [0, 2, 1]  # the channels, in order
    assert rows.values.tolist() == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("kt,dt,k,d,pad", [(4, 1, 3, 1, 1), (4, 4, 3, 3, 3), (4, 16, 3, 9, 9), (1, 1, 5, 2, 4), (2, 3, 3, 1, 0),
                                             (2, 1, 1, 1, 1), (3, 2, 3, 1, 3)])  # the last two pad wider than the kernel reaches
def test_event_conv_matches_dense_causal_conv(kt, dt, k, d, pad):
    x = _spikes(25, 3, 5, 11, density=0.08).requires_grad_()
    w = torch.randn(6, 5, kt, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    y = events.conv_time1d(x, w, b, time_dilation=dt, padding=pad, dilation=d)
    y0 = _dense_causal_conv(x, w, b, dt, pad, d)
    assert y.shape == y0.shape
    torch.testing.assert_close(y, y0, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y0)
    for a, c in zip(_grads(y, (x, w, b), g), _grads(y0, (x, w, b), g)):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_event_conv_declines_dense_input():
    x = torch.rand(6, 2, 3, 7)
    assert events.conv_time1d(x, torch.randn(4, 3, 2, 3), None, time_dilation=1, padding=1, dilation=1) is None


def _layer_grads(layer, x):
    y = layer(x) if not isinstance(layer, Readout) else layer(x)
    g = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    params = [p for p in layer.parameters() if p.requires_grad]
    return y.detach(), torch.autograd.grad(y, [x, *params], g)


@pytest.mark.parametrize("make,shape", [
    (lambda: SpikingConv(5, 6, 3, spatial_dims=1, time_kernel=4, dilation=3, time_dilation=4, bias=True, surrogate="arctan", normalize_threshold=False), (40, 3, 5, 12)),
    (lambda: SpikingConv(5, 6, 3, spatial_dims=1, scale=5.0, normalize_threshold=False), (40, 3, 5, 12)),
    (lambda: SpikingLinear(30, 7, reset="zero", input_scale="one_minus_beta", normalize_threshold=False, threshold_init=0.2), (40, 3, 30)),
    (lambda: Readout(30, 4, normalized=True), (40, 3, 30)),
])
def test_layers_give_the_same_outputs_and_gradients_with_and_without_events(make, shape, monkeypatch):
    torch.manual_seed(1)
    layer = make().double()
    with torch.no_grad():  # enough drive that the LIF layers spike
        layer.weight.mul_(4.0)
    x = _spikes(*shape, density=0.06).requires_grad_()
    y_events, g_events = _layer_grads(layer, x)
    monkeypatch.setattr(events, "MAX_DENSITY", 0.0)  # 0 turns the event path off
    y_dense, g_dense = _layer_grads(layer, x)
    torch.testing.assert_close(y_events, y_dense, rtol=1e-10, atol=1e-10)
    for a, c in zip(g_events, g_dense):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-10)
    if not isinstance(layer, Readout):
        assert 0 < float(y_events.mean()) < 1  # the comparison crossed spikes and silences


def test_weight_gradient_is_bit_identical_on_one_and_two_threads():
    x = _spikes(50, 4, 6, 10, density=0.1, dtype=torch.float32)
    w = torch.randn(5, 6, 3, 3, requires_grad=True)
    y = events.conv_time1d(x, w, None, time_dilation=2, padding=1, dilation=1)
    g = torch.randn_like(y)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        (one,) = torch.autograd.grad(y, w, g, retain_graph=True)
        torch.set_num_threads(2)
        (two,) = torch.autograd.grad(y, w, g)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)  # the same summation order on any number of threads
    (dense,) = torch.autograd.grad(_dense_causal_conv(x, w, None, 2, 1, 1), w, g)
    torch.testing.assert_close(one, dense, rtol=1e-5, atol=1e-4)


def test_input_gradient_in_batch_chunks_equals_the_whole_batch(monkeypatch):
    x = _spikes(20, 5, 4, 9, density=0.1).requires_grad_()
    w = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    g = torch.randn(20, 5, 3, 9, dtype=torch.float64)
    monkeypatch.setattr(events, "DGRAD_CHUNK_BYTES", 1)  # one sample at a time
    y = events.conv_time1d(x, w, None, time_dilation=2, padding=1, dilation=1)
    (chunked,) = torch.autograd.grad(y, x, g)
    (dense,) = torch.autograd.grad(_dense_causal_conv(x, w, None, 2, 1, 1), x, g)
    torch.testing.assert_close(chunked, dense, rtol=1e-12, atol=1e-12)


def test_rows_are_compressed_in_parts_and_a_dense_part_falls_back_to_dense():
    x = torch.zeros(80, 10)
    x[3] = torch.arange(1.0, 11.0)  # one full row fits: each part has two rows of headroom
    x[50, 7] = -2.0
    rows = events.sparse_rows(x, 80, 0.3)
    assert rows.indptr[4] - rows.indptr[3] == 10 and rows.indices[:10].tolist() == list(range(10))
    assert rows.values.tolist() == list(range(1, 11)) + [-2.0] and rows.indices[10] == 7 and rows.indptr[-1] == 11
    x[:8] = 1.0  # 10 % overall, but the first of the 8 parts is dense
    assert events.sparse_rows(x, 80, 0.3) is None
    w = torch.randn(3, 10)
    torch.testing.assert_close(events.linear(x, w), x @ w.t())


def test_event_path_is_chosen_by_the_break_even_density_of_the_call(monkeypatch):
    # between the inference and the training break-even the events pay only with the weight gradient
    monkeypatch.setitem(events.BREAK_EVEN, "conv", (0.6, 0.3))
    monkeypatch.setitem(events.BREAK_EVEN, "linear", (0.6, 0.3))
    x = _spikes(30, 4, 16, 10, density=0.45, dtype=torch.float32)
    w = torch.randn(8, 16, 3, 3, requires_grad=True)
    conv = dict(time_dilation=2, padding=1, dilation=1)
    assert events.break_even_density(w, "conv") == 0.6
    y = events.conv_time1d(x, w, None, **conv)
    assert type(y.grad_fn).__name__ == "_EventConvTime1dBackward"
    torch.testing.assert_close(y, _dense_causal_conv(x, w, None, 2, 1, 1), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert events.break_even_density(w, "conv") == 0.3
        assert events.conv_time1d(x, w, None, **conv) is None  # the caller's dense convolution
    wl = torch.randn(5, 10, requires_grad=True)
    assert type(events.linear(x, wl).grad_fn).__name__ == "_EventLinearBackward"
    with torch.no_grad():
        torch.testing.assert_close(events.linear(x, wl), F.linear(x, wl))
    assert events.conv_time1d(_spikes(30, 4, 16, 10, density=0.8, dtype=torch.float32), w, None, **conv) is None
    monkeypatch.setattr(events, "LINEAR_MIN_OUTPUTS", 6)  # a narrow layer: its own break-even, dense kernels above it
    monkeypatch.setitem(events.BREAK_EVEN, "narrow", (0.2, 0.1))
    assert events.break_even_density(wl, "linear") == 0.2
    assert type(events.linear(x, wl).grad_fn).__name__ == "_NarrowLinearBackward"
    assert type(events.linear(_spikes(30, 4, 16, 10, density=0.1, dtype=torch.float32), wl).grad_fn).__name__ == "_EventLinearBackward"
    monkeypatch.setattr(events, "MAX_DENSITY", 0.4)  # the cap over every kind
    assert events.break_even_density(w, "conv") == 0.4 and events.conv_time1d(x, w, None, **conv) is None

@pytest.mark.skipif(not compress_cpu.AVX2, reason="the 8-lane compression needs AVX2")
@pytest.mark.parametrize("width", [8, 13, 64, 256])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_rows_compressed_eight_at_a_time_equal_one_at_a_time(width, density):
    g = torch.Generator().manual_seed(width)
    x = torch.randn(97, 3, width, generator=g) * (torch.rand(97, 3, width, generator=g) < density)
    x[5, 1, width - 1] = float("nan")  # a NaN is kept, as the scalar loop keeps it
    grid = x.numpy()
    groups = compress_cpu.vector_groups(grid)
    assert groups == width // 8
    results = []
    for take in (groups, 0):
        parts, capacity = 4, x.numel() // 4 + 2 * width + 1
        counts, filled = np.empty(97 * 3, np.int64), np.empty(parts, np.int64)
        indices, values = np.empty(parts * capacity, np.int32), np.empty(parts * capacity, np.float32)
        flat = grid.reshape(-1) if take else np.empty(0, np.float32)
        events_cpu.compress_rows(grid, flat, take, parts, capacity, counts, indices, values, filled)
        keep = np.concatenate([np.arange(p * capacity, p * capacity + filled[p]) for p in range(parts)])
        results.append((counts, indices[keep], values[keep]))
    assert (results[0][0] == (grid != 0).sum(-1).reshape(-1)).all()
    for vector, scalar in zip(*results):
        np.testing.assert_array_equal(vector, scalar)


def test_strided_rows_and_float64_are_compressed_one_at_a_time():
    x = torch.zeros(2, 3, 16, 4)
    assert compress_cpu.vector_groups(x.numpy().transpose(0, 2, 1, 3)) == 0  # a convolution's positions: strided
    assert compress_cpu.vector_groups(x.double().numpy()) == 0


def test_a_cpu_without_avx2_compresses_the_same_rows(tmp_path):
    """The one-by-one loop is the whole compression where numba compiles for a generic CPU (no AVX2)."""
    script = (
        "import numpy as np, torch\n"
        "from spikeforge.functional import compress_cpu, events\n"
        "assert not compress_cpu.AVX2\n"
        "x = (torch.rand(64, 3, 37, generator=torch.Generator().manual_seed(3)) < 0.2).float()\n"
        "r = events.sparse_rows(x, 192, 0.5)\n"
        "import sys\n"
        "np.savez(sys.argv[1], indptr=r.indptr.numpy(), indices=r.indices.numpy(), values=r.values.numpy())\n")
    out = tmp_path / "rows.npz"
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=600)
    generic = np.load(out)
    x = (torch.rand(64, 3, 37, generator=torch.Generator().manual_seed(3)) < 0.2).float()
    here = events.sparse_rows(x, 192, 0.5)
    for name in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(generic[name], getattr(here, name).numpy())
