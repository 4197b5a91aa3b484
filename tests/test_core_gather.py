"""The register-held gather-sum of weight rows (functional.gather_cpu) against a NumPy reference."""

import numpy as np
import pytest

from spikeforge.functional.gather_cpu import gather_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 3, 4, 8, 13, 32, 64, 100, 130])
def test_gather_rows_sums_the_rows_of_the_events(dtype, width):
    rng = np.random.default_rng(width)
    ldw, rows, w_off = width + 5, 40, 7
    weight = rng.standard_normal(rows * ldw + 50).astype(dtype)
    indices = rng.integers(0, rows - 2, 60).astype(np.int32)
    values = rng.standard_normal(60).astype(dtype)
    start, stop = 4, 57
    acc = rng.standard_normal(width + 9).astype(dtype)
    expected = acc.astype(np.float64)
    for p in range(start, stop):
        row = w_off + indices[p] * ldw
        expected[6 : 6 + width] += float(values[p]) * weight[row : row + width]
    gather_rows(acc, 6, width, weight, w_off, ldw, start, stop, indices, values)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(acc, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(acc[:6], expected[:6].astype(dtype))  # nothing outside the row is touched
    np.testing.assert_array_equal(acc[6 + width :], expected[6 + width :].astype(dtype))


def test_gather_rows_sums_in_event_order_with_fused_multiply_adds():
    """Each output element is one chain of fused multiply-adds over the events in order (the bits the event kernels rely on)."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal(64 * 20).astype(np.float32)
    indices = rng.integers(0, 20, 30).astype(np.int32)
    values = rng.standard_normal(30).astype(np.float32)
    acc = rng.standard_normal(64).astype(np.float32)
    expected = acc.copy()
    for p in range(30):  # float32 fma: the exact product-sum in float64, rounded once
        expected = (expected.astype(np.float64) + np.float64(values[p]) * weight[indices[p] * 64 : indices[p] * 64 + 64]).astype(np.float32)
    gather_rows(acc, 0, 64, weight, 0, 64, 0, 30, indices, values)
    np.testing.assert_array_equal(acc, expected)


def test_gather_rows_with_no_events_leaves_the_row_as_it_was():
    acc = np.arange(70, dtype=np.float32)
    gather_rows(acc, 3, 64, np.ones(100, np.float32), 0, 1, 5, 5, np.zeros(0, np.int32), np.zeros(0, np.float32))
    np.testing.assert_array_equal(acc, np.arange(70, dtype=np.float32))
