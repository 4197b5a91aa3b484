"""CIFAR-10 from its python pickle batches (`cifar-10-batches-py/`), as float images [3, 32, 32] in [0, 1].

The folder holds `data_batch_1` … `data_batch_5` and `test_batch`: pickled dicts with b"data" (uint8
[N, 3072], channel-major rows) and b"labels". The validation split is carved from the end of the training
batches (`val_size` samples), which are then left out of "train".

The batches are read by `SafeUnpickler`, which builds only plain Python values and numpy arrays and refuses
every other class or function a pickle names, so a doctored file cannot run code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from spikeforge.registry import DATASETS

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
#: The only globals a CIFAR batch pickle names: numpy's array/scalar rebuilders and bytes via `_codecs.encode`.
ALLOWED_GLOBALS = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_GLOBALS`; any other class or function is an UnpicklingError."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never contains; refused, nothing was run")
        return super().find_class(module, name)


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch (read without running code): images uint8 [N, 3, 32, 32] and labels int64 [N]."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"CIFAR-10 batch {path} is missing; pass the folder cifar-10-batches-py that holds "
            f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}"
        )
    with open(path, "rb") as f:
        try:
            batch = SafeUnpickler(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a CIFAR-10 pickle batch ({err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 pickle batch (expected a dict with b'data' and b'labels')")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


@DATASETS.register("cifar10")
def cifar10(root: str | os.PathLike = "data/cifar-10-batches-py", split: str = "train", val_size: int = 5000,
            limit: int | None = None) -> TensorDataset:
    """CIFAR-10 split "train", "val" (last `val_size` training images) or "test"; `limit` keeps the first N."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"cifar10: split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root)
    names = (TEST_BATCH,) if split == "test" else TRAIN_BATCHES
    parts = [read_batch(root / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if split != "test":
        if not 0 <= val_size < len(labels):
            raise ValueError(f"cifar10: val_size must be in [0, {len(labels)}), got {val_size}")
        cut = len(labels) - val_size
        images, labels = (images[cut:], labels[cut:]) if split == "val" else (images[:cut], labels[:cut])
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return TensorDataset(x, torch.from_numpy(labels))
