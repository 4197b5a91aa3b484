"""Checkpoints: safetensors weights, weights_only trainer state, atomic writes, clear errors for bad files."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from spikeforge.train.atomic import atomic_write, atomic_write_text
from spikeforge.train.checkpoint import STATE, WEIGHTS, load_checkpoint, load_state, load_weights, resolve, save_checkpoint


def _model(hidden: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, hidden), nn.Linear(hidden, 2))


def test_save_load_round_trip_with_last_and_best_links(tmp_path):
    model, folder = _model(), tmp_path / "checkpoints"
    state = {"optimizer": torch.optim.Adam(model.parameters()).state_dict(), "history": [{"epoch": 1, "val_acc": 0.5}], "rng": torch.get_rng_state()}
    save_checkpoint(folder, 10, model, state, links=("last", "best"))
    save_checkpoint(folder, 20, model, state)
    assert os.readlink(folder / "last") == "step-00000020" and os.readlink(folder / "best") == "step-00000010"
    assert sorted(p.name for p in folder.glob("step-*")) == ["step-00000010", "step-00000020"]
    save_checkpoint(folder, 30, model, state, links=("last", "best"))
    assert sorted(p.name for p in folder.glob("step-*")) == ["step-00000030"]  # unreferenced ones are deleted
    other = _model()
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    loaded = load_checkpoint(tmp_path, other)
    assert loaded["step"] == 30 and loaded["history"] == state["history"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_trainer_state_refuses_pickled_code(tmp_path):
    folder = save_checkpoint(tmp_path, 1, _model(), {})
    marker = tmp_path / "payload-ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"step": 1, "evil": Evil()}, folder / STATE)
    with pytest.raises(ValueError, match="corrupt or not a spikeforge trainer state"):
        load_state(folder)
    assert not marker.exists()  # the payload did not run
    os.system(f"touch {marker}")
    assert marker.exists()  # ... and would have left this file if it had


def _scaled(factor: float) -> nn.Module:
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model


def test_same_step_saved_twice_loads_the_second(tmp_path):
    save_checkpoint(tmp_path, 5, _scaled(1.0), {"epoch": 0}, links=("last", "best"))
    save_checkpoint(tmp_path, 5, _scaled(2.0), {"epoch": 1})
    other = _model()
    state = load_checkpoint(tmp_path, other)
    assert state["epoch"] == 1 and state["step"] == 5
    assert all(torch.equal(a, b) for a, b in zip(_scaled(2.0).state_dict().values(), other.state_dict().values()))
    load_weights(tmp_path / "best", other)  # best still points at the first save
    assert all(torch.equal(a, b) for a, b in zip(_scaled(1.0).state_dict().values(), other.state_dict().values()))


def test_failed_checkpoint_write_is_one_line_and_keeps_last(tmp_path, monkeypatch):
    import errno

    import spikeforge.train.checkpoint as ckpt
    from spikeforge.train.atomic import WriteFailed

    save_checkpoint(tmp_path, 1, _scaled(1.0), {})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(WriteFailed) as err:
        save_checkpoint(tmp_path, 2, _scaled(2.0), {})
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "No space left on device" in message
    assert "MiB free" in message and "MiB needed" in message
    assert os.readlink(tmp_path / "last") == "step-00000001" and load_checkpoint(tmp_path, _model())["step"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f".step-00000003.{dead.pid}.tmp"
    stale.mkdir()
    (stale / WEIGHTS).write_bytes(b"partial")
    (tmp_path / f".last.{dead.pid}.tmp").symlink_to("step-00000003")
    alive = tmp_path / f".step-00000004.{os.getppid()}.tmp"  # another live process's write in progress
    alive.mkdir()
    save_checkpoint(tmp_path, 1, _model(), {})
    assert not stale.exists() and not (tmp_path / f".last.{dead.pid}.tmp").is_symlink() and alive.exists()


def test_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        folder = save_checkpoint(tmp_path / "ck", 1, _model(), {})
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert all((folder / f).stat().st_mode & 0o777 == 0o644 for f in (WEIGHTS, STATE))


def test_corrupt_weights_are_a_clear_error(tmp_path):
    folder = save_checkpoint(tmp_path, 1, _model(), {})
    (folder / WEIGHTS).write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(ValueError, match="is corrupt or unreadable"):
        load_weights(folder, _model())


def test_truncated_trainer_state_is_a_clear_error(tmp_path):
    folder = save_checkpoint(tmp_path, 1, _model(), {"x": torch.zeros(100)})
    data = (folder / STATE).read_bytes()
    (folder / STATE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or not a spikeforge trainer state"):
        load_state(folder)


def test_mismatched_model_names_the_differences(tmp_path):
    save_checkpoint(tmp_path, 1, _model(hidden=3), {})
    with pytest.raises(ValueError, match=r"does not match the model \(0.weight: file \(3, 4\) vs model \(5, 4\)"):
        load_weights(tmp_path / "last", _model(hidden=5))
    with pytest.raises(ValueError, match="missing"):
        load_weights(tmp_path / "last", nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), nn.Linear(2, 2)))


def test_files_of_different_steps_are_detected(tmp_path):
    b = save_checkpoint(tmp_path, 2, _model(), {})
    torch.save({"step": 1}, b / STATE)
    with pytest.raises(ValueError, match="weights are from step 2 but the trainer state from step 1"):
        load_checkpoint(b, _model())


def test_missing_checkpoint_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'last' checkpoint under"):
        resolve(tmp_path)


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    path = atomic_write_text(tmp_path / "metrics.json", "old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
