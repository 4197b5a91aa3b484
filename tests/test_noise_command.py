"""`spikeforge noise` reports on tiny settings: accuracy versus T, the sweep over noise kinds, the §3.2 timing."""

import json

import pytest

from spikeforge.cli import main
from spikeforge.data.idx import FASHION_MNIST_DEBIAN
from spikeforge.train.config import load_recipe

needs_fmnist = pytest.mark.skipif(not FASHION_MNIST_DEBIAN.is_dir(), reason="needs apt package dataset-fashion-mnist")
TINY = ["--set", "model.channels=[4, 8, 8]", "--set", "model.hidden=16", "--set", "batch_size=64", "--set", "optimizer.lr=3.0e-3"]


@needs_fmnist
def test_sweep_writes_table_png_and_json(tmp_path):
    rc = main(["noise", "sweep", "noise_fmnist", *TINY, "--noise", "gaussian", "none", "--epochs", "1", "--train-limit", "256",
               "--test-limit", "100", "--steps", "1", "2", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "accuracy_vs_t.json").read_text())
    rows = {(r["model"], r["mode"]): r["accuracy"] for r in report["rows"]}
    assert set(rows) == {("gaussian noise", "ensemble"), ("gaussian noise", "accumulate"), ("no noise", "ensemble"), ("no noise", "lif")}
    assert all(0.0 <= acc[str(t)] <= 1.0 for acc in rows.values() for t in (1, 2))
    assert report["train_samples"] == 256 and report["test_samples"] == 100
    assert "| T = 1 | T = 2 |" in (tmp_path / "accuracy_vs_t.md").read_text()
    assert (tmp_path / "accuracy_vs_t.png").stat().st_size > 1000


@needs_fmnist
def test_timing_reaches_an_easy_target_with_both_methods(tmp_path):
    rc = main(["noise", "timing", "noise_fmnist", *TINY, "--target", "0.05", "--steps", "2", "--train-limit", "256", "--val-size", "100",
               "--eval-every", "0.3", "--chunk", "0.3", "--budget", "60", "--out", str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / "timing.json").read_text())
    assert all(t is not None and t > 0 for t in result["seconds_to_target"].values())
    assert set(result["inference_ms_per_sample"]) == {"single-step + noise", "direct BPTT, T = 2", "single-step, T = 1"}
    assert "single-step time / direct BPTT time" in (tmp_path / "timing.md").read_text()


@needs_fmnist
def test_accuracy_vs_t_of_a_trained_run(tmp_path):
    rc = main(["train", "noise_fmnist", *TINY, "--set", "epochs=1", "--set", "dataset.limit=128", "--set", "method.eval_steps=2",
               "--out", str(tmp_path / "runs"), "--no-progress"])
    assert rc == 0
    (run,) = (tmp_path / "runs").iterdir()
    rc = main(["noise", "accuracy-vs-t", str(run), "--steps", "1", "3", "--modes", "ensemble", "accumulate", "lif",
               "--alpha", "2", "inf", "--out", str(tmp_path / "report")])
    assert rc == 0
    rows = json.loads((tmp_path / "report" / "accuracy_vs_t.json").read_text())["rows"]
    assert [(r["mode"], r["alpha"]) for r in rows] == [("ensemble", None), ("accumulate", 2.0), ("accumulate", float("inf")), ("lif", None)]


@needs_fmnist
def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["noise", "timing", "noise_fmnist", "--target", "1.5", "--out", str(tmp_path)]) == 2
    assert "--target is a fraction" in capsys.readouterr().err
    assert main(["noise", "sweep", "noise_fmnist", "--steps", "0", "--epochs", "1", "--train-limit", "64", "--test-limit", "10", "--noise", "none",
                 *TINY, "--out", str(tmp_path)]) == 2
    assert "T must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["noise_fmnist", "noise_fmnist_uniform", "noise_fmnist_bptt", "noise_mnist", "noise_cifar10_vgg16", "noise_cifar10_resnet18"])
def test_noise_recipes_validate(name):
    config = load_recipe(name)
    assert config["method"]["name"] in ("noise_single_step", "noise_direct_bptt")
    assert config["optimizer"] == {**config["optimizer"], "name": "adam", "lr": 1e-4}  # §3: Adam, lr 1e-4
    assert config["schedule"]["name"] == "cosine_restarts" and config["schedule"]["t0"] == 100.0  # T_max = 100
