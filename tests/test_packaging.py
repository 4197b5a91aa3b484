"""The package as a user gets it: a wheel installed into a fresh virtual environment, run from outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from spikeforge.train.config import PACKAGE_RECIPES, list_recipes
from test_harness_tiny import FMNIST

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_recipe_is_package_data_and_listed():
    shipped = sorted(p.stem for p in PACKAGE_RECIPES.glob("*.yaml"))
    assert "default" in shipped and "hybrid_fc2" in shipped
    listed = list_recipes()
    assert set(shipped) <= set(listed)


def _dependency_dirs(into: Path) -> list[str]:
    """This interpreter's site-packages folders (torch and the other dependencies), mirrored by links under `into`
    without any spikeforge install (an editable one from `make test` would make pip skip the wheel)."""
    sites = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *(p for p in sys.path if p.endswith("site-packages"))])
    out = []
    for k, site in enumerate(d for d in sites if Path(d).is_dir()):
        mirror = into / str(k)
        mirror.mkdir(parents=True)
        for entry in Path(site).iterdir():
            if not entry.name.lower().startswith(("spikeforge", "__editable__", "_spikeforge")):
                (mirror / entry.name).symlink_to(entry)
        out.append(str(mirror))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_wheel_installs_into_a_fresh_venv_and_trains_from_outside_the_repository(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def run(*cmd, cwd=tmp_path):
        done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("spikeforge-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (purelib / "_dependencies.pth").write_text("\n".join(_dependency_dirs(tmp_path / "deps")) + "\n")  # torch & co. without a download
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "-q", wheel)  # dependencies are checked

    where = Path(run(python, "-c", "import spikeforge; print(spikeforge.__file__)").strip())
    assert where.is_relative_to(venv), where
    listing = run(venv / "bin" / "spikeforge", "list")
    assert "  default  (" in listing and str(venv) in listing.split("  default  (")[1].split(")")[0]
    run(venv / "bin" / "spikeforge", "train", "default", "--set", "epochs=1", "--set", "dataset.limit=256", "--set", "model.hidden=[16]",
        "--set", "encoder.steps=4", "--set", "checkpoint_every=0", "--out", "runs", "--no-progress")
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["name"] == "default" and metrics["epochs"] == 1 and 0 <= metrics["accuracy"] <= 1
    assert (run_dir / "checkpoints" / "best" / "weights.safetensors").exists()
