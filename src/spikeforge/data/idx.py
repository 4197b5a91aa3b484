"""MNIST / Fashion-MNIST in their IDX files (gzipped or not), as float images in [0, 1]."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from spikeforge.registry import DATASETS

#: Where Debian's `dataset-fashion-mnist` package puts the files.
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (magic 0x0000TTDD, big-endian dims, then data) into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{path}: truncated or corrupt IDX file: {len(body)} data bytes, expected {expected} for shape {dims}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(
        f"dataset folder {root} has no {stem}[.gz]; expected the four IDX files "
        f"(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-…); "
        f"for Fashion-MNIST on Debian: apt-get install dataset-fashion-mnist"
    )


def load_idx_split(root: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 1, 28, 28] float in [0, 1] and labels [N] int64 of the `train` or `test` split."""
    root = Path(root)
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist; pass the folder that holds the IDX files")
    prefix = _SPLIT_PREFIX[split]
    images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: {images.shape[0]} images but {labels.shape[0]} labels in the {split} split")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: str | os.PathLike = FASHION_MNIST_DEBIAN, split: str = "train", limit: int | None = None) -> TensorDataset:
    """Fashion-MNIST (or MNIST: same IDX layout) from `root`; `limit` keeps the first N samples."""
    x, y = load_idx_split(root, split)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return TensorDataset(x, y)
