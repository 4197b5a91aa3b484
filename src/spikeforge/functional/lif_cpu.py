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

from spikeforge.malloc import keep_freed_memory_once

try:
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic, overload
except ImportError:  # pragma: no cover - numba comes with librosa; the PyTorch loop is the fallback
    njit = None

RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}
SURROGATE_CODES = {"sigmoid": 0, "sigmoid_unscaled": 1, "fast_sigmoid": 2, "triangle": 3, "arctan": 4}
# Neurons per parallel block. The forward scan streams three [T, N] arrays row by row and ran 19–25 % faster with
# blocks of 1,024 than of 512 (kernel alone, one thread, [300, 16 384] and [100, 81 920], an AVX2 host); the backward
# scan, with a dozen scratch rows per block, was no faster (within ±5 %).
FORWARD_BLOCK, BACKWARD_BLOCK = 1024, 512
# fast-math that leaves rounding alone: no `arcp` (U/q must round as in the forward, or a recomputed spike could
# flip), no `contract` (LLVM fused multiply-adds differently in the in-process JIT and in the cached object code, so
# a process that compiled the kernel and one that loaded it gave different bytes), no `reassoc` (vector and scalar
# loops would sum in different orders)
_EXACT_FASTMATH = {"nnan", "ninf", "nsz"}
# float32 exp: Cephes range reduction (ln2 split in two) and the Taylor coefficients 1/7! … 1/0!
_F32_EXP_MIN, _F32_LOG2E, _F32_HALF = np.float32(-87.0), np.float32(1.4426950408889634), np.float32(0.5)
_F32_NEG_LN2_HI, _F32_NEG_LN2_LO = np.float32(-0.693359375), np.float32(2.12194440e-4)
_F32_C7, _F32_C6, _F32_C5, _F32_C4, _F32_C3, _F32_C2, _F32_C1, _F32_C0 = (
    np.float32(1 / math.factorial(k)) for k in range(7, -1, -1))

available = njit is not None

if available:

    @intrinsic
    def _fma(typingctx, a, b, c):
        """a·b + c rounded once (LLVM's `fma`): the same bits in the JIT and in cached code, unlike fast-math `contract`."""
        if not all(isinstance(t, types.Float) for t in (a, b, c)):
            return None
        wide = max((a, b, c), key=lambda t: t.bitwidth)  # mixed arguments are cast to the widest

        def codegen(context, builder, signature, args):
            ty = args[0].type
            return builder.call(builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty] * 3)), args)

        return wide(wide, wide, wide), codegen

    @intrinsic
    def _pow2_f32(typingctx, n):
        """2^n for a float32 n holding an integer in [−126, 127]: n + 127 put in the exponent bits."""
        if not isinstance(n, types.Float):
            return None

        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            biased = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
            return builder.bitcast(builder.shl(biased, ir.Constant(i32, 23)), ir.FloatType())

        return types.float32(types.float32), codegen


@contextmanager
def torch_thread_budget():
    """Run the kernels on as many threads as PyTorch uses, and leave PyTorch's count as it was.

    numba would otherwise take every core, and its OpenMP layer resets the process-wide
    OpenMP thread count, which PyTorch shares. The first call also keeps freed large blocks in
    the heap for the buffers of the next training step (`spikeforge.malloc`).
    """
    import numba
    import torch

    keep_freed_memory_once()

    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


