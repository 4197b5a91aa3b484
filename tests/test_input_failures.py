"""Bad inputs that used to give a traceback or pass silently: damaged caches and event files, odd recipes and dtypes."""

from __future__ import annotations

import warnings

import pytest
import torch

from spikeforge.cli import main
from spikeforge.data.audio_features import LogMelConfig, cache_key, cached
from spikeforge.registry import METHODS
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
    assert err.count("\n") == 1 and "method.reg_weight must be >= 0" in err and list((tmp_path / "runs").iterdir()) == []
