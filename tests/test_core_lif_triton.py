"""The Triton LIF kernels (CUDA) against the reference, run on the CPU by Triton's interpreter."""

import importlib
import sys

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (`pip install -e .[test]` installs it on Linux x86-64)")

import spikeforge.functional as functional  # noqa: E402
from spikeforge.functional import lif  # noqa: E402
from spikeforge.functional.lif import lif_scan  # noqa: E402
from test_core_lif import CASES, _case  # noqa: E402

MODULE = "spikeforge.functional.lif_triton"


@pytest.fixture
def triton_on_cpu(monkeypatch):
    """`impl="fused"` on CPU tensors runs the Triton kernels, in interpreter mode (TRITON_INTERPRET=1)."""
    had_module, had_attr = sys.modules.get(MODULE), getattr(functional, "lif_triton", None)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # read when the kernels are decorated: import afresh
    sys.modules.pop(MODULE, None)
    module = importlib.import_module(MODULE)
    assert module.available
    cpu_backend = lif._kernel_backend
    monkeypatch.setattr(lif, "_kernel_backend", lambda *a: "triton" if cpu_backend(*a) == "numba" else cpu_backend(*a))
    calls = []
    for name in ("lif_forward", "lif_backward"):
        kernel = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    yield calls
    sys.modules.pop(MODULE, None)
    if had_module is not None:
        sys.modules[MODULE] = had_module
    if had_attr is None:
        delattr(functional, "lif_triton")
    else:
        functional.lif_triton = had_attr


# the kernels' cases (no lateral reset, no recurrence), with positions so that the per-channel indexing is exercised
TRITON_CASES = [c for c in CASES if not c[2] and not c[3] and c[6]]


@pytest.mark.parametrize("reset,input_scale,lateral,recurrent,norm_on,surrogate,spatial", TRITON_CASES)
def test_triton_kernels_equal_reference_forward_and_gradients(triton_on_cpu, reset, input_scale, lateral, recurrent,
                                                              norm_on, surrogate, spatial):
    ref = _case("reference", reset, input_scale, lateral, recurrent, norm_on, surrogate, spatial)
    fused = _case("fused", reset, input_scale, lateral, recurrent, norm_on, surrogate, spatial)
    assert triton_on_cpu == ["lif_forward", "lif_backward"], "the scan must have run the Triton kernels"
    assert 0.02 < ref[0].mean() < 0.98, "the case must actually spike and reset"
    assert torch.equal(ref[0], fused[0])
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-12, atol=1e-12)
    for i, (g_ref, g_fused) in enumerate(zip(ref[2], fused[2])):
        if i == 3 and not norm_on:  # W only enters through ‖W‖²
            assert g_ref is None and g_fused is None
            continue
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_triton_kernels_in_float32_give_the_reference_spikes(triton_on_cpu, reset):
    ref = _case("reference", reset, "none", False, False, True, "sigmoid", True, dtype=torch.float32, seed=3)
    fused = _case("fused", reset, "none", False, False, True, "sigmoid", True, dtype=torch.float32, seed=3)
    assert torch.equal(ref[0], fused[0])
    torch.testing.assert_close(fused[1], ref[1], rtol=0, atol=0)
    for g_ref, g_fused in zip(ref[2], fused[2]):
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-5, atol=1e-5)


def test_triton_scan_consumes_the_current_streams_and_skips_the_membrane(triton_on_cpu):
    g = torch.Generator().manual_seed(5)
    current = torch.randn(30, 2, 3, 4, generator=g) + 0.4
    beta, threshold = torch.tensor(0.8), torch.full((3,), 0.9, requires_grad=True)
    ref_s, ref_u = lif_scan(current, beta, threshold, impl="reference")
    with torch.no_grad():
        lean, none = lif_scan(current, beta, threshold, keep_membrane=False)
        s1, u1 = lif_scan(current[:11], beta, threshold)
        s2, _ = lif_scan(current[11:], beta, threshold, initial=(u1[-1], s1[-1]))
    owned = current.clone().requires_grad_()
    spikes, membrane = lif_scan(owned * 1.0, beta, threshold, consume_current=True)
    (g_cur,) = torch.autograd.grad(spikes.sum(), owned)  # a spike-only loss: no membrane gradient
    (g_ref,) = torch.autograd.grad(lif_scan(owned, beta, threshold, impl="reference")[0].sum(), owned)
    assert none is None and torch.equal(lean, ref_s.detach()) and torch.equal(torch.cat([s1, s2]), ref_s.detach())
    assert torch.equal(spikes, ref_s.detach()) and torch.equal(membrane.detach(), ref_u.detach())
    torch.testing.assert_close(g_cur, g_ref, rtol=1e-5, atol=1e-6)
    assert 0.05 < float(ref_s.detach().mean()) < 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scan_runs_the_triton_kernels_and_equals_the_cpu_scan():
    g = torch.Generator().manual_seed(6)
    current = (torch.randn(50, 4, 8, 6, generator=g) + 0.5).requires_grad_()
    threshold = torch.full((8,), 0.9, requires_grad=True)
    assert lif._kernel_backend(current.cuda(), None, None) == "triton"
    out = {}
    for device in ("cpu", "cuda"):
        cur, th = (t.detach().to(device).requires_grad_() for t in (current, threshold))
        spikes, membrane = lif_scan(cur, 0.8, th, reset="subtract")
        grads = torch.autograd.grad((spikes * 1.5).sum() + membrane.square().sum(), (cur, th))
        out[device] = [t.detach().cpu() for t in (spikes, membrane, *grads)]
    assert torch.equal(out["cpu"][0], out["cuda"][0])
    for a, b in zip(out["cpu"][1:], out["cuda"][1:]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
