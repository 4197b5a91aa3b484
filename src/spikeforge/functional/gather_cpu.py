"""Sums of weight rows picked by events, with the running sum in vector registers (for `events_cpu`).

An event-driven synapse adds, for every active input, one weight row to an output row. Written as
a numba loop (`acc[o] += v·W[k, o]`), the output row is loaded and stored again for every event,
so the kernel is bound by stores at about a fifth of the dense kernels' multiply-add rate. Here
the output row is held in up to eight vector registers across all the events that feed it (one or
more segments of events) and written once, which doubles the rate of the convolution's forward
pass at 10–50 % input density (benchmarks/EVENT-COSTS.md). numba cannot be
made to keep an array in registers, so the loop is written in LLVM IR (`numba.extending.intrinsic`):
compiled by numba's own LLVM at first use, no C compiler needed.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Bytes per vector register (AVX2) and the registers one block of the sum occupies (AVX2 has 16).
VECTOR_BYTES, BLOCK_VECTORS = 32, 8


def _lanes(dtype) -> int:
    return VECTOR_BYTES // (4 if dtype == types.float32 else 8)


def _block_kernel(vectors: int):
    """The intrinsic for blocks of `vectors` vector registers (8, 4, 2 or 1)."""

    @intrinsic
    def gather_block(typingctx, acc, acc_off, weight, w_col, ldw, seg_off, seg_start, seg_stop, segments, indices, values):
        """acc[acc_off + c] += Σ_s Σ_{seg_start[s] ≤ p < seg_stop[s]} values[p]·weight[seg_off[s] + indices[p]·ldw + w_col + c], c < vectors·lanes."""
        arrays = (acc, weight, seg_off, seg_start, seg_stop, indices, values)
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays) or not acc.dtype == weight.dtype == values.dtype:
            return None  # flat offsets need 1-D contiguous arrays of one float type
        sig = types.void(acc, acc_off, weight, w_col, ldw, seg_off, seg_start, seg_stop, segments, indices, values)

        def codegen(context, builder, signature, args):
            intp = context.get_value_type(types.intp)
            data = [context.make_array(t)(context, builder, a).data if isinstance(t, types.Array) else None
                    for t, a in zip(signature.args, args)]
            acc_off, w_col, ldw, segments = (context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 3, 4, 8))
            dtype = signature.args[0].dtype
            lanes = _lanes(dtype)
            vty = ir.VectorType(context.get_value_type(dtype), lanes)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                                 f"llvm.fma.v{lanes}f{32 if dtype == types.float32 else 64}")

            def at(ptr, offset):
                return builder.bitcast(builder.gep(ptr, [offset]), vty.as_pointer())

            def index(i, position):  # element `position` of integer array i, widened to intp
                value = builder.load(builder.gep(data[i], [position]))
                return builder.sext(value, intp) if value.type.width < intp.width else value

            offsets = [ir.Constant(intp, j * lanes) for j in range(vectors)]
            first = [builder.load(at(data[0], builder.add(acc_off, o)), align=1) for o in offsets]
            entry = builder.block
            seg_head, seg_body, ev_head, ev_body, seg_next, done = (
                builder.append_basic_block(n) for n in ("seg_head", "seg_body", "ev_head", "ev_body", "seg_next", "done"))
            builder.branch(seg_head)

            builder.position_at_end(seg_head)  # for s in range(segments)
            s = builder.phi(intp)
            s_acc = [builder.phi(vty) for _ in offsets]
            s.add_incoming(ir.Constant(intp, 0), entry)
            for a, f in zip(s_acc, first):
                a.add_incoming(f, entry)
            builder.cbranch(builder.icmp_signed("<", s, segments), seg_body, done)

            builder.position_at_end(seg_body)
            base, start, stop = (index(i, s) for i in (5, 6, 7))
            base = builder.add(base, w_col)
            builder.branch(ev_head)

            builder.position_at_end(ev_head)  # for p in range(start, stop)
            p = builder.phi(intp)
            p_acc = [builder.phi(vty) for _ in offsets]
            p.add_incoming(start, seg_body)
            for a, b in zip(p_acc, s_acc):
                a.add_incoming(b, seg_body)
            builder.cbranch(builder.icmp_signed("<", p, stop), ev_body, seg_next)

            builder.position_at_end(ev_body)
            row = builder.add(base, builder.mul(index(9, p), ldw))
            value = builder.load(builder.gep(data[10], [p]))
            splat = builder.shuffle_vector(builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)),
                                           ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
            summed = [builder.call(fma, [splat, builder.load(at(data[2], builder.add(row, o)), align=1), a]) for a, o in zip(p_acc, offsets)]
            p.add_incoming(builder.add(p, ir.Constant(intp, 1)), ev_body)
            for a, n in zip(p_acc, summed):
                a.add_incoming(n, ev_body)
            builder.branch(ev_head)

            builder.position_at_end(seg_next)
            s.add_incoming(builder.add(s, ir.Constant(intp, 1)), seg_next)
            for a, b in zip(s_acc, p_acc):
                a.add_incoming(b, seg_next)
            builder.branch(seg_head)

            builder.position_at_end(done)
            for a, o in zip(s_acc, offsets):
                builder.store(a, at(data[0], builder.add(acc_off, o)), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return gather_block


_BLOCK8, _BLOCK4, _BLOCK2, _BLOCK1 = (_block_kernel(v) for v in (8, 4, 2, 1))


@njit(cache=True, inline="always")
def gather_rows(acc, acc_off, width, weight, ldw, seg_off, seg_start, seg_stop, segments, indices, values):
    """acc[acc_off : acc_off + width] += Σ over the segments' events p of values[p]·weight[seg_off[s] + indices[p]·ldw : … + width].

    Blocks of 8, 4, 2, 1 vector registers, then single lanes; each block sums every event (fused multiply-add).
    """
    lanes = VECTOR_BYTES // acc.itemsize
    c = 0
    while width - c >= BLOCK_VECTORS * lanes:
        _BLOCK8(acc, acc_off + c, weight, c, ldw, seg_off, seg_start, seg_stop, segments, indices, values)
        c += BLOCK_VECTORS * lanes
    if width - c >= 4 * lanes:
        _BLOCK4(acc, acc_off + c, weight, c, ldw, seg_off, seg_start, seg_stop, segments, indices, values)
        c += 4 * lanes
    if width - c >= 2 * lanes:
        _BLOCK2(acc, acc_off + c, weight, c, ldw, seg_off, seg_start, seg_stop, segments, indices, values)
        c += 2 * lanes
    if width - c >= lanes:
        _BLOCK1(acc, acc_off + c, weight, c, ldw, seg_off, seg_start, seg_stop, segments, indices, values)
        c += lanes
    for o in range(c, width):
        total = acc[acc_off + o]
        for s in range(segments):
            for p in range(seg_start[s], seg_stop[s]):
                total += values[p] * weight[seg_off[s] + indices[p] * ldw + o]
        acc[acc_off + o] = total
