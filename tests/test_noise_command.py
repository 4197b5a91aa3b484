"""Noise-based training on tiny settings: the noise kinds as recipes, `spikeforge noise accuracy-vs-t`, the §3.2 timing benchmark."""

import importlib.util
import json
import os
import signal
import subprocess
from pathlib import Path

import nir
import pytest
import torch
from safetensors.torch import load_file

from spikeforge.cli import main
from test_harness_nir import graph_spikes, spikes_in_order
from test_harness_tiny import cli_in_subprocess
from spikeforge.data.idx import FASHION_MNIST_DEBIAN
from spikeforge.export.nir_simulate import simulate
from spikeforge.neurons.noisy import convert
from spikeforge.train.config import load_recipe
from spikeforge.train.stages import trained_model

needs_fmnist = pytest.mark.skipif(not FASHION_MNIST_DEBIAN.is_dir(), reason="needs apt package dataset-fashion-mnist")
TINY = ["--set", "model.channels=[4, 8, 8]", "--set", "model.hidden=16", "--set", "batch_size=64", "--set", "optimizer.lr=3.0e-3"]


def _timing_module():
    spec = importlib.util.spec_from_file_location("noise_timing", Path(__file__).resolve().parents[1] / "benchmarks" / "noise_timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_fmnist
def test_noise_kinds_are_recipes_and_accuracy_vs_t_reports_them(tmp_path, capsys):
    for recipe in ("noise_fmnist", "noise_fmnist_none"):
        assert main(["train", recipe, *TINY, "--set", "epochs=1", "--set", "dataset.limit=256", "--set", "method.eval_steps=2",
                     "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    (runs[0] / "learning_curves.png").unlink()
    capsys.readouterr()  # drop the training output
    for command, shows in (("eval", "accuracy "), ("report", "test accuracy")):  # the run-folder contract of every method
        assert main([command, str(runs[0])]) == 0 and shows in capsys.readouterr().out
    assert (runs[0] / "learning_curves.png").is_file() and (runs[0] / "spike_rates.png").is_file()  # report redraws the plots
    assert main(["export", str(runs[0])]) == 2  # refused with the reason (NoisyLIF draws noise every step) and the option
    assert "spikeforge export RUN --convert lif" in capsys.readouterr().err
    _export_converts_to_the_plain_lif(runs[0], tmp_path / "noise.nir")
    assert main(["noise", "accuracy-vs-t", *map(str, runs), "--steps", "1", "2", "--test-limit", "100", "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "accuracy_vs_t.json").read_text())
    rows = {(r["model"].split(" (")[0], r["mode"]): r["accuracy"] for r in report["rows"]}
    assert set(rows) == {("gaussian noise", "ensemble"), ("gaussian noise", "accumulate"), ("no noise", "ensemble"), ("no noise", "lif")}
    assert all(0.0 <= acc[str(t)] <= 1.0 for acc in rows.values() for t in (1, 2))
    assert rows[("no noise", "ensemble")]["1"] == rows[("no noise", "ensemble")]["2"]  # identical copies: no rise with T
    assert "| T = 1 | T = 2 |" in (tmp_path / "report" / "accuracy_vs_t.md").read_text()
    assert (tmp_path / "report" / "accuracy_vs_t.png").stat().st_size > 1000


def _export_converts_to_the_plain_lif(run: Path, path: Path) -> None:
    """`export --convert lif` writes the network converted to the plain LIF; the file, by NIR's equations, gives its spikes."""
    assert main(["export", str(run), "--convert", "lif", "--output", str(path)]) == 0
    _, model, _ = trained_model(run)
    convert(model.eval(), mode="lif")
    x = torch.rand(4, 2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    graph = nir.read(str(path))
    expected, layers = spikes_in_order(model, x)
    out, record = simulate(graph, x, record=True)
    simulated = graph_spikes(graph, record)
    assert len(simulated) == len(layers) and all(torch.equal(a, b) for a, b in zip(layers, simulated))
    assert layers[0].sum() >= 10  # the trained (sparse) network fires: the comparison is not of silent layers
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@needs_fmnist
def test_timing_benchmark_reaches_an_easy_target_with_both_methods_through_the_trainer(tmp_path):
    timing = _timing_module()
    overrides = [*TINY[1::2], "dataset.limit=512", "dataset.val_fraction=0.2"]
    result = timing.race("noise_fmnist", overrides, target=0.05, steps=2, eval_every=0.3, chunk=0.3, budget=60, clock="cpu")
    assert all(t is not None and t > 0 for t in result["seconds_to_target"].values())
    assert set(result["inference_ms_per_sample"]) == {"single-step + noise", "direct BPTT, T = 2", "single-step, T = 1"}
    assert result["val_samples"] == 102 and result["recipe"]["method"]["eval_steps"] == 2
    assert "single-step time / direct BPTT time" in timing.write_report(result, tmp_path)
    assert (tmp_path / "timing.json").exists() and (tmp_path / "timing.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="--target is a fraction"):
        timing.race("noise_fmnist", overrides, target=1.5, steps=2, eval_every=1, chunk=1, budget=1, clock="cpu")
    with pytest.raises(ValueError, match="needs method noise_single_step"):
        timing.race("noise_fmnist_bptt", overrides, target=0.5, steps=2, eval_every=1, chunk=1, budget=1, clock="cpu")


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
    assert main(["noise", "accuracy-vs-t", str(tmp_path), "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "T must be an integer >= 1" in capsys.readouterr().err
    assert main(["noise", "accuracy-vs-t", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["noise_fmnist", "noise_fmnist_uniform", "noise_fmnist_none", "noise_fmnist_bptt", "noise_mnist", "noise_cifar10_vgg16", "noise_cifar10_resnet18"])
def test_noise_recipes_validate(name):
    config = load_recipe(name)
    assert config["method"]["name"] in ("noise_single_step", "noise_direct_bptt")
    assert config["optimizer"] == {**config["optimizer"], "name": "adam", "lr": 1e-4}  # §3: Adam, lr 1e-4
    assert config["schedule"]["name"] == "cosine_restarts" and config["schedule"]["t0"] == 100.0  # T_max = 100


KILL_PLUGIN = """
import os, signal
from spikeforge.models.noise_nets import NoiseNet

_forward, _calls = NoiseNet.forward, [0]


def forward(self, x):
    if self.training:
        _calls[0] += 1
        if _calls[0] == int(os.environ.get("KILL_AT_FORWARD", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
    return _forward(self, x)


NoiseNet.forward = forward
"""


@needs_fmnist
def test_sigkill_mid_epoch_then_resume_gives_the_same_weights_bit_for_bit(tmp_path):
    (tmp_path / "kill_plugin.py").write_text(KILL_PLUGIN)

    def train(out: str, *extra: str, kill_at: int = 0) -> subprocess.CompletedProcess:
        args = ["train", "noise_fmnist", *TINY, "--set", "epochs=2", "--set", "dataset.limit=256", "--set", "dataset.val_fraction=0.25",
                "--set", "batch_size=32", "--set", "method.eval_steps=2", "--set", "checkpoint_every=2", "--out", str(tmp_path / out),
                "--no-progress", *extra]
        return cli_in_subprocess(args, tmp_path / "kill_plugin.py", KILL_AT_FORWARD=str(kill_at))

    assert train("a").returncode == 0
    killed = train("b", kill_at=9)  # 6 steps per epoch: killed in epoch 2, after the checkpoint of step 8
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (run_b,) = (tmp_path / "b").iterdir()
    assert os.readlink(run_b / "checkpoints" / "last") == "step-00000008"
    resumed = train("b", "--resume", str(run_b))
    assert resumed.returncode == 0 and "resuming from step 8 (epoch 2, batch 2)" in resumed.stdout, resumed.stderr[-2000:]
    (run_a,) = (tmp_path / "a").iterdir()
    a, b = (load_file(run / "checkpoints" / "last" / "weights.safetensors") for run in (run_a, run_b))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run_a / "metrics.json").read_text())["accuracy"] == json.loads((run_b / "metrics.json").read_text())["accuracy"]
