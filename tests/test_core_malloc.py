"""spikeforge.malloc: glibc keeps freed large blocks (fewer page faults per training step)."""

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
