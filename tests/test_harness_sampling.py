"""Batch order: seeded per epoch, resumable mid-epoch, sharded across ranks, class-balanced on request."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from spikeforge.train.sampling import EpochBatchSampler, carve_validation, class_balancing_weights, labels_of, shard


def test_epoch_order_is_seeded_and_skip_resumes_mid_epoch():
    s = EpochBatchSampler(50, 8, seed=1)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 6 and all(len(b) == 8 for b in full)  # 50 // 8 batches; the rest is dropped
    s.set_epoch(2, skip=4)
    assert list(s) == full[4:] and len(s) == 2
    s.set_epoch(3)
    assert list(s) != full
    assert sorted(i for b in full for i in b) == sorted(set(i for b in full for i in b))  # a permutation


def test_ranks_together_see_the_single_process_global_batches():
    single = EpochBatchSampler(40, 8, seed=5)
    ranks = [EpochBatchSampler(40, 8, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in (single, *ranks):
        s.set_epoch(1)
    for glob, *parts in zip(single, *ranks):
        assert sorted(glob) == sorted(parts[0] + parts[1]) and len(parts[0]) == len(parts[1]) == 4


def test_bad_batch_sizes_are_explained():
    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        EpochBatchSampler(40, 8, seed=0, world_size=3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(4, 8, seed=0)


def test_weighted_sampler_balances_classes():
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = class_balancing_weights(labels)
    assert weights[0] == pytest.approx(1 / 90) and weights[-1] == pytest.approx(1 / 10)
    s = EpochBatchSampler(100, 100, seed=0, weights=weights)
    counts = torch.zeros(2)
    for epoch in range(30):
        s.set_epoch(epoch)
        counts += torch.bincount(labels[torch.tensor(next(iter(s)))], minlength=2)
    assert abs(counts[1] / counts.sum() - 0.5) < 0.05  # the rare class is drawn half the time


def test_labels_carving_and_eval_shards():
    data = TensorDataset(torch.zeros(10, 2), torch.arange(10) % 3)
    train, val = carve_validation(data, 0.3, seed=0)
    assert len(train) == 7 and len(val) == 3 and not set(train.indices) & set(val.indices)
    assert torch.equal(labels_of(val), torch.tensor(val.indices) % 3)
    assert shard(5, 0, 2) == [0, 2, 4] and shard(5, 1, 2) == [1, 3]
    with pytest.raises(ValueError, match="val_fraction must be in"):
        carve_validation(data, 1.0, seed=0)
