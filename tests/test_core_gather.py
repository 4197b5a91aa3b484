"""The register-held gather-sum of weight rows (functional.gather_cpu) against a NumPy reference."""

import numpy as np
import pytest

from spikeforge.functional.gather_cpu import gather_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 3, 4, 8, 13, 32, 64, 100, 130])
def test_gather_rows_sums_the_rows_of_every_segment(dtype, width):
    rng = np.random.default_rng(width)
    ldw, rows = width + 5, 40
    weight = rng.standard_normal(rows * ldw + 50).astype(dtype)
    indices = rng.integers(0, rows - 2, 60).astype(np.int32)
    values = rng.standard_normal(60).astype(dtype)
    seg_off = np.array([0, 7, 2 * ldw + 3, 11], np.int64)  # an offset, then an empty segment, then one event
    start = np.array([0, 25, 25, 59], np.int64)
    stop = np.array([25, 25, 58, 60], np.int64)
    acc = rng.standard_normal(width + 9).astype(dtype)
    expected = acc.astype(np.float64)
    for off, p0, p1 in zip(seg_off, start, stop):
        for p in range(p0, p1):
            expected[6 : 6 + width] += float(values[p]) * weight[off + indices[p] * ldw : off + indices[p] * ldw + width]
    gather_rows(acc, 6, width, weight, ldw, seg_off, start, stop, 4, indices, values)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(acc, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(acc[:6], expected[:6].astype(dtype))  # nothing outside the row is touched
    np.testing.assert_array_equal(acc[6 + width :], expected[6 + width :].astype(dtype))


def test_gather_rows_with_no_segments_leaves_the_row_as_it_was():
    acc = np.arange(70, dtype=np.float32)
    empty = np.zeros(0, np.int64)
    gather_rows(acc, 3, 64, np.ones(100, np.float32), 1, empty, empty, empty, 0, np.zeros(0, np.int32), np.zeros(0, np.float32))
    np.testing.assert_array_equal(acc, np.arange(70, dtype=np.float32))
