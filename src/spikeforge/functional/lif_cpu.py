"""Compiled CPU kernels for the fused LIF scan when every neuron resets only itself.

Without lateral or recurrent connections each neuron's trajectory is independent of the
others, so the whole scan is one pass over time per neuron: the kernels below run it with
numba (compiled once, cached), parallel over blocks of neurons, every step's update fused
into a single loop body. PyTorch cannot fuse a sequential scan on the CPU, and running it
op by op costs one full pass over the data per elementary operation; that is why these
kernels exist. They compute exactly the arithmetic of `lif_reference` in the same order
(no fast-math), so spikes and membrane are bit-identical to it; `functional.lif` falls back
to its PyTorch loop where numba is missing or the case has channel mixing.

Arrays are `[T, N]` with neurons flattened from `[B, C, L]`; per-channel values are `[C]`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

try:
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba comes with librosa; the PyTorch loop is the fallback
    njit = None

RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}
SURROGATE_CODES = {"sigmoid": 0, "sigmoid_unscaled": 1, "fast_sigmoid": 2, "triangle": 3, "arctan": 4}
BLOCK = 512

available = njit is not None


@contextmanager
def torch_thread_budget():
    """Run the kernels on as many threads as PyTorch uses, and leave PyTorch's count as it was.

    numba would otherwise take every core, and its OpenMP layer resets the process-wide
    OpenMP thread count, which PyTorch shares.
    """
    import numba
    import torch

    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


if available:

    @njit(cache=True, inline="always", fastmath=True)
    def _surrogate(x, code, a, one, half_pi):
        """The surrogate derivatives of `functional.surrogate`, by code; `one`, `half_pi` carry x's dtype."""
        if code == 0 or code == 1:
            e = math.exp(-abs(a * x))
            g = e / ((one + e) * (one + e))
            return a * g if code == 0 else g
        if code == 2:
            d = one + a * abs(x)
            return one / (d * d)
        if code == 3:
            return a * max(one - one, one - a * abs(x))
        z = half_pi * a * x
        return (a / (one + one)) / (one + z * z)

    @njit(parallel=True, cache=True)
    def lif_forward(drive, beta, threshold, q, gain, has_norm, reset, channels, inner, u0, s0, membrane, spikes):
        """U[n] = β·(U[n−1] − R[n−1]) + drive[n]; S[n] = Θ(U[n]/q − b); R per `reset` (eqs. (4)–(5))."""
        steps, n_neurons = drive.shape
        blocks = (n_neurons + BLOCK - 1) // BLOCK
        one = drive.dtype.type(1)
        zero = drive.dtype.type(0)
        for blk in prange(blocks):
            lo = blk * BLOCK
            hi = min(n_neurons, lo + BLOCK)
            width = hi - lo
            b = np.empty(width, drive.dtype)
            qq = np.empty(width, drive.dtype)
            gg = np.empty(width, drive.dtype)
            u = np.empty(width, drive.dtype)
            r = np.empty(width, drive.dtype)
            for i in range(width):
                ch = ((lo + i) // inner) % channels
                b[i] = threshold[ch]
                qq[i] = q[ch]
                gg[i] = gain[ch]
                u[i] = u0[lo + i]
                if reset == 0:
                    r[i] = s0[lo + i] * gg[i]
                elif reset == 1:
                    r[i] = u[i] * s0[lo + i]
                else:
                    r[i] = 0
            for n in range(steps):
                d = drive[n, lo:hi]  # row slices: contiguous, so the loop vectorises
                m = membrane[n, lo:hi]
                sp = spikes[n, lo:hi]
                for i in range(width):
                    un = beta * (u[i] - r[i]) + d[i]
                    x = (un / qq[i] if has_norm else un) - b[i]
                    s = one if x > 0 else zero
                    m[i] = un
                    sp[i] = s
                    u[i] = un
                    if reset == 0:
                        r[i] = s * gg[i]
                    elif reset == 1:
                        r[i] = un * s

    @njit(parallel=True, cache=True, fastmath=True)
    def lif_backward(g_spikes, g_membrane, has_g_membrane, membrane, spikes, current, scaled, beta, threshold, q, norm,
                     has_norm, reset, surrogate, scale, channels, inner, u0, s0, g_u, part_beta, part_threshold, part_norm):
        """Reverse scan: gU[n] = gS_tot[n]·Θ′/q + gU_mem[n] + carry[n]·gU[n+1]; per-neuron partial sums of dβ, db, d‖W‖².

        Locals have the arrays' dtype and 1/q is precomputed, so the loop body vectorises;
        gradients agree with the reference to float rounding, not bit for bit.
        """
        steps, n_neurons = membrane.shape
        dt = membrane.dtype
        beta = dt.type(beta)
        scale = dt.type(scale)
        one = dt.type(1)
        half_pi = dt.type(math.pi / 2)
        blocks = (n_neurons + BLOCK - 1) // BLOCK
        for blk in prange(blocks):
            lo = blk * BLOCK
            hi = min(n_neurons, lo + BLOCK)
            width = hi - lo
            b = np.empty(width, dt)
            inv_q = np.empty(width, dt)
            nrm = np.empty(width, dt)
            gain = np.empty(width, dt)
            g_next = np.zeros(width, dt)
            acc_beta = np.zeros(width, dt)
            acc_b = np.zeros(width, dt)
            acc_n = np.zeros(width, dt)
            for i in range(width):
                ch = ((lo + i) // inner) % channels
                b[i] = threshold[ch]
                inv_q[i] = 1 / q[ch]
                nrm[i] = norm[ch]
                gain[i] = b[i] * nrm[i]
            for n in range(steps - 1, -1, -1):
                mem = membrane[n, lo:hi]  # row slices: contiguous, so the loop vectorises
                spk = spikes[n, lo:hi]
                gsp = g_spikes[n, lo:hi]
                gmem = g_membrane[n if has_g_membrane else 0, lo:hi]
                cur = current[n if scaled else 0, lo:hi]
                gout = g_u[n, lo:hi]
                # the state before step n: U[n−1], S[n−1]
                u_before = membrane[n - 1, lo:hi] if n > 0 else u0[lo:hi]
                s_before = spikes[n - 1, lo:hi] if n > 0 else s0[lo:hi]
                for i in range(width):
                    un = mem[i]
                    x = (un * inv_q[i] if has_norm else un) - b[i]
                    sg = _surrogate(x, surrogate, scale, one, half_pi)
                    gs = gsp[i]
                    if reset == 0:
                        gs -= beta * gain[i] * g_next[i]
                    elif reset == 1:
                        gs -= beta * un * g_next[i]
                    gu = gs * (sg * inv_q[i] if has_norm else sg) + beta * g_next[i]
                    if has_g_membrane:
                        gu += gmem[i]
                    if reset == 1:
                        gu -= beta * spk[i] * g_next[i]
                    gout[i] = gu
                    up = u_before[i]
                    sp = s_before[i]
                    if reset == 0:
                        d_beta = up - sp * gain[i]
                    elif reset == 1:
                        d_beta = up - up * sp
                    else:
                        d_beta = up
                    if scaled:
                        d_beta -= cur[i]
                    acc_beta[i] += gu * d_beta
                    gx = gs * sg
                    acc_b[i] -= gx
                    if has_norm:
                        acc_n[i] -= gx * un * inv_q[i] * inv_q[i]
                    if reset == 0:
                        acc_b[i] -= beta * nrm[i] * sp * gu
                        acc_n[i] -= beta * b[i] * sp * gu
                    g_next[i] = gu
            for i in range(width):
                part_beta[lo + i] = acc_beta[i]
                part_threshold[lo + i] = acc_b[i]
                part_norm[lo + i] = acc_n[i]
