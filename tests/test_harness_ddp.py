"""torchrun with 2 CPU processes (gloo): the ranks stay in sync and match one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from spikeforge.cli import main
from test_harness_tiny import FMNIST, tiny_recipe

pytestmark = [pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist"), pytest.mark.slow]


def _weights(out):
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return load_file(run / "checkpoints" / "last" / "weights.safetensors"), json.loads((run / "metrics.json").read_text())


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
    assert ddp_metrics["world_size"] == 2 and ddp_metrics["ranks_in_sync"] is True  # checked after every epoch
    assert ddp_metrics["test_samples"] == one_metrics["test_samples"]  # the test split is sharded without overlap
    for key in one:
        assert torch.allclose(ddp[key], one[key], atol=1e-5, rtol=1e-4), key
    assert ddp_metrics["accuracy"] == pytest.approx(one_metrics["accuracy"], abs=2 / one_metrics["test_samples"])
