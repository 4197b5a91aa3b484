"""Input checks shared by every public entry point: time-major layout, dtype, finiteness."""

from __future__ import annotations

import torch


def check_time_major(x: torch.Tensor, name: str, rank: int | tuple[int, ...], layout: str, dtype: torch.dtype | None = None,
                     finite: bool = True) -> None:
    """Raise ValueError unless `x` is a finite floating tensor of the given rank (and `dtype`, if given), laid out as `layout`.

    `layout` names the expected axes, e.g. "[T, B, C, H, W]"; it is quoted in the error. `finite=False` leaves the
    NaN/Inf test to the caller (`check_finite`, e.g. on the nonzero entries the event path compresses anyway).
    """
    ranks = (rank,) if isinstance(rank, int) else rank
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor laid out as {layout}, got {type(x).__name__}")
    if x.dim() not in ranks:
        raise ValueError(
            f"{name}: expected a time-major tensor {layout} (rank {' or '.join(map(str, ranks))}), "
            f"got shape {tuple(x.shape)} (rank {x.dim()}); batch-major data needs x.transpose(0, 1)"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating tensor {layout}, got dtype {x.dtype}; use x.float()")
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{name}: dtype {x.dtype} but the layer's weights are {dtype}; cast the input (x.to({dtype})) or the model (model.to({x.dtype}))")
    if finite:
        check_finite(x, name, layout, x.shape)


def check_finite(values: torch.Tensor, name: str, layout: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError if `values` (an input of `shape`, or all of its nonzero entries) hold NaN or Inf."""
    # one reduction pass; the exact element-wise test only when the sum is not finite
    if not torch.isfinite(values.sum()) and not torch.isfinite(values).all():
        raise ValueError(f"{name}: input {layout} of shape {tuple(shape)} contains NaN or Inf")
