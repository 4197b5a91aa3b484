"""Start-up: `spikeforge --help` / `--version` import no sub-command and no torch; a sub-command imports only what it uses."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys

import pytest

import spikeforge.commands
from spikeforge import cli
from spikeforge.catalog import ENCODERS
from spikeforge.catalog import MODULES as CATALOG
from spikeforge.registry import DATASETS, LOSSES, METHODS, MODELS, TRANSITIONS

PROBE = """
import sys
from spikeforge.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", " ".join(sorted(m for m in sys.modules if m.startswith(("spikeforge.commands.", "spikeforge.data.", "spikeforge.models.", "torch", "numba")) and "." in m or m in ("torch", "numba", "matplotlib"))))
"""

# In a fresh process: every registry's package imported whole, each `register` call noted with the module that makes it.
CATALOG_PROBE = """
import json, sys
from spikeforge import registry
from spikeforge.train.encode import encoders
homes, register = {}, registry.Registry.register
def noting(self, name):
    homes.setdefault(self.kind, {})[name] = sys._getframe(1).f_globals["__name__"]
    return register(self, name)
registry.Registry.register = noting
for r in (registry.MODELS, registry.DATASETS, registry.METHODS, registry.TRANSITIONS, registry.LOSSES):
    r._load()
print(json.dumps({"homes": homes, "encoders": sorted(encoders())}))
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


def test_list_imports_no_torch_and_train_no_dataset_it_does_not_use(tmp_path):
    imported = _imported("list")
    assert imported == {"spikeforge.commands.list"}, imported
    train = _imported("train", "default", "--out", str(tmp_path), "--set", f"dataset.root={tmp_path / 'none'}")  # stops at the data
    assert "torch" in train and "matplotlib" not in train, train  # matplotlib loads when the plots are written
    assert {m for m in train if m.startswith(("spikeforge.data.", "spikeforge.models."))} == {"spikeforge.data.idx", "spikeforge.models.demo"}


def test_the_catalog_names_every_registered_factory_and_the_module_that_registers_it():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CATALOG_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    packages = {r.kind: r.package for r in (MODELS, DATASETS, METHODS, TRANSITIONS, LOSSES)}
    assert {kind: {name: f"{packages[kind]}.{module}" for name, module in names.items()} for kind, names in CATALOG.items()} == result["homes"]
    assert sorted(ENCODERS) == result["encoders"]


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


EXIT_PROBE = """
import atexit, sys
atexit.register(print, "shutdown ran")
sys.argv = ["spikeforge", *sys.argv[1:]]
from spikeforge.cli import entry
entry()
"""


@pytest.mark.parametrize("world_size", ["1", "2"])
@pytest.mark.parametrize(("argv", "code", "stream", "text"), [(["list"], 0, "stdout", "recipes:"), (["train", "missing.yaml"], 2, "stderr", "missing.yaml")])
def test_a_torchrun_rank_leaves_without_pythons_shutdown_and_keeps_its_exit_code_and_output(tmp_path, world_size, argv, code, stream, text):
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "WORLD_SIZE": world_size}  # stdout buffered, as by default
    done = subprocess.run([sys.executable, "-c", EXIT_PROBE, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code and text in getattr(done, stream)  # stdout to a pipe is block-buffered: flushed before os._exit
    assert ("shutdown ran" in done.stdout) == (world_size == "1")
