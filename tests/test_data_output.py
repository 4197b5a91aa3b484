"""`spikeforge data` commands write into a new or empty OUT, or replace their own dataset whole with --force."""

from __future__ import annotations

import pytest

import spikeforge.data.saccade as saccade
import spikeforge.data.speech_generate as speech
from spikeforge.cli import main
from spikeforge.data.idx import FASHION_MNIST_DEBIAN
from spikeforge.data.output import MARKER

GENERATORS = {"saccade-events": (saccade, {"train": 1, "test": 1}), "speech-commands": (speech, {"train": 1, "val": 1, "test": 1})}


def _fake(module, monkeypatch, counts, name="first.txt", fail=False):
    """Replace the command's generator by one that writes the file `name` (then fails, if asked)."""

    def generate(out, *args, **kwargs):
        (out / name).write_text("x")
        if fail:
            raise ValueError("generator failed halfway")
        return counts

    monkeypatch.setattr(module, "generate", generate)


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("command", sorted(GENERATORS))
def test_non_empty_target_is_refused_without_force(tmp_path, monkeypatch, capsys, command):
    module, counts = GENERATORS[command]
    _fake(module, monkeypatch, counts)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["data", command, str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty" in err and "--force" in err
    assert main(["data", command, str(out), "--force"]) == 2  # not a dataset spikeforge wrote: --force refuses too
    assert "did not write" in capsys.readouterr().err
    assert _listing(out) == ["mine.txt"] and (out / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize("command", sorted(GENERATORS))
def test_force_replaces_the_dataset_whole(tmp_path, monkeypatch, command):
    module, counts = GENERATORS[command]
    out = tmp_path / "out"
    _fake(module, monkeypatch, counts)
    assert main(["data", command, str(out)]) == 0
    assert _listing(out) == [MARKER, "first.txt"]
    _fake(module, monkeypatch, counts, name="second.txt")
    assert main(["data", command, str(out), "--force"]) == 0
    assert _listing(out) == [MARKER, "second.txt"]  # no file of the first dataset is left
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary beside it


@pytest.mark.parametrize("command", sorted(GENERATORS))
def test_failed_generation_leaves_the_target_as_it_was(tmp_path, monkeypatch, capsys, command):
    module, counts = GENERATORS[command]
    out = tmp_path / "out"
    _fake(module, monkeypatch, counts)
    assert main(["data", command, str(out)]) == 0
    before = _listing(out)
    _fake(module, monkeypatch, counts, fail=True)
    assert main(["data", command, str(out), "--force"]) == 2
    assert "generator failed halfway" in capsys.readouterr().err
    assert _listing(out) == before and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("command", sorted(GENERATORS))
def test_failed_generation_into_new_folders_leaves_none_of_them(tmp_path, monkeypatch, capsys, command):
    module, counts = GENERATORS[command]
    _fake(module, monkeypatch, counts, fail=True)
    assert main(["data", command, str(tmp_path / "new" / "deeper" / "out")]) == 2
    assert "generator failed halfway" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the folders made for OUT went with it


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN.exists(), reason="needs Debian's dataset-fashion-mnist")
def test_saccade_events_force_does_not_mix_datasets(tmp_path):
    out = tmp_path / "events"
    assert main(["data", "saccade-events", str(out), "--train", "3", "--test", "2", "--seed", "1"]) == 0
    assert len(list(out.glob("*/*/*.bin"))) == 5
    assert main(["data", "saccade-events", str(out), "--train", "1", "--test", "1", "--seed", "2"]) == 2
    assert len(list(out.glob("*/*/*.bin"))) == 5
    assert main(["data", "saccade-events", str(out), "--train", "1", "--test", "1", "--seed", "2", "--force"]) == 0
    assert len(list(out.glob("*/*/*.bin"))) == 2
