"""The process's thread budget: sizes from the CPUs it may use, passive pools, one warning line for a bad count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spikeforge import threads

PROBE = "import os, spikeforge, torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'], os.environ['NUMBA_NUM_THREADS'])"


@pytest.mark.parametrize("requested, expected", [(None, 2), ("", 2), ("1", 1), ("2", 2), (" 1 ", 1)])
def test_a_valid_or_absent_count_is_used_silently(requested, expected):
    assert threads.thread_budget(requested, cpus=2) == (expected, None)


@pytest.mark.parametrize("requested, words", [("0", "'0' is not a positive integer"), ("abc", "'abc' is not a positive integer"),
                                               ("-3", "'-3' is not a positive integer"), ("9", "9 is more than the 2 CPUs")])
def test_a_bad_or_too_large_count_falls_back_to_the_cpus_with_a_warning(requested, words):
    used, warning = threads.thread_budget(requested, cpus=2)
    assert used == 2 and words in warning and "using 2 threads" in warning and "\n" not in warning


def test_cgroup_quota_v2_and_v1(tmp_path):
    v2, v1 = tmp_path / "cpu.max", tmp_path / "v1" / "cpu.cfs_quota_us"
    v2.write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(v2, v1) == 1.5
    v2.write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(v2, v1) is None
    v2.unlink()
    v1.parent.mkdir()
    v1.write_text("50000\n")
    (v1.parent / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(v2, v1) == 0.5
    v1.write_text("-1\n")
    assert threads.cgroup_cpu_limit(v2, v1) is None


def test_available_cpus_respects_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    assert threads.available_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cpus() == 4


def test_configure_sets_passive_pools_and_keeps_the_users_choices():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        _configure_twice()
    finally:
        torch.set_num_threads(before)  # configure lowers an already-loaded torch to the budget


def _configure_twice():
    env = {"OMP_NUM_THREADS": "1"}
    assert threads.configure(env) == 1
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "1"
    env = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}
    threads.configure(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"


def _probe(value: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = value
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("value", ["0", "garbage", "4096"])
def test_importing_spikeforge_with_a_bad_count_warns_once_and_uses_the_cpus(value):
    cpus = threads.available_cpus()
    done = _probe(value)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"using {cpus} threads" in lines[0], done.stderr  # libgomp never saw the bad value
    assert done.stdout.split() == [str(cpus), "PASSIVE", str(cpus)]


def test_importing_spikeforge_with_a_valid_count_is_silent():
    done = _probe("1")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.split() == ["1", "PASSIVE", "1"]
