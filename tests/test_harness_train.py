"""End to end: train a tiny recipe, the run folder, report/eval/export/list, and the bad-input cases."""

from __future__ import annotations

import json
import os
import signal
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from spikeforge.cli import main
from spikeforge.models.demo import DemoLIF
from spikeforge.registry import MODELS
from spikeforge.train.config import load_recipe
from spikeforge.train.trainer import Trainer, TrainingDiverged
from test_harness_tiny import FMNIST, cli_in_subprocess, tiny_recipe

pytestmark = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
PLOTS = ["learning_curves.png", "spike_rates.png", "spike_raster.png", "output_traces.png", "accuracy_vs_time.png"]


def _run_dir(out):
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def test_train_writes_the_run_folder_and_the_commands_read_it(tmp_path, capsys):
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    run = _run_dir(tmp_path / "runs")
    assert "test accuracy" in printed and "spike rate lif1" in printed and f"run folder: {run}" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "loss", "spike_rates", "synops_per_sample", "parameters", "wall_time_s", "peak_memory_mb", "accuracy_vs_time"):
        assert key in metrics
    assert metrics["parameters"] == 784 * 16 + 16 + 1 + 16 * 10 + 10  # weights, thresholds, β, readout
    assert len(metrics["accuracy_vs_time"]) == 4 and metrics["accuracy_vs_time"][-1] == pytest.approx(metrics["accuracy"])
    assert 0 < metrics["spike_rates"]["lif1"] < 1 and metrics["synops_per_sample"] > 0
    assert metrics["accuracy"] > 0.3  # 10 classes: well above chance after 12 steps
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert "train_rate" in (run / "metrics.csv").read_text().splitlines()[0] and metrics["mean_spike_rate"] == metrics["spike_rates"]["lif1"]
    summary = [line.split() for line in printed.splitlines() if line.startswith("mean spike rate")]
    assert printed.count("| mean spike rate ") == 2 and summary == [["mean", "spike", "rate", f"{100 * metrics['mean_spike_rate']:.2f}%"]]
    assert all((run / name).stat().st_size > 1000 for name in PLOTS)
    assert any((run / "tensorboard").iterdir()) and (run / "checkpoints" / "best" / "weights.safetensors").exists()
    assert load_recipe(str(run / "config.yaml"))["model"]["hidden"] == [16]

    for name in PLOTS:
        (run / name).unlink()
    assert main(["report", str(run)]) == 0
    assert "test accuracy" in capsys.readouterr().out and all((run / name).exists() for name in PLOTS)

    assert main(["eval", str(run)]) == 0
    assert f"accuracy {100 * metrics['accuracy']:.2f}%" in capsys.readouterr().out  # same checkpoint, same number

    assert main(["export", str(run), "--format", "nir"]) == 2  # the default LIF subtracts its threshold: no exact NIR form
    assert "subtractive reset" in capsys.readouterr().err and not (run / "model.nir").exists()


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for line in ("recipes:", "  default", "datasets:", "  fashion_mnist", "models:", "  demo_lif", "methods:", "  surrogate_bptt", "losses:", "  cross_entropy", "  mse"):
        assert line in out


