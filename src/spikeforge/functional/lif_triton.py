"""Triton kernels for the fused LIF scan on CUDA when every neuron resets only itself.

The GPU counterpart of `functional.lif_cpu`: one program per block of neurons runs the whole
scan over time in registers (one kernel launch for the forward, one for the backward, instead
of several per step and operation), the same model and options (subtract / zero / no reset,
‖W‖² threshold normalisation q, every surrogate of `functional.surrogate`). Triton compiles
the kernels at their first call, so installing needs no compiler. The forward computes the
arithmetic of `lif_reference` in the same order with no fused multiply-add and an IEEE division
by q, so its spikes equal the reference's; the backward recomputes the spikes from U the same way.

With `TRITON_INTERPRET=1` set before this module is imported, Triton runs the kernels with
numpy on CPU tensors: the test suite checks their logic that way, on machines without a GPU.
Tensors are `[T, N]` rows with neurons flattened from `[B, C, L]`; per-channel values are `[C]`.
"""

from __future__ import annotations

import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the PyTorch loop in `functional.lif` is the fallback on CUDA
    triton = None

from spikeforge.functional.lif_cpu import RESET_CODES, SURROGATE_CODES

BLOCK = 128
available = triton is not None

if available:

    @triton.jit
    def _spike(u, qq, b, HAS_NORM: tl.constexpr):
        """S = Θ(U/q − b) as the forward computes it (IEEE division, eq. (5), low-activity paper)."""
        if HAS_NORM:
            x = tl.fdiv(u, qq, ieee_rounding=True) - b
        else:
            x = u - b
        return tl.where(x > 0, 1.0, 0.0).to(u.dtype)

    @triton.jit
    def _surrogate(x, a, SURROGATE: tl.constexpr):
        """Θ′(x) of the surrogate with code SURROGATE (`lif_cpu.SURROGATE_CODES`), scale a."""
        if SURROGATE == 0 or SURROGATE == 1:
            e = tl.exp(-tl.abs(a * x))
            g = e / ((1.0 + e) * (1.0 + e))  # eq. (8), low-activity paper, exp(−|ax|) form
            if SURROGATE == 0:
                g = a * g
        elif SURROGATE == 2:
            d = 1.0 + a * tl.abs(x)
            g = 1.0 / (d * d)
        elif SURROGATE == 3:
            g = a * tl.maximum(1.0 - a * tl.abs(x), 0.0)
        else:
            z = (math.pi / 2.0) * a * x
            g = (a / 2.0) / (1.0 + z * z)
        return g.to(x.dtype)

    @triton.jit
    def _forward_kernel(drive, membrane, spikes, beta_ptr, threshold, q, gain, u0, s0, n_neurons, channels, inner, steps,
                        HAS_NORM: tl.constexpr, RESET: tl.constexpr, KEEP_U: tl.constexpr, BLOCK: tl.constexpr):
        """U[n] = β·(U[n−1] − R[n−1]) + drive[n]; S[n] = Θ(U[n]/q − b); R per RESET (eqs. (4)–(5)); U kept if KEEP_U."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_neurons
        ch = (offs // inner) % channels
        beta = tl.load(beta_ptr)
        b = tl.load(threshold + ch, mask=mask, other=0.0)
        qq = tl.load(q + ch, mask=mask, other=1.0)
        gg = tl.load(gain + ch, mask=mask, other=0.0)
        u = tl.load(u0 + offs, mask=mask, other=0.0)
        s = tl.load(s0 + offs, mask=mask, other=0.0)
        if RESET == 0:
            r = s * gg
        elif RESET == 1:
            r = u * s
        else:
            r = s * 0.0
        d_ptr, m_ptr, s_ptr = drive + offs, membrane + offs, spikes + offs
        for _ in range(steps):
            d = tl.load(d_ptr, mask=mask, other=0.0)
            u = beta * (u - r) + d  # eq. (4); with `membrane` = `drive` U overwrites the drive just read
            s = _spike(u, qq, b, HAS_NORM)
            if KEEP_U:
                tl.store(m_ptr, u, mask=mask)
            tl.store(s_ptr, s, mask=mask)
            if RESET == 0:
                r = s * gg
            elif RESET == 1:
                r = u * s
            d_ptr += n_neurons
            m_ptr += n_neurons
            s_ptr += n_neurons

    @triton.jit
    def _backward_kernel(g_spikes, g_membrane, membrane, current, g_u, parts, beta_ptr, threshold, q, norm, scale,
                         u0, s0, n_neurons, channels, inner, steps, last, HAS_GS: tl.constexpr, HAS_GM: tl.constexpr,
                         SCALED: tl.constexpr, HAS_NORM: tl.constexpr, RESET: tl.constexpr, SURROGATE: tl.constexpr,
                         BLOCK: tl.constexpr):
        """Reverse scan of `lif_cpu.lif_backward` from the last row (offset `last`): gU[n], and per-neuron sums of dβ, db, d‖W‖² into `parts` [3, N]."""
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_neurons
        ch = (offs // inner) % channels
        beta = tl.load(beta_ptr)
        b = tl.load(threshold + ch, mask=mask, other=0.0)
        qq = tl.load(q + ch, mask=mask, other=1.0)
        nrm = tl.load(norm + ch, mask=mask, other=1.0)
        inv_q = 1.0 / qq
        k_sub = 1.0 if RESET == 0 else 0.0  # R = b·‖W‖²·S
        k_zero = 1.0 if RESET == 1 else 0.0  # R = U·S
        gain = b * nrm
        first_u = tl.load(u0 + offs, mask=mask, other=0.0)
        first_s = tl.load(s0 + offs, mask=mask, other=0.0)
        g_next = first_u * 0.0
        acc_beta = g_next
        acc_b = g_next
        acc_n = g_next
        m_ptr, gu_ptr = membrane + last + offs, g_u + last + offs
        gs_ptr, gm_ptr, c_ptr = g_spikes + last + offs, g_membrane + last + offs, current + last + offs
        un = tl.load(m_ptr, mask=mask, other=0.0)
        for i in range(steps):
            n = steps - 1 - i
            up = tl.load(m_ptr - n_neurons, mask=mask & (offs * 0 + n > 0), other=0.0)  # U[n−1]
            up = tl.where(n > 0, up, first_u)
            sp = tl.where(n > 0, _spike(up, qq, b, HAS_NORM), first_s)  # S[n−1]
            spk = _spike(un, qq, b, HAS_NORM)  # S[n], as the forward computed it
            sg = _surrogate(un * inv_q - b, scale, SURROGATE)
            gsp = tl.load(gs_ptr, mask=mask, other=0.0) if HAS_GS else g_next * 0.0
            gmem = tl.load(gm_ptr, mask=mask, other=0.0) if HAS_GM else g_next * 0.0
            cur = tl.load(c_ptr, mask=mask, other=0.0) if SCALED else g_next * 0.0
            g = g_next
            gs = gsp - beta * (k_sub * gain + k_zero * un) * g
            gu = gs * sg * inv_q + beta * g + gmem - k_zero * beta * spk * g
            tl.store(gu_ptr, gu, mask=mask)
            acc_beta += gu * (up - sp * (k_sub * gain + k_zero * up) - cur)
            gx = gs * sg
            acc_b -= gx + k_sub * beta * nrm * sp * gu
            acc_n -= gx * un * inv_q * inv_q + k_sub * beta * b * sp * gu
            g_next = gu
            un = up
            m_ptr -= n_neurons
            gu_ptr -= n_neurons
            gs_ptr -= n_neurons
            gm_ptr -= n_neurons
            c_ptr -= n_neurons
        tl.store(parts + offs, acc_beta, mask=mask)
        tl.store(parts + n_neurons + offs, acc_b, mask=mask)
        tl.store(parts + 2 * n_neurons + offs, acc_n, mask=mask)


def _grid(n_neurons: int):
    return (triton.cdiv(n_neurons, BLOCK),)


def _rows(x: torch.Tensor, steps: int) -> torch.Tensor:
    """`x` as contiguous `[steps, N]` rows (`x` itself where it already is)."""
    return x.contiguous().view(steps, -1)


def lif_forward(drive, beta, threshold, q, gain, has_norm, reset, channels, inner, u0, s0, membrane, spikes) -> None:
    """Forward scan into `spikes` and `membrane` (contiguous, like `drive`); a one-row `membrane` is not written.

    `membrane` may be `drive` itself (U overwrites the drive). `beta` is a 0-dim tensor, read on the
    device (no synchronisation); the per-channel values are `[C]` tensors of the drive's dtype.
    """
    steps = drive.shape[0]
    rows = _rows(drive, steps)
    n = rows.shape[1]
    keep = membrane.shape[0] == steps
    _forward_kernel[_grid(n)](
        rows, membrane, spikes, beta.detach().to(drive.dtype).reshape(1), threshold, q, gain, u0.contiguous(),
        s0.contiguous(), n, channels, inner, steps, HAS_NORM=has_norm, RESET=RESET_CODES[reset], KEEP_U=keep,
        BLOCK=BLOCK, enable_fp_fusion=False)


def lif_backward(g_spikes, g_membrane, membrane, current, beta, threshold, q, norm, has_norm, reset, surrogate, scale,
                 channels, inner, u0, s0) -> tuple[torch.Tensor, torch.Tensor]:
    """(gU `[T, N]`, per-neuron partial sums `[3, N]` of dβ, db, d‖W‖²) of the reverse scan.

    `g_spikes`, `g_membrane` and `current` may be None (absent gradient; no (1 − β) input scaling).
    """
    steps = membrane.shape[0]
    mem = _rows(membrane, steps)
    n = mem.shape[1]
    g_u = torch.empty_like(mem)
    parts = torch.empty(3, n, dtype=mem.dtype, device=mem.device)
    absent = mem  # a valid pointer for the inputs a constexpr flag switches off
    _backward_kernel[_grid(n)](
        absent if g_spikes is None else _rows(g_spikes, steps), absent if g_membrane is None else _rows(g_membrane, steps),
        mem, absent if current is None else _rows(current, steps), g_u, parts, beta.detach().to(mem.dtype).reshape(1),
        threshold, q, norm, float(scale), u0.contiguous(), s0.contiguous(), n, channels, inner, steps,
        (steps - 1) * n, HAS_GS=g_spikes is not None, HAS_GM=g_membrane is not None, SCALED=current is not None, HAS_NORM=has_norm,
        RESET=RESET_CODES[reset], SURROGATE=SURROGATE_CODES[surrogate], BLOCK=BLOCK)
    return g_u, parts
