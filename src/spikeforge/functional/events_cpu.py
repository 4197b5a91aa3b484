"""Compiled CPU kernels for event-driven synapses: work only where the input is nonzero.

A spiking layer's input is binary and sparse (a trained KWS net fires at 2–7 % of
neuron-steps, low-activity paper §9), so W·S[n] is the sum of the weight columns of the
active inputs, and the weight gradient Σ_n gI[n]·S[n]ᵀ needs only the rows of active
inputs. Dense BLAS/oneDNN kernels cannot skip the zeros; these do, with the same result up
to float rounding. The input is first turned into compressed rows (CSR: for every row m,
the column indices and values of its nonzero entries), which is also what backward keeps
instead of the dense input.

Conventions: rows are flattened time × batch `m = t·B + b` (a convolution's input: positions
`m·F + f`, whose entries are the channels); W is handed over transposed (`[in, out]`, output
contiguous) so that every event adds one contiguous vector. The forward passes sum those vectors in
registers (`gather_cpu`). The other inner
loops index the arrays in full (`acc[f, o]`), not through row views: a view costs a reference
count per event, which made the kernels 4× slower.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit, prange

    from spikeforge.functional.compress_cpu import LANES, PERMUTATIONS, compress_groups
    from spikeforge.functional.gather_cpu import gather_rows, gather_rows_fresh

    PERMUTATIONS_FLAT = PERMUTATIONS.reshape(-1)
except ImportError:  # pragma: no cover - numba comes with librosa; dense PyTorch is the fallback
    njit = None

available = njit is not None

if available:

    @njit(parallel=True, cache=True)
    def compress_rows(x, flat, groups, parts, capacity, counts, indices, values, filled):
        """One pass over x `[M, A, K]` (any strides), as rows r = m·A + a of K entries: part p of the rows writes
        the indices k and values of its nonzero entries from p·capacity on, counts[r] per row; filled[p] = how
        many, or −1 if they may not fit (`capacity` must leave room for one row more than the part may hold).

        The first 8·`groups` entries of each row go 8 at a time (`compress_cpu.compress_groups`) from `flat`, x
        as one contiguous vector (unused where groups = 0); the rest one by one.
        """
        outer, inner, width = x.shape
        rows = outer * inner
        for p in prange(parts):
            at = p * capacity
            end = at + capacity
            filled[p] = -1
            for r in range(p * rows // parts, (p + 1) * rows // parts):
                if at + width > end:  # the row might not fit
                    break
                m = r // inner
                a = r - m * inner
                start = at
                at = compress_groups(flat, r * width, groups, indices, values, at, PERMUTATIONS_FLAT)
                for k in range(groups * LANES, width):  # branch-free: write always, advance on a nonzero (4× faster at 5 %)
                    v = x[m, a, k]
                    indices[at] = k
                    values[at] = v
                    at += v != 0
                counts[r] = at - start
            else:
                filled[p] = at - p * capacity

    @njit(parallel=True, cache=True)
    def linear_forward(indptr, indices, values, weight_t, out):
        """out[m, :] = Σ_p values[p]·Wᵀ[indices[p], :] over the events p of row m (I = W·S, report eq. 5.2); W and out flat."""
        rows = indptr.shape[0] - 1
        n_out = out.shape[0] // rows
        for m in prange(rows):
            gather_rows_fresh(out, m * n_out, n_out, weight_t, 0, n_out, indptr[m], indptr[m + 1], indices, values)

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

    # Dense backward kernels for a linear layer with few outputs (fewer than `events.LINEAR_MIN_OUTPUTS`, e.g. a
    # classifier's last layer): its input gradient on either path, its weight gradient where the input is too dense
    # for the events. MKL's skinny products for these run far below its rate (256 → 11 over 19 200 rows: 3–7 ms each
    # on one core, the weight gradient slower on two threads than on one). Each output element is one sequential sum
    # in an order fixed by the shapes (no fast-math: a process that compiled a kernel and one that loaded it from the
    # cache must agree), so the bits do not depend on the thread count or on the process.

    @njit(parallel=True, cache=True)
    def narrow_input_grad(g_out, weight, g_x):
        """g_x[m, :] = Σ_k gI[m, k]·W[k, :], k ascending (dS = gI·W): each row summed in registers (`gather_rows_fresh`)."""
        rows, width = g_x.shape
        n_out = weight.shape[0]
        every_k = np.arange(n_out).astype(np.int32)
        flat_w, flat_x = weight.reshape(-1), g_x.reshape(-1)
        for m in prange(rows):
            gather_rows_fresh(flat_x, m * width, width, flat_w, 0, width, 0, n_out, every_k, g_out[m])

    @njit(parallel=True, cache=True)
    def narrow_weight_grad(g_out, x, parts):
        """parts[c, k, :] = Σ over rows m of chunk c of gI[m, k]·x[m, :]; Σ_c parts = gIᵀ·x = dW."""
        chunks, n_out, width = parts.shape
        rows = x.shape[0]
        for c in prange(chunks):
            acc = np.zeros((n_out, width), parts.dtype)
            for m in range(c * rows // chunks, (c + 1) * rows // chunks):
                for k in range(n_out):
                    v = g_out[m, k]
                    for j in range(width):
                        acc[k, j] += v * x[m, j]
            parts[c] = acc

    @njit(cache=True, inline="always")
    def _source_row(m, kt, batch, reach, time_dilation):
        """The input row (t_in·B + b) that tap kt of output row m = t·B + b reads, or −1 before the sequence."""
        t = m // batch
        t_in = t - reach + kt * time_dilation
        return t_in * batch + (m - t * batch) if t_in >= 0 else -1

    @njit(parallel=True, cache=True)
    def conv_forward(indptr, indices, values, weight_t, taps, c_in, batch, width, reach, time_dilation, pad, dilation, out):
        """Causal time × 1-D conv of the events: out[t, b, :, f] = Σ W[:, ci, kt, kf]·x[t − reach + kt·dt, b, ci, f + kf·df − pad].

        Events are grouped by input position: the channels ci of position (m = t·B + b, f_in) are at
        indptr[m·width + f_in] : indptr[m·width + f_in + 1]. `weight_t` is `[KT, KF, C_in, C_out]` flat
        (`taps` = (KT, KF)); out `[T·B, C_out, F_out]` is overwritten. Per output row m, tap by tap, each output
        position sums the weight rows of its events under that tap in registers (`gather_cpu`) into a
        channels-last scratch `[F_out, C_out]`, transposed into place at the end. Tap by tap, the tap's weights
        (C_in·C_out values) stay in the L1 cache across the row's positions; position by position over all taps,
        they were read from L2 for every event (1.25–1.6× slower at 2–30 % input density, model A's layers).
        Each position's sum runs over the taps in the same order either way, so the bits are the same.
        """
        kt_n, kf_n = taps
        rows, c_out, f_out = out.shape
        for m in prange(rows):
            acc = np.zeros(f_out * c_out, out.dtype)
            for kt in range(kt_n):
                row = _source_row(m, kt, batch, reach, time_dilation)
                if row < 0:
                    continue
                for kf in range(kf_n):
                    tap = (kt * kf_n + kf) * c_in * c_out
                    shift = kf * dilation - pad  # f_in = f + shift, inside [0, width)
                    for f in range(max(0, -shift), min(f_out, width - shift)):
                        start = indptr[row * width + f + shift]
                        stop = indptr[row * width + f + shift + 1]
                        if start < stop:
                            gather_rows(acc, f * c_out, c_out, weight_t, tap, c_out, start, stop, indices, values)
            for o in range(c_out):
                for f in range(f_out):
                    out[m, o, f] = acc[f * c_out + o]

    @njit(parallel=True, cache=True)
    def positions_to_channels(indptr, indices, values, width, c_in, channel_ptr, positions, channel_values):
        """The events grouped by input channel within each row m: those of (m, ci) are at channel_ptr[m·C_in + ci] :
        channel_ptr[m·C_in + ci + 1], with their positions f_in (a counting sort of each row of `conv_forward`'s layout)."""
        rows = (indptr.shape[0] - 1) // width
        channel_ptr[rows * c_in] = indptr[rows * width]
        for m in prange(rows):
            base = indptr[m * width]
            counts = np.zeros(c_in + 1, np.int64)
            for p in range(base, indptr[(m + 1) * width]):
                counts[indices[p] + 1] += 1
            for ci in range(c_in):
                counts[ci + 1] += counts[ci]
                channel_ptr[m * c_in + ci] = base + counts[ci]
            for f_in in range(width):
                for p in range(indptr[m * width + f_in], indptr[m * width + f_in + 1]):
                    q = base + counts[indices[p]]
                    counts[indices[p]] += 1
                    positions[q] = f_in
                    channel_values[q] = values[p]

    @njit(parallel=True, cache=True)
    def conv_weight_grad(channel_ptr, positions, values, g_out, batch, reach, time_dilation, pad, dilation, parts):
        """parts[c, kt, kf, ci, :] = Σ over output rows of chunk c: x[t_in, b, ci, f_in]·gI[t, b, :, f] (the pairs of conv_forward).

        Events grouped by channel (`positions_to_channels`). Each output row of gI is laid out channels-last in a
        scratch with zero rows around it (a tap that falls off the edge reads zeros), so the events of one
        (tap, channel) are a gather-sum of scratch rows into one row of the gradient (`gather_cpu`).
        """
        chunks, kt_n, kf_n, c_in, c_out = parts.shape
        rows, _, f_out = g_out.shape
        low = (kf_n - 1) * dilation  # scratch row of f is f + low
        width = f_out - 2 * pad + low  # of the input: the taps read f = f_in + pad − kf·df in [pad − low, width − 1 + pad]
        extent = low + max(f_out, width + pad)  # room for gI's rows and for every row a tap reads
        for c in prange(chunks):
            acc = np.zeros(kt_n * kf_n * c_in * c_out, parts.dtype)
            scratch = np.zeros(extent * c_out, parts.dtype)
            for m in range(c * rows // chunks, (c + 1) * rows // chunks):
                for o in range(c_out):
                    for f in range(f_out):
                        scratch[(f + low) * c_out + o] = g_out[m, o, f]
                for kt in range(kt_n):
                    row = _source_row(m, kt, batch, reach, time_dilation)
                    if row < 0:
                        continue
                    for ci in range(c_in):
                        start = channel_ptr[row * c_in + ci]
                        stop = channel_ptr[row * c_in + ci + 1]
                        if start == stop:
                            continue
                        for kf in range(kf_n):  # the scratch row of f = f_in + pad − kf·df
                            gather_rows(acc, ((kt * kf_n + kf) * c_in + ci) * c_out, c_out, scratch,
                                        (pad - kf * dilation + low) * c_out, c_out, start, stop, positions, values)
            parts[c] = acc.reshape(kt_n, kf_n, c_in, c_out)

    @njit(parallel=True, cache=True)
    def sum_chunks(parts, out):
        """out[j] = parts[0, j] + parts[1, j] + … in chunk order: the same bits on any thread count."""
        chunks, size = parts.shape
        for j in prange(size):
            acc = parts[0, j]
            for c in range(1, chunks):
                acc += parts[c, j]
            out[j] = acc
