"""Which samples form each batch: seeded per epoch, class-weighted on request, sharded across ranks, resumable mid-epoch."""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Dataset, Subset, TensorDataset


def labels_of(dataset: Dataset) -> torch.Tensor:
    """Class labels [N] of a dataset: its `targets`/`labels` attribute, a TensorDataset's second tensor, or one pass over it."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices)]
    for attr in ("targets", "labels"):
        if hasattr(dataset, attr):
            return torch.as_tensor(getattr(dataset, attr)).long()
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) > 1:
        return dataset.tensors[1].long()
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])


def class_balancing_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-sample weight 1 / (count of its class): every class is drawn equally often (low-activity KWS paper, sec. 8)."""
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


class EpochBatchSampler:
    """Global batches of one epoch, this rank's share of each; `set_epoch(e, skip)` resumes after `skip` batches.

    The epoch's order is a permutation (or, with `weights`, draws with replacement) from a generator seeded
    with `seed + epoch`, so it does not depend on the global RNG or on where a run was resumed. A global batch
    of `batch_size` samples is split between `world_size` ranks by striding (rank r takes positions r, r + W, …),
    so N ranks see together exactly the batches of a single-process run. The incomplete last batch is dropped.
    With `views` = V > 1 every index of a batch comes V times in a row (V views of one sample, drawn apart by the
    dataset's random augmentation): a batch of `batch_size` samples holds V · `batch_size` items.
    """

    def __init__(self, n: int, batch_size: int, seed: int, weights: torch.Tensor | None = None, rank: int = 0, world_size: int = 1,
                 views: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is the global batch and must be divisible by the {world_size} processes")
        if n < batch_size:
            raise ValueError(f"the training set has {n} samples, fewer than one batch of {batch_size}; lower batch_size")
        self.n, self.batch_size, self.seed, self.weights = n, batch_size, seed, weights
        if views < 1:
            raise ValueError(f"views is how many times each sample comes in its batch, >= 1, got {views}")
        self.rank, self.world_size, self.views = rank, world_size, views
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order and how many of its batches were already done."""
        self.epoch, self.skip = epoch, skip

    def order(self) -> torch.Tensor:
        """All indices of the epoch in global order."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        return torch.randperm(self.n, generator=g)

    def __len__(self) -> int:
        return self.n // self.batch_size - self.skip

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order()
        for b in range(self.skip, self.n // self.batch_size):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank :: self.world_size].repeat_interleave(self.views).tolist()


def shard(n: int, rank: int, world_size: int) -> list[int]:
    """This rank's evaluation indices: every `world_size`-th sample, no padding (metrics are summed across ranks)."""
    return list(range(rank, n, world_size))


def carve_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split a training set into (train, validation) with a seeded permutation; `fraction` goes to validation."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"dataset.val_fraction must be in (0, 1), got {fraction}")
    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * fraction))
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])
