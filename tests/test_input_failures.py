"""Bad inputs that used to give a traceback or pass silently: damaged caches and event files, odd recipes and dtypes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.cli import main
from spikeforge.data.audio_features import LogMelConfig, cache_key, cached
from spikeforge.data.events import EVENT_DTYPE, read_nmnist, write_nmnist
from spikeforge.registry import DATASETS, METHODS
from test_harness_tiny import FMNIST, tiny_recipe


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_feature_cache_is_rebuilt_with_one_warning(tmp_path, damage):
    calls = []

    def compute():
        calls.append(1)
        return {"features": torch.arange(6.0).reshape(2, 3)}, {"note": "x"}

    key = cache_key(LogMelConfig(), [], {"split": "train"})
    cached(tmp_path, key, compute)
    path = tmp_path / f"{key}.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.warns(UserWarning, match=f"feature cache {path} is unreadable .*; rebuilding it") as caught:
        tensors, meta = cached(tmp_path, key, compute)
    assert len(caught) == 1 and calls == [1, 1] and torch.equal(tensors["features"], torch.arange(6.0).reshape(2, 3)) and meta == {"note": "x"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(tmp_path, key, compute)  # rebuilt: read again without a warning or a third computation
    assert calls == [1, 1]


def test_recipe_whose_top_level_is_a_list_is_one_line(tmp_path, capsys):
    recipe = tmp_path / "list.yaml"
    recipe.write_text("- name: x\n- epochs: 2\n")
    for extra in ([], ["--set", "epochs=1"]):
        assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a recipe is a YAML mapping of keys" in err and "got list" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("weight", [-0.1, [0.5, -1.0]])
def test_negative_regularizer_weight_is_rejected(weight):
    with pytest.raises(ValueError, match=r"method.reg_weight must be >= 0"):
        METHODS.get("surrogate_bptt")(reg_weight=weight)


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_negative_regularizer_weight_in_a_recipe_is_one_line_and_no_run(tmp_path, capsys):
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "runs"), "--set", "method.reg_weight=-0.05"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "method.reg_weight must be >= 0" in err and not (tmp_path / "runs").exists()


def _nmnist_folder(root, per_split=12):
    """A small NMNIST-layout folder of random events, plus one empty and one truncated training file."""
    rng = np.random.default_rng(0)
    for folder in ("Train", "Test"):
        for i in range(per_split):
            ev = np.zeros(50, EVENT_DTYPE)
            ev["x"], ev["y"], ev["p"] = rng.integers(0, 34, 50), rng.integers(0, 34, 50), rng.integers(0, 2, 50)
            ev["t"] = np.sort(rng.integers(0, 20_000, 50))
            write_nmnist(root / folder / str(i % 3) / f"{i:05d}.bin", ev)
    (root / "Train" / "1" / "empty.bin").write_bytes(b"")
    (root / "Train" / "2" / "cut.bin").write_bytes(b"\x01" * 12)
    return ["empty.bin", "cut.bin"]


def test_empty_and_truncated_event_files_are_skipped_and_reported(tmp_path):
    bad = _nmnist_folder(tmp_path)
    with pytest.raises(ValueError, match=r"empty.bin: empty NMNIST file \(0 events\)"):
        read_nmnist(tmp_path / "Train" / "1" / "empty.bin")
    with pytest.warns(UserWarning, match="2 empty or truncated event files skipped") as caught:
        ds = DATASETS.get("nmnist")(root=tmp_path, split="train", steps=20)
    assert len(caught) == 1 and len(ds) == 12 and ds.report["files"] == 14 and ds.report["skipped"] == 2
    assert sorted(Path(line.split(":")[0]).name for line in ds.report["skipped_files"]) == sorted(bad)
    assert all(ds[i][0].shape == (20, 2, 34, 34) for i in range(len(ds)))


def test_training_goes_on_past_bad_event_files_and_lists_them_in_metrics(tmp_path):
    import yaml

    bad = _nmnist_folder(tmp_path / "nmnist")
    recipe = {"name": "events", "dataset": {"name": "nmnist", "root": str(tmp_path / "nmnist"), "steps": 20, "val_fraction": 0.25},
              "encoder": {"name": "sequence"}, "model": {"name": "demo_lif", "inputs": 2 * 34 * 34, "hidden": [8], "classes": 3},
              "method": {"name": "surrogate_bptt"}, "epochs": 1, "batch_size": 3}
    (tmp_path / "events.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.warns(UserWarning, match="2 empty or truncated event files skipped"):
        assert main(["train", str(tmp_path / "events.yaml"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    report = json.loads((run / "metrics.json").read_text())["data_report"]
    assert sorted(report) == ["test", "train"] and report["train"]["skipped"] == 2 and report["test"]["skipped"] == 0
    assert sorted(Path(line.split(":")[0]).name for line in report["train"]["skipped_files"]) == sorted(bad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_layers_name_an_input_dtype_that_differs_from_their_weights(dtype):
    from spikeforge.layers.dense import SpikingLinear

    layer = SpikingLinear(4, 3)
    with pytest.raises(ValueError, match=rf"SpikingLinear input: dtype {dtype} but the layer's weights are torch.float32; cast the input \(x.to\(torch.float32\)\)"):
        layer(torch.rand(2, 1, 4, dtype=dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(torch.rand(2, 1, 4, dtype=torch.bfloat16))  # mixed precision by autocast is the user's choice: no error


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_the_harness_casts_other_float_samples_to_float32_with_a_warning(dtype):
    from spikeforge.train.encode import encode

    x = torch.rand(3, 1, 4, 4, dtype=torch.float64).to(dtype)
    with pytest.warns(UserWarning, match=f"the dataset gives {dtype} samples; they are cast to torch.float32") as caught:
        out = encode(x, {"name": "direct", "steps": 2})
    assert len(caught) == 1 and out.dtype == torch.float32 and torch.equal(out[1], x.float())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encode(x.float(), {"name": "direct", "steps": 2}).dtype == torch.float32  # float32 passes silently