if available:

    @njit(cache=True, inline="always")
    def _forward_row(d, m, sp, u, r, b, qq, gg, beta, has_norm, reset, one, zero):
        """One step for a block of neurons: reads d (the drive), writes m (U) and sp (S); m may be d itself."""
        for i in range(d.shape[0]):
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

    @njit(parallel=True, cache=True)
    def lif_forward(drive, beta, threshold, q, gain, has_norm, reset, channels, inner, u0, s0, membrane, spikes, overwrite):
        """U[n] = β·(U[n−1] − R[n−1]) + drive[n]; S[n] = Θ(U[n]/q − b); R per `reset` (eqs. (4)–(5)).

        `overwrite` = 1: U overwrites `drive` (`membrane` is ignored); 2: S overwrites `drive` (`spikes` is
        ignored; inference). The step is then compiled with both rows the same array, so it still
        vectorises. Otherwise a `membrane` of one row `[1, N]` is a scratch row: U is not kept (inference).
        """
        steps, n_neurons = drive.shape
        blocks = (n_neurons + FORWARD_BLOCK - 1) // FORWARD_BLOCK
        one = drive.dtype.type(1)
        zero = drive.dtype.type(0)
        keep = membrane.shape[0] > 1 or steps == 1
        for blk in prange(blocks):
            lo = blk * FORWARD_BLOCK
            hi = min(n_neurons, lo + FORWARD_BLOCK)
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
                sp = spikes[n, lo:hi]
                if overwrite == 1:
                    _forward_row(d, d, sp, u, r, b, qq, gg, beta, has_norm, reset, one, zero)
                elif overwrite == 2:
                    _forward_row(d, membrane[n if keep else 0, lo:hi], d, u, r, b, qq, gg, beta, has_norm, reset, one, zero)
                else:
                    _forward_row(d, membrane[n if keep else 0, lo:hi], sp, u, r, b, qq, gg, beta, has_norm, reset, one, zero)

    @njit(cache=True, inline="always")
    def _exp_nonpositive_f32(y):
        """exp(y) for a float32 y ≤ 0 (relative error < 2e-7), in arithmetic LLVM vectorises.

        `math.exp` is a scalar libm call here (numba has no vector math library on this
        platform) and made up two thirds of the backward kernel's time. Cephes-style: y = n·ln2 + r
        with |r| ≤ ln2/2, exp(r) by its degree-7 Taylor polynomial in fused multiply-adds, 2^n from
        its exponent bits.
        """
        v = max(y, _F32_EXP_MIN)
        n = np.floor(v * _F32_LOG2E + _F32_HALF)
        r = _fma(n, _F32_NEG_LN2_LO, _fma(n, _F32_NEG_LN2_HI, v))
        p = _fma(_fma(_fma(_fma(_F32_C7, r, _F32_C6), r, _F32_C5), r, _F32_C4), r, _F32_C3)
        p = _fma(_fma(_fma(p, r, _F32_C2), r, _F32_C1), r, _F32_C0)
        return p * _pow2_f32(n)

    def _exp_nonpositive(y):
        """exp(y) for y ≤ 0: `_exp_nonpositive_f32` for float32 (vectorised), libm's for float64."""
        return math.exp(y)

    @overload(_exp_nonpositive)
    def _exp_nonpositive_typed(y):
        if y == types.float32:
            return lambda y: _exp_nonpositive_f32(y)
        return lambda y: math.exp(y)

    @njit(cache=True, inline="always")
    def _surrogate(x, code, a, one, half_pi):
        """Θ′(x) for the surrogate `code` (SURROGATE_CODES) of scale a; `one` and `half_pi` (π/2) in x's type.

        Called in the backward kernel's loops: LLVM moves the branch on `code` out of the loop, which vectorises.
        """
        if code == 0 or code == 1:
            e = _exp_nonpositive(-abs(a * x))
            return (a if code == 0 else one) * e / ((one + e) * (one + e))
        if code == 2:
            d = one + a * abs(x)
            return one / (d * d)
        if code == 3:
            return a * max(one - one, one - a * abs(x))
        z = half_pi * a * x
        return a / (one + one) / (one + z * z)

    @njit(cache=True, inline="always")
    def _step_gradient(g_spike, slope, inv_q, g_mem, beta, reset_slope, zero_spike, g_next):
        """(gS_tot·Θ′, gU[n]) of one neuron and step: gS_tot = gS[n] − β·(∂R[n]/∂S[n])·gU[n+1] and
        gU[n] = gS_tot·Θ′/q + β·gU[n+1] + gU_mem[n] − β·S[n]·gU[n+1] (the last term for zero reset only).

        `reset_slope` is ∂R[n]/∂S[n] (b·‖W‖² subtract, U[n] zero reset); `zero_spike` is S[n] for zero reset, else 0.
        """
        gx = (g_spike - beta * reset_slope * g_next) * slope
        return gx, gx * inv_q + beta * g_next + g_mem - zero_spike * beta * g_next

    @njit(parallel=True, cache=True, fastmath=_EXACT_FASTMATH)
    def lif_backward(g_spikes, g_membrane, membrane, current, beta, threshold, q, norm, reset, surrogate, scale,
                     channels, inner, u0, s0, g_u, part_beta, part_threshold, part_norm, accumulate):
        """Reverse scan: gU[n] = gS_tot[n]·Θ′/q + gU_mem[n] + carry[n]·gU[n+1]; per-neuron partial sums of dβ, db, d‖W‖².

        The spikes are recomputed from the membrane with the forward's arithmetic (U/q − b > 0), so
        the forward need not keep them. `g_spikes`, `g_membrane` and `current` are `[T, N]` or one
        zero row `[1, N]` when absent; q = ‖W‖² = 1 without normalisation. The loop body has no branch
        (the reset kind enters as 0/1 factors), so it vectorises; gradients agree with the
        reference to float rounding, not bit for bit. The partial sums are written only with
        `accumulate` (β, b or ‖W‖² needs its gradient): without, the scan costs about a quarter less and gU is the same.
        """
        steps, n_neurons = membrane.shape
        dt = membrane.dtype
        beta = dt.type(beta)
        scale = dt.type(scale)
        zero = dt.type(0)
        one = dt.type(1)
        half_pi = dt.type(math.pi / 2)
        k_sub = one if reset == 0 else zero  # R = b·‖W‖²·S
        k_zero = one if reset == 1 else zero  # R = U·S
        g_spk_rows = g_spikes.shape[0] > 1
        g_mem_rows = g_membrane.shape[0] > 1
        cur_rows = current.shape[0] > 1
        blocks = (n_neurons + BACKWARD_BLOCK - 1) // BACKWARD_BLOCK
        for blk in prange(blocks):
            lo = blk * BACKWARD_BLOCK
            hi = min(n_neurons, lo + BACKWARD_BLOCK)
            width = hi - lo
            b = np.empty(width, dt)
            qq = np.empty(width, dt)
            inv_q = np.empty(width, dt)
            nrm = np.empty(width, dt)
            gain = np.empty(width, dt)
            g_next = np.zeros(width, dt)
            acc_beta = np.zeros(width, dt)
            acc_b = np.zeros(width, dt)
            acc_n = np.zeros(width, dt)
            no_spikes = np.zeros(width, dt)
            slope = np.empty(width, dt)
            for i in range(width):
                ch = ((lo + i) // inner) % channels
                b[i] = threshold[ch]
                qq[i] = q[ch]
                inv_q[i] = 1 / q[ch]
                nrm[i] = norm[ch]
                gain[i] = b[i] * nrm[i]
            for n in range(steps - 1, -1, -1):
                mem = membrane[n, lo:hi]  # row slices: contiguous, so the loops vectorise
                gsp = g_spikes[n if g_spk_rows else 0, lo:hi]
                gmem = g_membrane[n if g_mem_rows else 0, lo:hi]
                cur = current[n if cur_rows else 0, lo:hi]
                gout = g_u[n, lo:hi]
                u_before = membrane[n - 1, lo:hi] if n > 0 else u0[lo:hi]  # U[n−1]
                # S[n−1] is recomputed from U[n−1] (eq. (5)) except at n = 0, where it is the given S[−1]: a 0/1 blend
                # rather than a branch, and inside the main loop rather than in a loop of its own, keeps it vectorised
                s_given = no_spikes if n > 0 else s0[lo:hi]
                k_given = zero if n > 0 else one
                if accumulate:  # Θ′ in a loop of its own: LLVM would not hoist the branch on `code` out of the long loop
                    for i in range(width):
                        slope[i] = _surrogate(mem[i] * inv_q[i] - b[i], surrogate, scale, one, half_pi)
                    for i in range(width):
                        un = mem[i]
                        up = u_before[i]
                        sp = k_given * s_given[i] + (one - k_given) * (one if up / qq[i] - b[i] > zero else zero)
                        g = g_next[i]
                        gx, gu = _step_gradient(gsp[i], slope[i], inv_q[i], gmem[i], beta, k_sub * gain[i] + k_zero * un,
                                                k_zero * (one if un / qq[i] - b[i] > zero else zero), g)
                        gout[i] = gu
                        g_next[i] = gu
                        acc_beta[i] += gu * (up - sp * (k_sub * gain[i] + k_zero * up) - cur[i])
                        acc_b[i] -= gx + k_sub * beta * nrm[i] * sp * gu
                        acc_n[i] -= gx * un * inv_q[i] * inv_q[i] + k_sub * beta * b[i] * sp * gu
                else:  # no parameter needs its gradient: gU only (the same arithmetic, so the same bits)
                    for i in range(width):
                        un = mem[i]
                        theta = _surrogate(un * inv_q[i] - b[i], surrogate, scale, one, half_pi)
                        _, gu = _step_gradient(gsp[i], theta, inv_q[i], gmem[i], beta, k_sub * gain[i] + k_zero * un,
                                               k_zero * (one if un / qq[i] - b[i] > zero else zero), g_next[i])
                        gout[i] = gu
                        g_next[i] = gu
            for i in range(width if accumulate else 0):
                part_beta[lo + i] = acc_beta[i]
                part_threshold[lo + i] = acc_b[i]
                part_norm[lo + i] = acc_n[i]

    @njit(parallel=True, cache=True)
    def channel_sums(parts, channels, inner, out):
        """out[k, c] = Σ over batch b and position l of parts[k, (b·C + c)·L + l], always in this order.

        Each (k, c) is one sequential sum, so the bits do not depend on the thread count.
        """
        kinds, n_neurons = parts.shape
        batch = n_neurons // (channels * inner)
        for kc in prange(kinds * channels):
            k = kc // channels
            c = kc - k * channels
            acc = parts.dtype.type(0)
            for b in range(batch):
                lo = (b * channels + c) * inner
                for i in range(inner):
                    acc += parts[k, lo + i]
            out[k, c] = acc
