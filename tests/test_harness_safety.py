"""Runs that never lose, leak or run foreign code: confined run folders, resume that changes nothing until it loaded, locks, start-up failures."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys

import pytest
import torch

from spikeforge.cli import main
from spikeforge.registry import MODELS, METHODS
from spikeforge.train import runfolder
from spikeforge.train.checkpoint import load_weights
from spikeforge.train.encode import encode
from spikeforge.train.trainer import build, build_datasets
from test_harness_tiny import FMNIST, tiny_recipe

needs_fmnist = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")


def _snapshot(folder):
    """Every path under `folder` with the hash of its content (links: their target)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = os.readlink(path) if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny recipe trained for one epoch: (recipe path, run folder)."""
    tmp = tmp_path_factory.mktemp("finished")
    recipe = str(tiny_recipe(tmp, epochs=1))
    assert main(["train", recipe, "--out", str(tmp / "runs"), "--no-progress"]) == 0
    (run,) = [p for p in (tmp / "runs").iterdir() if p.is_dir()]
    return recipe, run


# -- point 2: the run folder stays under --out --------------------------------------------------
@pytest.mark.parametrize("name", ["../../escaped", "/tmp/spikeforge-escaped", ".hidden"])
def test_recipe_name_cannot_leave_the_out_folder(tmp_path, capsys, name):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    recipe = tiny_recipe(work, name=name)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["train", str(recipe), "--out", str(work / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a plain folder name" in err and "--set name=" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before and not os.path.exists("/tmp/spikeforge-escaped-")


# -- point 3: a failed resume changes nothing ---------------------------------------------------
@needs_fmnist
def test_failed_resume_changes_nothing_in_the_run_folder(finished_run, capsys):
    recipe, run = finished_run
    before = _snapshot(run)
    assert main(["train", recipe, "--resume", str(run), "--set", "epochs=2", "--set", "model.hidden=[64]", "--no-progress"]) == 2
    assert "does not match the model" in capsys.readouterr().err
    assert _snapshot(run) == before
    assert main(["eval", str(run)]) == 0  # the run still works


# -- point 4: --resume picks this recipe's newest run --------------------------------------------
def test_latest_run_matches_the_name_exactly_and_orders_by_timestamp(tmp_path):
    for name in ("default-old-20200101-000000", "default-20261201-190232", "default-20261201-190232-2", "default-20261201-190232-10",
                 "default-20251231-235959", "defaultx-20300101-000000", "default-20301010-101010-nocheckpoint"):
        (tmp_path / name / "checkpoints" / "last").mkdir(parents=True)
    (tmp_path / "default-20301010-101010").mkdir()  # newest, but without a checkpoint
    assert runfolder.latest_run(tmp_path, "default").name == "default-20261201-190232-10"
    assert runfolder.latest_run(tmp_path, "default-old").name == "default-old-20200101-000000"
    with pytest.raises(FileNotFoundError, match="no run of 'other'"):
        runfolder.latest_run(tmp_path, "other")


# -- point 5: resuming a finished run -----------------------------------------------------------
@needs_fmnist
def test_resume_of_a_finished_run_says_so_and_changes_nothing(finished_run, capsys):
    recipe, run = finished_run
    before = _snapshot(run)
    assert main(["train", recipe, "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "is complete (1 epochs)" in out and "--set epochs=N" in out and "resuming" not in out
    assert _snapshot(run) == before


# -- point 6: one process per run folder --------------------------------------------------------
HOLDER = "import sys, time; from pathlib import Path; from spikeforge.train import runfolder\n" \
         "with runfolder.locked(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(120)\n"


def _hold_lock(run):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


@needs_fmnist
def test_a_second_resume_of_a_run_in_use_is_refused_and_a_dead_holder_is_taken_over(finished_run, capsys):
    recipe, run = finished_run
    before = _snapshot(run)
    holder = _hold_lock(run)
    try:
        assert main(["train", recipe, "--resume", str(run), "--set", "epochs=2", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err and err.count("\n") == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / runfolder.LOCK).exists()  # the killed holder left its lock file ...
    with runfolder.locked(run):  # ... which is free again and taken over
        assert (run / runfolder.LOCK).read_text() == f"{os.getpid()}\n"
    assert _snapshot(run) == before


def test_two_processes_cannot_hold_one_run_at_once(tmp_path):
    holder = _hold_lock(tmp_path)
    try:
        with pytest.raises(runfolder.RunInUse, match=f"in use by process {holder.pid}"):
            with runfolder.locked(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()


# -- point 9: the recorded sample is the model's output -----------------------------------------
@needs_fmnist
def test_recorded_sample_equals_the_models_output_on_that_sample(finished_run):
    _, run = finished_run
    config = runfolder.read_config(run)
    spikes, outputs, label = runfolder.read_sample(run)
    model = build(MODELS, config["model"])
    load_weights(run / "checkpoints" / "best", model)
    model.eval()
    x, y = build_datasets(config["dataset"], config["seed"])[2][0]
    with torch.no_grad():
        expected = build(METHODS, config["method"]).predict(model, encode(x[None], config["encoder"]))[:, 0]
    assert label == int(y) and outputs.shape == tuple(expected.shape)
    torch.testing.assert_close(torch.from_numpy(outputs), expected, atol=1e-5, rtol=1e-5)


def test_write_sample_stores_strided_views_as_they_read(tmp_path):
    outputs = torch.arange(24, dtype=torch.float32).reshape(3, 4, 2)[:, 1]  # [T, classes] view with strides
    spikes = {"lif1": (torch.arange(30).reshape(5, 3, 2) % 3 == 0).float()[:, :, 1]}
    runfolder.write_sample(tmp_path, spikes, outputs, 7)
    got_spikes, got_outputs, label = runfolder.read_sample(tmp_path)
    assert label == 7 and (got_outputs == outputs.numpy()).all() and (got_spikes["lif1"] == spikes["lif1"].numpy()).all()


# -- point 10: start-up failures leave nothing --------------------------------------------------
@needs_fmnist
def test_failed_start_leaves_no_run_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(out), "--set", "dataset.root=/no/such/folder"]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and list(out.iterdir()) == []  # the --out folder that was there stays
    # an --out folder the start made for it goes with the run folder: the working directory is as it was
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "new" / "runs"), "--set", "dataset.root=/no/such/folder"]) == 2
    assert not (tmp_path / "new").exists()


@needs_fmnist
def test_ctrl_c_during_start_up_is_one_line_and_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    import spikeforge.train.trainer as trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "build_datasets", interrupted)
    out = tmp_path / "runs"
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err == "spikeforge train: interrupted before training started; no run folder was made\n"
    assert not out.exists()


# -- point 8: a full disk during training -------------------------------------------------------
@needs_fmnist
def test_full_disk_during_training_is_one_line_and_keeps_last(tmp_path, capsys, monkeypatch):
    import errno

    import spikeforge.train.checkpoint as ckpt

    real, saves = ckpt.save_file, []

    def fills_up(*args, **kwargs):
        saves.append(1)
        if len(saves) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", fills_up)
    out = tmp_path / "runs"
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    (run,) = out.iterdir()
    assert err.count("\n") == 1 and f"cannot write to {run / 'checkpoints'}: No space left on device" in err and "MiB needed" in err
    assert os.readlink(run / "checkpoints" / "last") == "step-00000002"  # the first save, complete and loadable
    assert load_weights(run / "checkpoints" / "last", build(MODELS, runfolder.read_config(run)["model"])) == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last", "step-00000002"]


def test_atomic_write_that_fails_keeps_the_old_file(tmp_path):
    import errno

    from spikeforge.train.atomic import WriteFailed, atomic_write, atomic_write_text

    atomic_write_text(tmp_path / "metrics.json", "old")

    def read_only(tmp):
        raise OSError(errno.EROFS, "Read-only file system")

    with pytest.raises(WriteFailed, match=f"cannot write to {tmp_path}: Read-only file system"):
        atomic_write(tmp_path / "metrics.json", read_only)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"] and (tmp_path / "metrics.json").read_text() == "old"
