"""Same seed and thread count → the same final weights, bit for bit: two runs, and a run killed (SIGKILL) then resumed.

The `default` recipe at its shipped width (784 → 128 → 10) on a 7 200-sample subset: 101 optimiser steps.
Each training runs in its own process (the thread count is set before torch loads).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from safetensors.torch import load_file

from spikeforge.threads import available_cpus
from test_harness_tiny import FMNIST

pytestmark = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
SETTINGS = ["--no-progress", "--set", "epochs=1", "--set", "dataset.limit=7200", "--set", "checkpoint_every=10"]
STEPS = 101  # 6 480 training samples / batch 64

# Imported only by a process that is to die: SIGKILL in training forward KILL_AT_FORWARD, or halfway
# through writing the trainer state of the checkpoint of step KILL_AT_SAVE.
PLUGIN = textwrap.dedent(
    """
    import io, os, signal
    import torch
    from spikeforge.models.demo import DemoLIF

    kill_forward, kill_save = int(os.environ.get("KILL_AT_FORWARD", 0)), int(os.environ.get("KILL_AT_SAVE", 0))
    forward, save, calls = DemoLIF.forward, torch.save, [0]

    def counted_forward(self, x):
        if self.training:
            calls[0] += 1
            if calls[0] == kill_forward:
                os.kill(os.getpid(), signal.SIGKILL)
        return forward(self, x)

    def torn_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == kill_save:
            buffer = io.BytesIO()
            save(obj, buffer, *args, **kwargs)
            with open(f, "wb") as out:
                out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                out.flush()
                os.fsync(out.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return save(obj, f, *args, **kwargs)

    DemoLIF.forward, torch.save = counted_forward, torn_save
    """
)


def _train(tmp_path: Path, out: str, threads: int = 1, resume: bool = False, **kill) -> subprocess.CompletedProcess:
    """`spikeforge train default` in a fresh process with `threads` threads (the killing plugin loaded if `kill`)."""
    (tmp_path / "kill_plugin.py").write_text(PLUGIN)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **{k.upper(): str(v) for k, v in kill.items()},
           "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = ["--resume", str(_run_dir(tmp_path / out))] if resume else ["--out", str(tmp_path / out)]
    code = f"import sys{', kill_plugin' if kill else ''}; from spikeforge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "train", "default", *run, *SETTINGS], env=env,
                          capture_output=True, text=True, timeout=600)


def _run_dir(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def _weights(tmp_path: Path, out: str) -> dict:
    return load_file(_run_dir(tmp_path / out) / "checkpoints" / "last" / "weights.safetensors")


def _assert_bit_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = {k: float((a[k] - b[k]).abs().max()) for k in a if a[k].numpy().tobytes() != b[k].numpy().tobytes()}
    assert not differ, f"weights differ (max abs difference per tensor): {differ}"


def _in_parallel(*calls):
    with ThreadPoolExecutor(len(calls)) as pool:
        results = [pool.submit(call) for call in calls]
        return [r.result() for r in results]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted 1-thread run, to which the others are compared."""
    tmp = tmp_path_factory.mktemp("reference")
    done = _train(tmp, "runs")
    assert done.returncode == 0, done.stderr
    assert json.loads((_run_dir(tmp / "runs") / "metrics.json").read_text())["steps"] == STEPS
    return tmp, _weights(tmp, "runs")


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_two_runs_with_the_same_seed_end_bit_identical(tmp_path, threads):
    if threads > available_cpus():
        pytest.skip(f"needs {threads} CPUs")
    first, second = _in_parallel(lambda: _train(tmp_path, "a", threads), lambda: _train(tmp_path, "b", threads))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    _assert_bit_identical(_weights(tmp_path, "a"), _weights(tmp_path, "b"))


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_ends_bit_identical(tmp_path, reference):
    kill_at = random.randint(52, STEPS - 1)  # the forward of step kill_at: at least 51 steps done
    killed = _train(tmp_path, "runs", kill_at_forward=kill_at)
    assert killed.returncode == -signal.SIGKILL, f"step {kill_at}: {killed.stderr}"
    resumed = _train(tmp_path, "runs", resume=True)
    assert resumed.returncode == 0, f"killed at step {kill_at}: {resumed.stderr}"
    assert f"resuming from step {(kill_at - 1) // 10 * 10}" in resumed.stdout + resumed.stderr
    _assert_bit_identical(reference[1], _weights(tmp_path, "runs"))


@pytest.mark.slow
def test_sigkill_while_a_checkpoint_is_written_then_resume_ends_bit_identical(tmp_path, reference):
    killed = _train(tmp_path, "runs", kill_at_save=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert os.readlink(_run_dir(tmp_path / "runs") / "checkpoints" / "last") == "step-00000050"  # the torn one is not used
    resumed = _train(tmp_path, "runs", resume=True)
    assert resumed.returncode == 0, resumed.stderr
    _assert_bit_identical(reference[1], _weights(tmp_path, "runs"))