def test_missing_dataset_path_is_one_clear_line(tmp_path, capsys):
    rc = main(["train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "runs"), "--set", "dataset.root=/no/such/folder"])
    err = capsys.readouterr().err
    assert rc == 2 and "/no/such/folder does not exist" in err and "--set dataset.root=PATH" in err and err.count("\n") == 1


def test_recipe_typo_on_the_command_line(tmp_path, capsys):
    assert main(["train", str(tiny_recipe(tmp_path)), "--set", "optimizer.lrate=1"]) == 2
    assert "did you mean 'optimizer.lr'" in capsys.readouterr().err


class _Sabotaged(DemoLIF):
    """The demo model with a hook that acts at the Nth training forward pass."""

    def __init__(self, at: int, action) -> None:
        super().__init__(784, [16], 10)
        self.calls, self.at, self.action = 0, at, action

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                return self.action(out)
        return out


def _interrupt(out):
    os.kill(os.getpid(), signal.SIGINT)
    return out


MODELS.register("test_nan_at_5")(lambda: _Sabotaged(5, lambda out: out * float("nan")))
MODELS.register("test_sigint_at_3")(lambda: _Sabotaged(3, _interrupt))


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = load_recipe(str(tiny_recipe(tmp_path)), ["model={name: test_nan_at_5}"])
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(config, run, log=lambda _: None, progress_bar=False)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 5 \(epoch 1, batch 5\); training stopped; the last good checkpoint is kept: .*step-00000004"):
        trainer.fit()
    weights = load_file(run / "checkpoints" / "last" / "weights.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly_then_resumes(tmp_path, capsys):
    recipe = str(tiny_recipe(tmp_path, checkpoint_every=0))
    out = tmp_path / "runs"
    assert main(["train", recipe, "--out", str(out), "--no-progress", "--set", "model={name: test_sigint_at_3}"]) == 130
    run = _run_dir(out)
    err = capsys.readouterr().err
    assert "interrupted at step 3; checkpoint saved" in err and f"--resume {run}" in err
    assert os.readlink(run / "checkpoints" / "last") == "step-00000003"
    plain = "model={name: demo_lif, hidden: [16]}"  # the same weights, without the SIGINT hook
    assert main(["train", "tiny", "--resume", str(run), "--no-progress", "--set", plain]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 12


PLUGIN = textwrap.dedent(
    """
    import os, signal
    from spikeforge.models.demo import DemoLIF
    from spikeforge.registry import MODELS

    class Killed(DemoLIF):
        calls = 0
        def forward(self, x):
            if self.training:
                Killed.calls += 1
                if Killed.calls == int(os.environ.get("KILL_AT_FORWARD", "0")):
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().forward(x)

    MODELS.register("test_killed")(lambda: Killed(784, [16], 10))
    """
)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tmp_path, monkeypatch):
    (tmp_path / "harness_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("harness_plugin")  # registers "test_killed" here too (no KILL_AT_FORWARD: it never fires)
    recipe = str(tiny_recipe(tmp_path, model={"name": "test_killed"}, encoder={"name": "rate", "steps": 4}, sampler="weighted"))
    common = ["--no-progress", "--set", "checkpoint_every=2"]
    assert main(["train", recipe, "--out", str(tmp_path / "a"), *common]) == 0
    killed = cli_in_subprocess(["train", recipe, "--out", str(tmp_path / "b"), *common], tmp_path / "harness_plugin.py", timeout=120, KILL_AT_FORWARD="9")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_b = _run_dir(tmp_path / "b")
    assert os.readlink(run_b / "checkpoints" / "last") == "step-00000008"  # epoch 2, batch 2 of 6: mid-epoch
    assert main(["train", recipe, "--out", str(tmp_path / "b"), "--resume", *common]) == 0
    a = load_file(_run_dir(tmp_path / "a") / "checkpoints" / "last" / "weights.safetensors")
    b = load_file(run_b / "checkpoints" / "last" / "weights.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    ja, jb = (json.loads((_run_dir(tmp_path / d) / "metrics.json").read_text()) for d in "ab")
    assert ja["accuracy"] == jb["accuracy"] and ja["steps"] == jb["steps"] == 12


def test_gradient_clipping_by_value_bounds_each_update(tmp_path):
    config = load_recipe(str(tiny_recipe(tmp_path)), ["grad_clip=1e-4", "optimizer={name: sgd, lr: 1.0}", "epochs=1", "schedule={name: constant}"])
    trainer = Trainer(config, None, log=lambda _: None, progress_bar=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    steps = trainer.state.step
    for key, value in trainer.model.state_dict().items():
        assert float((value - before[key]).abs().max()) <= steps * 1e-4 + 1e-7, key


def test_the_trainer_tells_the_method_the_epochs_done_before_every_step(tmp_path):
    config = load_recipe(str(tiny_recipe(tmp_path)), ["method.reg_weight=0.5", "method.reg_warmup=1.0"])
    trainer = Trainer(config, None, log=lambda _: None, progress_bar=False)
    seen, tell = [], trainer.method.set_progress
    trainer.method.set_progress = lambda epochs: (seen.append(epochs), tell(epochs))
    trainer.fit()
    per_epoch = trainer.steps_per_epoch
    assert seen == [k / per_epoch for k in range(trainer.state.step)] and trainer.method.reg_ramp() == 1.0


def test_validate_start_records_epoch_zero_and_keeps_the_start_when_training_does_not_beat_it(tmp_path, capsys):
    """lr = 0: training changes nothing, so no epoch beats the start and the best checkpoint is epoch 0."""
    recipe = tiny_recipe(tmp_path, optimizer={"name": "adam", "lr": 0.0}, validate_start=True)
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    assert "epoch 0/2: start (before training) | val loss" in capsys.readouterr().out
    run = _run_dir(tmp_path / "runs")
    metrics = json.loads((run / "metrics.json").read_text())
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    assert first["epoch"] == "0" and first["step"] == "0" and first["train_loss"] == "" and len(rows) == 1 + 3
    assert metrics["checkpoint"] == "best (epoch 0)" and metrics["epochs"] == 2
    trained = tiny_recipe(tmp_path, optimizer={"name": "adam", "lr": 0.005}, validate_start=True)
    assert main(["train", str(trained), "--out", str(tmp_path / "runs2"), "--no-progress"]) == 0
    assert json.loads((_run_dir(tmp_path / "runs2") / "metrics.json").read_text())["checkpoint"] != "best (epoch 0)"
