"""torchrun with 2 CPU processes (gloo): the ranks end bit-identical and match one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from spikeforge.cli import main
from spikeforge.registry import MODELS
from spikeforge.train import distributed, runfolder
from spikeforge.train.checkpoint import load_weights
from spikeforge.train.trainer import build
from forked_ranks import run_two_ranks
from test_harness_tiny import FMNIST, tiny_recipe


def _weights(out):
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return load_file(run / "checkpoints" / "last" / "weights.safetensors"), json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_two_process_ddp_matches_single_process(tmp_path):
    recipe = str(tiny_recipe(tmp_path, epochs=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "spikeforge", "train", recipe, "--out", str(tmp_path / "ddp"), "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 2  # printed by rank 0 only (start and end)
    assert len(list((tmp_path / "ddp").iterdir())) == 1  # only rank 0 writes
    assert main(["train", recipe, "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    ddp, ddp_metrics = _weights(tmp_path / "ddp")
    one, one_metrics = _weights(tmp_path / "one")
    hashes = ddp_metrics["parameter_hashes"]
    assert ddp_metrics["world_size"] == 2 and len(hashes) == 2 and hashes[0] == hashes[1] and ddp_metrics["ranks_in_sync"] is True
    (run,) = [p for p in (tmp_path / "ddp").iterdir() if p.is_dir()]
    tested = build(MODELS, runfolder.read_config(run)["model"])
    load_weights(run / "checkpoints" / "best", tested)
    assert distributed.parameters_hash(tested) == hashes[0]  # the hashes are of the weights that were tested
    assert ddp_metrics["test_samples"] == one_metrics["test_samples"]  # the test split is sharded without overlap
    for key in one:
        assert torch.allclose(ddp[key], one[key], atol=1e-5, rtol=1e-4), key
    assert ddp_metrics["accuracy"] == pytest.approx(one_metrics["accuracy"], abs=2 / one_metrics["test_samples"])


def _hashes_of_two_ranks(rank: int, out: dict) -> None:
    """Each rank's view of rank_hashes, first with equal models, then with one bit of one weight flipped on rank 1."""
    ctx = distributed.Context(rank, 2, torch.device("cpu"))
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    out[rank, "equal"] = distributed.rank_hashes(model, ctx)
    if rank == 1:
        with torch.no_grad():
            model.weight[0, 0] = torch.nextafter(model.weight[0, 0], torch.tensor(2.0))
    out[rank, "perturbed"] = distributed.rank_hashes(model, ctx)


def test_rank_hashes_tell_apart_ranks_that_differ_in_one_bit(tmp_path):
    out = run_two_ranks(_hashes_of_two_ranks, str(tmp_path / "store"))
    for case in ("equal", "perturbed"):
        assert out[0, case] == out[1, case] and len(out[0, case]) == 2  # every rank gets every rank's hash
    assert out[0, "equal"][0] == out[0, "equal"][1]
    assert out[0, "perturbed"][0] != out[0, "perturbed"][1] and out[0, "perturbed"][0] == out[0, "equal"][0]


def _buffers_after_broadcast(rank: int, out: dict) -> None:
    """Each rank's BatchNorm running statistics after one training batch of its own, then after broadcast_buffers."""
    ctx = distributed.Context(rank, 2, torch.device("cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(torch.randn(8, 3, generator=torch.Generator().manual_seed(rank)))  # each rank's share of the batch
    out[rank, "own"] = {k: v.clone() for k, v in model.state_dict().items()}
    distributed.broadcast_buffers(model, ctx)
    out[rank, "synced"] = model.state_dict()


def test_broadcast_buffers_gives_every_rank_rank_0s_running_statistics(tmp_path):
    out = run_two_ranks(_buffers_after_broadcast, str(tmp_path / "store"))
    assert not torch.equal(out[0, "own"]["1.running_mean"], out[1, "own"]["1.running_mean"])  # updated on different data
    for key, value in out[0, "own"].items():
        assert torch.equal(out[0, "synced"][key], value) and torch.equal(out[1, "synced"][key], value), key
