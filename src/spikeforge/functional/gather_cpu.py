"""Sums of weight rows picked by events, with the running sum in vector registers (for `events_cpu`).

An event-driven synapse adds, for every active input, one weight row to an output row. Written as
a numba loop (`acc[o] += v·W[k, o]`), the output row is loaded and stored again for every event,
so the kernel is bound by stores at about a fifth of the dense kernels' multiply-add rate. Here
the output row is held in up to eight vector registers across a run of events that feed it (e.g.
those of one input position under one tap of a convolution) and written once, which doubles the rate
of the convolution's forward pass at 10–50 % input density (benchmarks/EVENT-COSTS.md). numba cannot
be made to keep an array in registers, so the loop is written in LLVM IR (`numba.extending.intrinsic`):
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


def _block_kernel(vectors: int, fresh: bool):
    """The intrinsic for blocks of `vectors` vector registers (8, 4, 2 or 1); `fresh`: the sum starts from 0, not from acc."""

    @intrinsic
    def gather_block(typingctx, acc, acc_off, weight, w_off, ldw, start, stop, indices, values):
        """acc[acc_off + c] (+)= Σ_{start ≤ p < stop} values[p]·weight[w_off + indices[p]·ldw + c], c < vectors·lanes."""
        arrays = (acc, weight, indices, values)
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays) or not acc.dtype == weight.dtype == values.dtype:
            return None  # flat offsets need 1-D contiguous arrays of one float type
        sig = types.void(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)

        def codegen(context, builder, signature, args):
            intp = context.get_value_type(types.intp)
            acc_data, weight_data, index_data, value_data = (
                context.make_array(signature.args[i])(context, builder, args[i]).data for i in (0, 2, 7, 8))
            acc_off, w_off, ldw, start, stop = (context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 3, 4, 5, 6))
            dtype = signature.args[0].dtype
            lanes = _lanes(dtype)
            vty = ir.VectorType(context.get_value_type(dtype), lanes)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                                 f"llvm.fma.v{lanes}f{32 if dtype == types.float32 else 64}")

            def at(ptr, offset):
                return builder.bitcast(builder.gep(ptr, [offset]), vty.as_pointer())

            offsets = [ir.Constant(intp, j * lanes) for j in range(vectors)]
            first = [ir.Constant(vty, [0.0] * lanes) if fresh else builder.load(at(acc_data, builder.add(acc_off, o)), align=1)
                     for o in offsets]
            entry = builder.block
            head, body, done = (builder.append_basic_block(n) for n in ("head", "body", "done"))
            builder.branch(head)

            builder.position_at_end(head)  # for p in range(start, stop)
            p = builder.phi(intp)
            sums = [builder.phi(vty) for _ in offsets]
            p.add_incoming(start, entry)
            for a, f in zip(sums, first):
                a.add_incoming(f, entry)
            builder.cbranch(builder.icmp_signed("<", p, stop), body, done)

            builder.position_at_end(body)
            index = builder.load(builder.gep(index_data, [p]))
            if index.type.width < intp.width:
                index = builder.sext(index, intp)
            row = builder.add(w_off, builder.mul(index, ldw))
            value = builder.load(builder.gep(value_data, [p]))
            splat = builder.shuffle_vector(builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)),
                                           ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
            summed = [builder.call(fma, [splat, builder.load(at(weight_data, builder.add(row, o)), align=1), a]) for a, o in zip(sums, offsets)]
            p.add_incoming(builder.add(p, ir.Constant(intp, 1)), body)
            for a, n in zip(sums, summed):
                a.add_incoming(n, body)
            builder.branch(head)

            builder.position_at_end(done)
            for a, o in zip(sums, offsets):
                builder.store(a, at(acc_data, builder.add(acc_off, o)), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return gather_block


_ADD8, _ADD4, _ADD2, _ADD1 = (_block_kernel(v, False) for v in (8, 4, 2, 1))
_SET8, _SET4, _SET2, _SET1 = (_block_kernel(v, True) for v in (8, 4, 2, 1))


@njit(cache=True, inline="always")
def _block(vectors, fresh, acc, acc_off, weight, w_off, ldw, start, stop, indices, values):
    """The block kernel of `vectors` registers (8, 4, 2, 1) that adds to acc, or with `fresh` overwrites it."""
    if vectors == 8:
        if fresh:
            _SET8(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
        else:
            _ADD8(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
    elif vectors == 4:
        if fresh:
            _SET4(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
        else:
            _ADD4(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
    elif vectors == 2:
        if fresh:
            _SET2(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
        else:
            _ADD2(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
    elif fresh:
        _SET1(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)
    else:
        _ADD1(acc, acc_off, weight, w_off, ldw, start, stop, indices, values)


@njit(cache=True, inline="always")
def _gather(fresh, acc, acc_off, width, weight, w_off, ldw, start, stop, indices, values):
    """`gather_rows` (`fresh` False) and `gather_rows_fresh` (True)."""
    lanes = VECTOR_BYTES // acc.itemsize
    c = 0
    while width - c >= BLOCK_VECTORS * lanes:
        _block(8, fresh, acc, acc_off + c, weight, w_off + c, ldw, start, stop, indices, values)
        c += BLOCK_VECTORS * lanes
    for vectors in (4, 2, 1):
        if width - c >= vectors * lanes:
            _block(vectors, fresh, acc, acc_off + c, weight, w_off + c, ldw, start, stop, indices, values)
            c += vectors * lanes
    for o in range(c, width):
        total = acc.dtype.type(0) if fresh else acc[acc_off + o]
        for p in range(start, stop):
            total += values[p] * weight[w_off + indices[p] * ldw + o]
        acc[acc_off + o] = total


@njit(cache=True, inline="always")
def gather_rows(acc, acc_off, width, weight, w_off, ldw, start, stop, indices, values):
    """acc[acc_off : acc_off + width] += Σ_{start ≤ p < stop} values[p]·weight[w_off + indices[p]·ldw : … + width].

    Blocks of 8, 4, 2, 1 vector registers, then single lanes; each block sums every event (fused multiply-add).
    """
    _gather(False, acc, acc_off, width, weight, w_off, ldw, start, stop, indices, values)


@njit(cache=True, inline="always")
def gather_rows_fresh(acc, acc_off, width, weight, w_off, ldw, start, stop, indices, values):
    """As `gather_rows`, but acc's old values are not read: acc[acc_off : acc_off + width] = Σ … (no zeroing pass before)."""
    _gather(True, acc, acc_off, width, weight, w_off, ldw, start, stop, indices, values)
