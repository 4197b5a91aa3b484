"""CIFAR-10 pickle loader (fabricated batches) and the staged hybrid recipes on small slices."""

import pickle

import numpy as np
import pytest
import torch

from spikeforge.cli import main
from spikeforge.methods.hybrid_temporal import convert_to_snn
from spikeforge.registry import DATASETS, MODELS


def _write_batches(root, per_batch=4):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=per_batch))
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)


def test_cifar10_reads_pickle_batches(tmp_path):
    _write_batches(tmp_path)
    with open(tmp_path / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    train = DATASETS.get("cifar10")(root=tmp_path, split="train", val_size=5)
    val = DATASETS.get("cifar10")(root=tmp_path, split="val", val_size=5)
    test = DATASETS.get("cifar10")(root=tmp_path, split="test")
    assert (len(train), len(val), len(test)) == (15, 5, 4)
    x, y = train[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    # channel-major rows: the first 1024 bytes are the red plane
    assert torch.allclose(x[0].flatten(), torch.from_numpy(raw[b"data"][1, :1024]).float() / 255)
    assert int(y) == raw[b"labels"][1]


def test_cifar10_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        DATASETS.get("cifar10")(root=tmp_path)
    _write_batches(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 pickle batch"):
        DATASETS.get("cifar10")(root=tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        DATASETS.get("cifar10")(root=tmp_path, split="dev")


class _Payload:
    """Pickles as a call that creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("where", ["labels", "top"])
def test_cifar10_batch_with_a_code_payload_is_refused_without_running_it(tmp_path, where):
    _write_batches(tmp_path)
    marker = tmp_path / "payload-ran"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Payload(marker)]}
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(batch if where == "labels" else _Payload(marker), f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch: not a CIFAR-10 pickle batch \(it names \w+\.open, .*nothing was run\)"):
        DATASETS.get("cifar10")(root=tmp_path, split="test")
    assert not marker.exists()
    with open(tmp_path / "test_batch", "rb") as f:
        pickle.load(f)  # the same file through the plain unpickler ...
    assert marker.exists()  # ... does run the payload


def test_hybrid_kws_model_shapes_and_conversion():
    ann = MODELS.get("hybrid_kws")()
    x = torch.randn(2, 100, 1, 40)  # the speech features [B, steps, 1, bands]
    assert ann(x).shape == (2, 12)
    snn = convert_to_snn(ann, analog_layers=1)
    assert snn.analog is not None and snn(x).shape == (2, 12)


def test_hybrid_command_runs_on_speech_commands_tree(tmp_path):
    from test_speech_data import chirp, write

    root = tmp_path / "sc"
    for word, f0 in (("yes", 300), ("no", 600), ("bed", 900)):
        for speaker in "abcd":
            write(root / word / f"{speaker}000000_nohash_0.wav", chirp(f0 + 40 * ord(speaker) % 200))
    (root / "validation_list.txt").write_text("yes/c000000_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/d000000_nohash_0.wav\nno/d000000_nohash_0.wav\nbed/d000000_nohash_0.wav\n")
    write(root / "_background_noise_" / "hum.wav", chirp(50, 32000))
    argv = ["train", "hybrid_kws", "--out", str(tmp_path / "runs"), "--no-progress", "--set", f"dataset.root={root}", "--set", "dataset.cache=false",
            "--set", "stages.ann.epochs=1", "--set", "stages.snn.epochs=1", "--set", "stages.snn.transition.calibration_samples=4",
            "--set", "batch_size=4", "--set", "eval_batch_size=4"]
    assert main(argv) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert "| hybrid_kws (" in (run / "one_spike_conversion.md").read_text()
