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

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"step": 1, "evil": Evil()}, folder / STATE)
    with pytest.raises(ValueError, match="corrupt or not a spikeforge trainer state"):
        load_state(folder)


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
