"""spikeforge.malloc: glibc keeps freed large blocks (fewer page faults per training step)."""

import os
import subprocess
import sys

import pytest

from spikeforge import malloc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_takes_both_settings(monkeypatch):
    for name in malloc.ENV:
        monkeypatch.delenv(name, raising=False)
    assert malloc.keep_freed_memory()


def test_the_users_glibc_variables_win(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not malloc.keep_freed_memory()


_TRAIN_STEPS = """
import resource, torch
from spikeforge import malloc
from spikeforge.layers import SpikingLinear
torch.manual_seed(0); torch.set_num_threads(1)
net = torch.nn.Sequential(SpikingLinear(64, 256), SpikingLinear(256, 256))
x = (torch.rand(100, 32, 64) < 0.05).float()  # buffers of 3.3 MB: glibc's defaults trim them away after each step
for _ in range(3):
    net(x).sum().backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    net(x).sum().backward()
print(malloc._kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _kept_and_faults_per_step(**env) -> tuple[str, float]:
    clean = {k: v for k, v in os.environ.items() if k not in malloc.ENV and k != malloc.OPT_OUT}
    out = subprocess.run([sys.executable, "-c", _TRAIN_STEPS], env={**clean, **env}, capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    return kept, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_kernels_keep_freed_memory_by_default_and_the_opt_out_leaves_glibc_alone():
    kept, faults = _kept_and_faults_per_step()
    kept_off, faults_off = _kept_and_faults_per_step(**{malloc.OPT_OUT: "0"})
    assert (kept, kept_off) == ("True", "False")
    assert faults < 0.5 * faults_off, (faults, faults_off)  # measured: 480 against 2,540 page faults per step
