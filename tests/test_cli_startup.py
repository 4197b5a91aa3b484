"""Start-up: `spikeforge --help` / `--version` import no sub-command and no torch; a sub-command imports only its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

import spikeforge.commands
from spikeforge import cli

PROBE = """
import sys
from spikeforge.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", " ".join(sorted(m for m in sys.modules if m.startswith(("spikeforge.commands.", "torch", "numba")) and "." in m or m in ("torch", "numba"))))
"""


def _imported(*argv: str) -> set[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, timeout=120)
    line = [l for l in done.stdout.splitlines() if l.startswith("MODULES")]
    assert line, done.stdout + done.stderr
    return set(line[-1].split()[1:])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_no_sub_command_and_no_torch(argv):
    imported = _imported(*argv)
    assert not any(m.startswith("spikeforge.commands.") for m in imported), imported
    assert "torch" not in imported and "numba" not in imported, imported


def test_a_sub_command_imports_only_its_own_module():
    imported = _imported("report", "--help")
    assert {m for m in imported if m.startswith("spikeforge.commands.")} == {"spikeforge.commands.report"}


def test_the_table_lists_every_command_module_with_the_help_it_registers():
    registered = {}
    for info in pkgutil.iter_modules(spikeforge.commands.__path__):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"spikeforge.commands.{info.name}").register(sub)
        for action in sub._choices_actions:
            registered[action.dest] = (info.name, action.help)
    assert registered == cli.COMMANDS


def test_an_unknown_command_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["trian"])
    assert exit_.value.code == 2 and "invalid choice: 'trian'" in capsys.readouterr().err
