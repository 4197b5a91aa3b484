"""Compiled CPU kernels for event-driven synapses: work only where the input is nonzero.

A spiking layer's input is binary and sparse (a trained KWS net fires at 2–7 % of
neuron-steps, low-activity paper §9), so W·S[n] is the sum of the weight columns of the
active inputs, and the weight gradient Σ_n gI[n]·S[n]ᵀ needs only the rows of active
inputs. Dense BLAS/oneDNN kernels cannot skip the zeros; these do, with the same result up
to float rounding. The input is first turned into compressed rows (CSR: for every row m,
the column indices and values of its nonzero entries), which is also what backward keeps
instead of the dense input.

Conventions: rows are flattened time × batch `m = t·B + b`; W is handed over transposed
(`[in, out]`, output contiguous) so that every event adds one contiguous vector. The inner
loops index the arrays in full (`acc[f, o]`), not through row views: a view costs a reference
count per event, which made the kernels 4× slower.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit, prange
except ImportError:  # pragma: no cover - numba comes with librosa; dense PyTorch is the fallback
    njit = None

available = njit is not None

if available:

    @njit(parallel=True, cache=True)
    def compress_rows(x, parts, capacity, counts, indices, values, filled):
        """One pass over x `[M, K]`: part p of the rows writes the column indices and values of its nonzero
        entries from p·capacity on, counts[m] per row; filled[p] = how many, or −1 if they may not fit
        (`capacity` must leave room for one row more than the part may hold)."""
        rows, width = x.shape
        for p in prange(parts):
            at = p * capacity
            end = at + capacity
            filled[p] = -1
            for m in range(p * rows // parts, (p + 1) * rows // parts):
                if at + width > end:  # the row might not fit
                    break
                start = at
                for k in range(width):  # branch-free: write always, advance on a nonzero (4× faster at 5 %)
                    v = x[m, k]
                    indices[at] = k
                    values[at] = v
                    at += v != 0
                counts[m] = at - start
            else:
                filled[p] = at - p * capacity

    @njit(parallel=True, cache=True)
    def linear_forward(indptr, indices, values, weight_t, out):
        """out[m, :] = Σ_p values[p]·Wᵀ[indices[p], :] over the events p of row m (I = W·S, report eq. 5.2)."""
        for m in prange(out.shape[0]):
            out[m, :] = 0
            for p in range(indptr[m], indptr[m + 1]):
                v = values[p]
                k = indices[p]
                for o in range(out.shape[1]):
                    out[m, o] += v * weight_t[k, o]

    @njit(parallel=True, cache=True)
    def linear_weight_grad(indptr, indices, values, g_out, parts):
        """parts[c, k, :] = Σ over rows m of chunk c, events (m, k): value·gI[m, :]; Σ_c parts = (gIᵀ·S)ᵀ."""
        chunks, width, n_out = parts.shape
        rows = g_out.shape[0]
        for c in prange(chunks):
            acc = np.zeros((width, n_out), parts.dtype)
            for m in range(c * rows // chunks, (c + 1) * rows // chunks):
                for p in range(indptr[m], indptr[m + 1]):
                    v = values[p]
                    k = indices[p]
                    for o in range(n_out):
                        acc[k, o] += v * g_out[m, o]
            parts[c] = acc

    @njit(cache=True, inline="always")
    def _source_row(m, kt, batch, reach, time_dilation):
        """The input row (t_in·B + b) that tap kt of output row m = t·B + b reads, or −1 before the sequence."""
        t = m // batch
        t_in = t - reach + kt * time_dilation
        return t_in * batch + (m - t * batch) if t_in >= 0 else -1

    @njit(cache=True, inline="always")
    def _event(indices, values, p, width):
        """(input channel, position, value) of event p, whose index is ci·width + f_in."""
        j = indices[p]
        ci = j // width
        return ci, j - ci * width, values[p]

    @njit(parallel=True, cache=True)
    def conv_forward(indptr, indices, values, weight_t, batch, width, reach, time_dilation, pad, dilation, out):
        """Causal time × 1-D conv of the events: out[t, b, :, f] = Σ W[:, ci, kt, kf]·x[t − reach + kt·dt, b, ci, f + kf·df − pad].

        Events are rows m = t·B + b with index j = ci·width + f; `weight_t` is `[KT, KF, C_in, C_out]`;
        out `[T·B, C_out, F_out]` is overwritten. Each output row is summed in a channels-last scratch `[F_out, C_out]`
        (contiguous adds per event), then transposed into place.
        """
        kt_n, kf_n, _, c_out = weight_t.shape
        f_out = out.shape[2]
        for m in prange(out.shape[0]):
            acc = np.zeros((f_out, c_out), out.dtype)
            for kt in range(kt_n):
                row = _source_row(m, kt, batch, reach, time_dilation)
                if row < 0:
                    continue
                for p in range(indptr[row], indptr[row + 1]):
                    ci, f_in, v = _event(indices, values, p, width)
                    for kf in range(kf_n):
                        f = f_in + pad - kf * dilation
                        if 0 <= f < f_out:
                            for o in range(c_out):
                                acc[f, o] += v * weight_t[kt, kf, ci, o]
            for o in range(c_out):
                for f in range(f_out):
                    out[m, o, f] = acc[f, o]

    @njit(parallel=True, cache=True)
    def conv_weight_grad(indptr, indices, values, g_out, batch, width, reach, time_dilation, pad, dilation, scratch, parts):
        """parts[c, kt, kf, ci, :] = Σ over output rows of chunk c: x[t_in, b, ci, f_in]·gI[t, b, :, f] (the pairs of conv_forward).

        `scratch` `[chunks, F_out, C_out]` holds each output row of gI transposed to channels-last;
        the sums run in a local array (4× faster than accumulating into `parts` in place).
        """
        chunks, kt_n, kf_n, c_in, c_out = parts.shape
        rows, _, f_out = g_out.shape
        for c in prange(chunks):
            acc = np.zeros((kt_n, kf_n, c_in, c_out), parts.dtype)
            for m in range(c * rows // chunks, (c + 1) * rows // chunks):
                for o in range(c_out):
                    for f in range(f_out):
                        scratch[c, f, o] = g_out[m, o, f]
                for kt in range(kt_n):
                    row = _source_row(m, kt, batch, reach, time_dilation)
                    if row < 0:
                        continue
                    for p in range(indptr[row], indptr[row + 1]):
                        ci, f_in, v = _event(indices, values, p, width)
                        for kf in range(kf_n):
                            f = f_in + pad - kf * dilation
                            if 0 <= f < f_out:
                                for o in range(c_out):
                                    acc[kt, kf, ci, o] += v * scratch[c, f, o]
            parts[c] = acc

    @njit(parallel=True, cache=True)
    def sum_chunks(parts, out):
        """out[j] = parts[0, j] + parts[1, j] + … in chunk order: the same bits on any thread count."""
        chunks, size = parts.shape
        for j in prange(size):
            acc = parts[0, j]
            for c in range(1, chunks):
                acc += parts[c, j]
            out[j] = acc
