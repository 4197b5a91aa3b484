"""Same input, same thread count → the same bytes, from every compiled kernel (run in subprocesses at 1 and 2 threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from spikeforge.threads import available_cpus

# Every compiled kernel, through the functions that call it, on inputs large enough that each of two
# threads gets work (LIF: 80 blocks of 512 neurons, and per-channel sums over more than PyTorch's parallel grain
# of 32768; events: 1280 rows, 8 row parts, 8 weight-gradient chunks). Three calls each; prints {name: [sha256 of call 1, 2, 3]}.
KERNELS = textwrap.dedent(
    """
    import hashlib, json, sys
    import numba, torch
    from spikeforge.functional import events, lif_cpu
    from spikeforge.functional.lif import lif_scan
    from spikeforge.layers import SpikingConv

    assert torch.get_num_threads() == int(sys.argv[1]), torch.get_num_threads()
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(20, 64, 16, 40, generator=g) < 0.05).float()  # [T, B, C, F]: 5 % active
    current = torch.randn(20, 64, 16, 40, generator=g)
    g_spk, g_mem = torch.randn(2, 20, 64, 16, 40, generator=g)
    w_lin = torch.randn(96, 16 * 40, generator=g, requires_grad=True)
    w_conv = torch.randn(12, 16, 4, 3, generator=g, requires_grad=True)
    g_lin, g_conv = torch.randn(20, 64, 96, generator=g), torch.randn(20, 64, 12, 40, generator=g)
    limit = events.MAX_DENSITY

    def digest(*tensors):
        h = hashlib.sha256()
        for t in tensors:
            h.update(t.detach().contiguous().numpy().tobytes())
        return h.hexdigest()

    def lif(reset, norm):
        x = current.clone().requires_grad_()
        beta, b = torch.tensor(0.9, requires_grad=True), torch.full((16,), 0.5, requires_grad=True)
        nrm = torch.rand(16, generator=torch.Generator().manual_seed(1)).add(0.5).requires_grad_() if norm else None
        s, u = lif_scan(x, beta, b, nrm, reset=reset, surrogate="sigmoid")
        grads = torch.autograd.grad((s * g_spk).sum() + (u * g_mem).sum(), [x, beta, b] + ([nrm] if norm else []))
        return s, u, *grads

    def linear():
        y = events.linear(spikes.flatten(2), w_lin)
        return y, torch.autograd.grad(y, w_lin, g_lin)[0]

    def conv():
        y = events.conv_time1d(spikes, w_conv, None, time_dilation=2, padding=3, dilation=3)
        return y, torch.autograd.grad(y, w_conv, g_conv)[0]

    def dense_conv():  # the dense path of a causal time conv (channels-last oneDNN), events off
        layer = SpikingConv(16, 12, 3, spatial_dims=1, time_kernel=4, time_dilation=2, dilation=3)
        with torch.no_grad():
            layer.weight.copy_(w_conv)
        x = current.clone().requires_grad_()
        events.MAX_DENSITY = 0.0
        try:
            y = layer.current(x)
        finally:
            events.MAX_DENSITY = limit
        return y, *torch.autograd.grad(y, [x, layer.weight], g_conv)

    def rows():
        r = events.sparse_rows(spikes, 1280, 0.3)
        return r.indptr, r.indices, r.values

    cases = {"lif_subtract": lambda: lif("subtract", False), "lif_zero_norm": lambda: lif("zero", True),
             "lif_none": lambda: lif("none", False), "compress_rows": rows, "event_linear": linear, "event_conv": conv,
             "dense_conv": dense_conv}
    assert events.sparse_rows(spikes, 1280, 0.3) is not None  # the event kernels, not the dense fallback
    print(json.dumps({name: [digest(*fn()) for _ in range(3)] for name, fn in cases.items()}))
    """
)


def _digests(threads: int, cache: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", KERNELS, str(threads)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def digests(tmp_path_factory) -> dict[int, dict]:
    """The 1-thread process compiles every kernel into an empty cache; the 2-thread process loads them from it."""
    if available_cpus() < 2:
        pytest.skip("needs 2 CPUs for the 2-thread runs")
    cache = str(tmp_path_factory.mktemp("numba_cache"))
    return {threads: _digests(threads, cache) for threads in (1, 2)}


@pytest.mark.parametrize("threads", [1, 2])
def test_every_compiled_kernel_repeats_its_bytes(digests, threads):
    for name, calls in digests[threads].items():
        assert len(set(calls)) == 1, f"{name} at {threads} threads: {calls}"


def test_compiled_kernels_give_the_same_bytes_on_one_and_two_threads_compiled_or_cached(digests):
    # Every numba kernel and its fixed-order reductions; left out is the dense conv (oneDNN picks its own blocking
    # per thread count). Before the LIF backward's fast-math set lost `contract`, its bytes differed between the
    # process that compiled it and one that loaded it from the cache.
    compiled = [{name: calls for name, calls in digests[t].items() if not name.startswith("dense_")} for t in (1, 2)]
    assert set(compiled[0]) == {"lif_subtract", "lif_zero_norm", "lif_none", "compress_rows", "event_linear",
                                "event_conv"}
    assert compiled[0] == compiled[1]
