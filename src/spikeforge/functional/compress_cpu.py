"""Compression of a contiguous run of float32 entries into (index, value) pairs of its nonzero ones, 8 at a time.

`events_cpu.compress_rows` takes one entry per loop iteration, and its write position depends on the
previous entry: about 1.5 ns an entry on one core, whatever the density (7 ms for the 19 200 × 256
spikes of model B's second layer). Here eight entries are compared with zero at once, the comparison's
bit mask picks a permutation from a table of 256 that moves the nonzero lanes to the front, and the
moved values and their indices are stored as one vector each, the position advancing by the number of
nonzero lanes: no branch on the data, 2.3 ms for the same spikes at any density (AVX2 `vpermps`).
Written in LLVM IR (`numba.extending.intrinsic`) because numba cannot express the permute. The
permute exists only on x86 with AVX2 and is used for float32 only: elsewhere `vector_groups` is 0 and
the caller's scalar loop takes every entry.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

LANES = 8


def _target_has_avx2() -> bool:
    """Whether numba compiles for a CPU with AVX2 (the host, unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES say otherwise)."""
    if config.CPU_NAME not in (None, "host"):
        return "+avx2" in (config.CPU_FEATURES or "").split(",")
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("avx2", False))


AVX2 = _target_has_avx2()

#: PERMUTATIONS[mask] lists the lanes whose bit is set in `mask`, in order, then zeros (lanes past the count are scratch).
PERMUTATIONS = np.zeros((1 << LANES, LANES), np.int32)
for _mask in range(1 << LANES):
    _lanes = [j for j in range(LANES) if _mask >> j & 1]
    PERMUTATIONS[_mask, : len(_lanes)] = _lanes


def vector_groups(x: np.ndarray) -> int:
    """How many groups of 8 leading entries of each row of x `[..., K]` `compress_groups` takes: K // 8 where it can, else 0."""
    return x.shape[-1] // LANES if AVX2 and x.flags.c_contiguous and x.dtype == np.float32 else 0


@intrinsic
def compress_groups(typingctx, x, x_off, groups, indices, values, at, permutations):
    """Append (k, x[x_off + k]) for every nonzero x[x_off + k], k < 8·groups, at indices/values[at:]; returns the new `at`.

    Each group of 8 stores 8 lanes at `at` (those past its nonzero count are overwritten by the next
    group or left as scratch), so the arrays need 8 entries of room beyond the last pair. Where
    `vector_groups` is 0 (no AVX2, not float32) it compiles to `return at` and must get groups = 0.
    """
    arrays = (x, indices, values, permutations)
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays):
        return None  # flat contiguous arrays and offsets
    vector = AVX2 and x.dtype == values.dtype == types.float32 and indices.dtype == permutations.dtype == types.int32
    sig = types.intp(x, x_off, groups, indices, values, at, permutations)

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        if not vector:
            return context.cast(builder, args[5], signature.args[5], types.intp)
        i8, i32 = ir.IntType(LANES), ir.IntType(32)
        x_data, index_data, value_data, table = (
            context.make_array(signature.args[i])(context, builder, args[i]).data for i in (0, 3, 4, 6))
        x_off, groups, at0 = (context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 2, 5))
        fvec, ivec = ir.VectorType(ir.FloatType(), LANES), ir.VectorType(i32, LANES)
        permps = cgutils.get_or_insert_function(builder.module, ir.FunctionType(fvec, [fvec, ivec]), "llvm.x86.avx2.permps")
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i8, [i8]), f"llvm.ctpop.i{LANES}")

        def vector_at(data, offset, vty):
            return builder.bitcast(builder.gep(data, [offset]), vty.as_pointer())

        entry = builder.block
        head, body, done = (builder.append_basic_block(n) for n in ("head", "body", "done"))
        builder.branch(head)

        builder.position_at_end(head)  # for g in range(groups)
        g, at = builder.phi(intp), builder.phi(intp)
        g.add_incoming(ir.Constant(intp, 0), entry)
        at.add_incoming(at0, entry)
        builder.cbranch(builder.icmp_signed("<", g, groups), body, done)

        builder.position_at_end(body)
        base = builder.mul(g, ir.Constant(intp, LANES))
        v = builder.load(vector_at(x_data, builder.add(x_off, base), fvec), align=1)
        mask = builder.bitcast(builder.fcmp_unordered("!=", v, ir.Constant(fvec, [0.0] * LANES)), i8)  # NaN counts as nonzero
        lanes = builder.load(vector_at(table, builder.mul(builder.zext(mask, intp), ir.Constant(intp, LANES)), ivec), align=4)
        base32 = builder.trunc(base, i32)
        splat = builder.shuffle_vector(builder.insert_element(ir.Constant(ivec, ir.Undefined), base32, ir.Constant(i32, 0)),
                                       ir.Constant(ivec, ir.Undefined), ir.Constant(ivec, [0] * LANES))
        builder.store(builder.call(permps, [v, lanes]), vector_at(value_data, at, fvec), align=1)
        builder.store(builder.add(lanes, splat), vector_at(index_data, at, ivec), align=1)
        g.add_incoming(builder.add(g, ir.Constant(intp, 1)), body)
        at.add_incoming(builder.add(at, builder.zext(builder.call(ctpop, [mask]), intp)), body)
        builder.branch(head)

        builder.position_at_end(done)
        return at

    return sig, codegen
