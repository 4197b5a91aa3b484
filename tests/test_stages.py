"""Staged recipes: validation, the one_spike_conversion transition, the hybrid pipeline run by the one Trainer, kill/resume per stage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from spikeforge.cli import main
from spikeforge.methods.base import StageData
from spikeforge.methods.hybrid_temporal import ann_forward, calibrate_output_threshold, convert_to_snn, static_frame
from spikeforge.metrics.conversion import converged_epoch
from spikeforge.registry import TRANSITIONS
from spikeforge.train.config import RecipeError, load_recipe, stage_configs
from test_harness_tiny import FMNIST, cli_in_subprocess
from test_hybrid_conversion import _fc2_with_large_logits

TINY = ["--set", "dataset.limit=384", "--set", "dataset.val_fraction=0.25", "--set", "model.hidden=32", "--set", "batch_size=32",
        "--set", "eval_batch_size=128", "--set", "stages.ann.epochs=2", "--set", "stages.snn.epochs=2", "--set", "checkpoint_every=4",
        "--set", "stages.snn.transition.calibration_samples=64", "--no-progress"]  # 288 training samples: 9 steps per epoch
needs_fmnist = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")


def test_staged_recipe_resolves_each_stage_with_shared_keys():
    config = load_recipe("hybrid_fc2", ["batch_size=64", "stages.snn.epochs=5"])
    stages = stage_configs(config)
    assert list(stages) == ["ann", "snn"] and "method" not in config
    assert stages["ann"]["method"]["name"] == "hybrid_ann" and stages["snn"]["method"]["name"] == "stdbp"
    assert stages["ann"]["batch_size"] == stages["snn"]["batch_size"] == 64  # a shared key fills what a stage leaves out
    assert stages["snn"]["epochs"] == 5 and stages["ann"]["epochs"] == 15
    assert stages["snn"]["transition"]["output_threshold"] == "auto" and "transition" not in stages["ann"]
    assert stages["snn"]["dataset"] == config["dataset"] and stages["snn"]["seed"] == config["seed"]
    assert list(stage_configs(load_recipe("default"))) == ["default"]  # a plain recipe is one stage


def test_extends_merges_the_baseline_arm_over_its_recipe():
    base, arm = load_recipe("hybrid_fc2"), load_recipe("hybrid_fc2_baseline")
    assert arm["name"] == "hybrid_fc2_baseline"
    assert arm["stages"]["ann"]["method"] == {**base["stages"]["ann"]["method"], "lambda_w": 0.0, "lambda_a": 0.0}
    assert arm["stages"]["snn"] == base["stages"]["snn"] and arm["dataset"] == base["dataset"]


@pytest.mark.parametrize("overrides, message", [
    (["stages.ann.epoch=3"], "did you mean 'stages.ann.epochs'"),
    (["stages.snn.transition.force_firng=false"], "did you mean 'stages.snn.transition.force_firing'"),
    (["stages.snn.transition.name=one_spike"], "unknown transition 'one_spike'"),
    (["stages.ann.transition={name: one_spike_conversion}"], "only later stages have a transition"),
    (["method={name: stdbp}"], "gives each stage its own method"),
    (["stages.snn.method={lr: 1}"], "missing key 'stages.snn.method.name'"),
    (["stages=[]"], "stages: expected a mapping"),
    (["stages.snn.transition.output_threshold=-1"], "output_threshold must be a number > 0 or 'auto'"),
])
def test_bad_stages_fail_with_one_line_naming_the_key(overrides, message):
    with pytest.raises((RecipeError, ValueError, KeyError), match=message.replace("(", r"\(").replace(")", r"\)")):
        config = load_recipe("hybrid_fc2", overrides)
        TRANSITIONS.get("one_spike_conversion")(**{k: v for k, v in config["stages"]["snn"]["transition"].items() if k != "name"})


def test_extends_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\nname: a\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\nname: b\n")
    with pytest.raises(RecipeError, match="a cycle"):
        load_recipe(str(tmp_path / "a.yaml"))


def _data(x: torch.Tensor) -> StageData:
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    ds = torch.utils.data.TensorDataset(x, y)
    return StageData(ds, ds, ds, {"name": "direct", "steps": 1}, 64)


def test_one_spike_conversion_decides_once_and_rebuilds_the_same_snn_from_the_record():
    ann, x = _fc2_with_large_logits(2)  # output pre-activations above 1: ϑ_out = 1 breaks the equivalence
    data = _data(x)
    transition = TRANSITIONS.get("one_spike_conversion")(calibration_samples=150)
    decided = transition.decide(ann, data)
    assert decided["output_threshold"] == calibrate_output_threshold(ann, convert_to_snn(ann), x[:150])  # the first 150 training inputs
    assert decided["output_threshold"] > 1.0
    snn = transition.apply(ann, json.loads(json.dumps(decided)))  # what a resumed run reads back from transition.json
    reference = convert_to_snn(ann, output_threshold=decided["output_threshold"])
    probe = static_frame(torch.rand(1, 8, 1, 28, 28))
    assert torch.equal(snn(probe), reference(probe))
    fixed = TRANSITIONS.get("one_spike_conversion")(output_threshold=2.5)
    assert fixed.decide(ann, data) == {"output_threshold": 2.5}  # a number needs no data


def test_calibrated_windows_are_decided_once_recorded_and_make_a_large_activation_network_exact():
    ann, x = _fc2_with_large_logits(2)
    with torch.no_grad():  # each hidden unit: +1 on its (up to 4) pixels, the rest share −(count − 1) (Σw = 1): u up to about 3
        w = ann[1].weight
        on = w > 0
        w.copy_(torch.where(on, 1.0, -(on.sum(1, keepdim=True) - 1.0) / (~on).sum(1, keepdim=True)))
        logits, pre = ann_forward(ann, x)
    data = _data(x)
    assert pre[0][1].max() > 1.5, "the test needs hidden activations that break ϑ = 1"
    transition = TRANSITIONS.get("one_spike_conversion")(calibration_samples=150, windows="calibrated", output_threshold=500.0)
    decided = transition.decide(ann, data)
    assert decided == {"input_window": 1.0, "hidden_thresholds": [pytest.approx(float(pre[0][1][:150].max()))], "output_threshold": 500.0}
    snn = transition.apply(ann, json.loads(json.dumps(decided)))
    hidden = decided["hidden_thresholds"][0]
    # every hidden u ≤ ϑ_1 on the calibration inputs: t_out = c_1 + ϑ_out − u_out with c_1 = 1 + ϑ_1 (module note, neurons/relpsp.py)
    assert torch.allclose(snn(x[:150]), 1.0 + hidden + 500.0 - logits[:150], atol=1e-2)
    paper = TRANSITIONS.get("one_spike_conversion")(output_threshold=500.0)
    assert not torch.allclose(paper.apply(ann, paper.decide(ann, data))(x[:150]), 2.0 + 500.0 - logits[:150], atol=1e-2)
    with pytest.raises(ValueError, match="windows must be 'paper' or 'calibrated'"):
        TRANSITIONS.get("one_spike_conversion")(windows="wide")


def test_one_spike_conversion_report_is_what_the_tables_show():
    ann, x = _fc2_with_large_logits(2)
    data = _data(x)
    transition = TRANSITIONS.get("one_spike_conversion")(output_threshold=1.0)
    snn = transition.apply(ann, {"output_threshold": 1.0})
    report = transition.report(ann, snn, {"output_threshold": 1.0}, data)
    y = data.test.tensors[1]
    assert report["ann_acc"] == pytest.approx(float((ann(x).argmax(1) == y).float().mean()))
    assert report["init_acc_ff1"] == pytest.approx(float((snn(x).argmin(1) == y).float().mean()))
    assert report["init_acc_ff1_theta1"] == report["init_acc_ff1"]  # ϑ_out = 1 here
    no_ff = convert_to_snn(ann, force_firing=False)
    assert report["init_acc_ff0"] == pytest.approx(float((no_ff(x).argmin(1) == y).float().mean()))
    assert set(report["table1"]) == {"1", "3"}
    assert report["table1"]["1"]["weight_sum_min"] == pytest.approx(float(ann[1].weight.detach().sum(1).min()))  # Table 1 on the ANN's weights


def test_converged_epoch_hand_worked():
    assert converged_epoch([0.80, 0.874, 0.878, 0.88], tolerance=0.5) == 3  # 87.8 is within 0.5 points of 88.0, 87.4 is not
    assert converged_epoch([0.5]) == 1


@needs_fmnist
def test_train_hybrid_runs_both_stages_into_one_run_folder_and_the_commands_read_it(tmp_path, capsys):
    assert main(["train", "hybrid_fc2", "--out", str(tmp_path), *TINY]) == 0
    printed = capsys.readouterr().out
    (run,) = tmp_path.iterdir()
    for name in ("config.yaml", "metrics.json", "metrics.csv", "learning_curves.png", "one_spike_conversion.md",
                 "stages/ann/metrics.json", "stages/ann/checkpoints/best/weights.safetensors", "stages/snn/transition.json",
                 "stages/snn/metrics.json", "stages/snn/checkpoints/best/weights.safetensors"):
        assert (run / name).is_file(), name
    table = (run / "one_spike_conversion.md").read_text()
    assert table in printed and "| hybrid_fc2 (" in table and "min Σw" in table and "ϑ_out = 1" in table
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["stages"]) == ["ann", "snn"] and metrics["checkpoint"].startswith("snn: best")
    assert metrics["accuracy"] == metrics["stages"]["snn"]["accuracy"] and metrics["steps"] == 18
    assert (run / "metrics.csv").read_text().count("\n") == 5  # header + 2 + 2 epochs, numbered on
    record = json.loads((run / "stages" / "snn" / "transition.json").read_text())
    assert record["decided"]["output_threshold"] == record["report"]["output_threshold"] >= 1.0
    assert "spike rate" not in printed  # neither stage reports spike rates: none printed (no "nan%") and none stored as NaN
    for name in ("metrics.json", "stages/ann/metrics.json", "stages/snn/metrics.json"):
        stored = json.loads((run / name).read_text(), parse_constant=lambda word: pytest.fail(f"{name} holds {word}"))
        assert stored["mean_spike_rate"] is None and stored["spike_rates"] == {}
    for name in ("metrics.csv", "stages/ann/metrics.csv", "stages/snn/metrics.csv"):
        text = (run / name).read_text()
        assert "nan" not in text.lower() and "rate" not in text.splitlines()[0], name

    assert main(["eval", str(run)]) == 0
    assert f"accuracy {100 * metrics['accuracy']:.2f}%" in capsys.readouterr().out  # the SNN of the last stage
    (run / "learning_curves.png").unlink()
    assert main(["report", str(run)]) == 0 and "test accuracy" in capsys.readouterr().out
    assert (run / "learning_curves.png").is_file()  # report redraws the plots of a staged run
    assert main(["export", str(run)]) == 2 and "ReL-PSP" in capsys.readouterr().err  # NIR has no ReL-PSP neuron: refused, named
    assert main(["hybrid", str(run), str(run), "--out", str(tmp_path / "cmp")]) == 0
    both = (tmp_path / "cmp" / "hybrid.md").read_text()
    assert both.count("| hybrid_fc2 (") == 2 and both.count("### hybrid_fc2 (") == 2  # two rows, two Table 1 sections
    assert main(["hybrid", str(tmp_path)]) == 2 and "is not a run folder" in capsys.readouterr().err
    running = tmp_path / "running"
    shutil.copytree(run, running / run.name)
    (running / run.name / "stages" / "snn" / "metrics.json").unlink()  # as while the STDBP stage still trains
    assert main(["hybrid", str(running / run.name), "--out", str(tmp_path / "cmp2")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| hybrid_fc2 ("))
    assert "— (not finished: 2 epochs so far) | - |" in row and "nan" not in row
    assert main(["train", "hybrid_fc2", "--resume", str(run)]) == 0
    assert "is complete (every stage finished); nothing changed" in capsys.readouterr().out


PLUGIN = textwrap.dedent(
    """
    import os, signal
    from spikeforge.methods.hybrid_temporal import HybridANN, STDBP
    from spikeforge.registry import METHODS

    calls = {"ann": 0, "snn": 0}

    def _count(stage, model):
        if model.training and os.environ.get("KILL_STAGE") == stage:
            calls[stage] += 1
            if calls[stage] == int(os.environ["KILL_AT_STEP"]):
                os.kill(os.getpid(), signal.SIGKILL)

    class KilledANN(HybridANN):
        def step(self, model, x, y):
            _count("ann", model)
            return super().step(model, x, y)

    class KilledSTDBP(STDBP):
        def step(self, model, x, y):
            _count("snn", model)
            return super().step(model, x, y)

    METHODS.register("test_killed_ann")(lambda lambda_w=1e-3, lambda_a=1e-3, analog_layers=0: KilledANN(lambda_w, lambda_a, analog_layers))
    METHODS.register("test_killed_stdbp")(lambda: KilledSTDBP())
    """
)


def _train(tmp_path, args, stage="", at=0):
    return cli_in_subprocess(args, tmp_path / "stage_plugin.py", torch.get_num_threads(), KILL_STAGE=stage, KILL_AT_STEP=str(at))  # the in-process runs' thread count: same bits


@pytest.mark.slow
@needs_fmnist
def test_sigkill_in_the_ann_stage_and_in_the_stdbp_stage_then_resume_gives_the_same_weights(tmp_path, monkeypatch):
    (tmp_path / "stage_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("stage_plugin")  # the methods here too (no KILL_STAGE: they never kill)
    args = ["train", "hybrid_fc2", *TINY, "--set", "stages.ann.method.name=test_killed_ann", "--set", "stages.snn.method.name=test_killed_stdbp"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    (whole_run,) = (tmp_path / "whole").iterdir()
    whole = load_file(whole_run / "stages" / "snn" / "checkpoints" / "last" / "weights.safetensors")
    for stage, at, last in (("ann", 7, "step-00000004"), ("snn", 14, "step-00000012")):  # both mid-epoch (9 steps per epoch)
        killed = _train(tmp_path, [*args, "--out", str(tmp_path / stage)], stage, at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        (run,) = (tmp_path / stage).iterdir()
        assert os.readlink(run / "stages" / stage / "checkpoints" / "last") == last and not (run / "metrics.json").exists()
        assert main(["train", "hybrid_fc2", "--resume", str(run), "--no-progress"]) == 0
        other = load_file(run / "stages" / "snn" / "checkpoints" / "last" / "weights.safetensors")
        assert whole.keys() == other.keys()
        assert all(torch.equal(whole[k], other[k]) for k in whole), f"killed in stage {stage}: the final weights differ"
        a, b = (json.loads((r / "metrics.json").read_text()) for r in (whole_run, run))
        assert a["accuracy"] == b["accuracy"] and a["stages"]["ann"]["accuracy"] == b["stages"]["ann"]["accuracy"]


@pytest.mark.slow
@needs_fmnist
def test_torchrun_trains_both_stages_into_one_run_folder_and_resumes_after_a_kill(tmp_path, monkeypatch):
    (tmp_path / "stage_plugin.py").write_text(PLUGIN)
    # the `spikeforge` program with the plugin loaded: `entry`, whose ranks skip Python's shutdown (see its docstring)
    (tmp_path / "train.py").write_text("import stage_plugin; from spikeforge.cli import entry; entry()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("stage_plugin")
    args = ["train", "hybrid_fc2", *TINY, "--set", "stages.ann.epochs=1", "--set", "stages.snn.epochs=1",
            "--set", "stages.ann.method.name=test_killed_ann", "--set", "stages.snn.method.name=test_killed_stdbp"]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}

    def torchrun(argv, **kill):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(tmp_path / "train.py"), *argv]
        return subprocess.run(cmd, env={**env, "KILL_STAGE": kill.get("stage", ""), "KILL_AT_STEP": str(kill.get("at", 0))},
                              capture_output=True, text=True, timeout=300)

    killed = torchrun([*args, "--out", str(tmp_path / "ddp")], stage="snn", at=6)  # both ranks die mid-epoch in the STDBP stage
    assert killed.returncode != 0 and killed.stdout.count("stage 1/2: ann") == 1 and "stage 2/2: snn" in killed.stdout  # logged by rank 0 only
    (run,) = (tmp_path / "ddp").iterdir()  # only rank 0 writes
    assert (run / "stages" / "ann" / "metrics.json").is_file() and (run / "stages" / "snn" / "transition.json").is_file()
    assert os.readlink(run / "stages" / "snn" / "checkpoints" / "last") == "step-00000004" and not (run / "metrics.json").exists()
    resumed = torchrun(["train", "hybrid_fc2", "--resume", str(run), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage 1/2" not in resumed.stdout and resumed.stdout.count("stage 2/2: snn") == 1 and "resuming from step 4" in resumed.stdout
    assert list((tmp_path / "ddp").iterdir()) == [run] and (run / "one_spike_conversion.md").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    snn = json.loads((run / "stages" / "snn" / "metrics.json").read_text())
    assert snn["world_size"] == 2 and snn["ranks_in_sync"] is True and snn["parameter_hashes"][0] == snn["parameter_hashes"][1]
    assert list(metrics["stages"]) == ["ann", "snn"] and metrics["steps"] == 9

    assert main([*args, "--out", str(tmp_path / "one")]) == 0  # one process, the same global batches, no kill
    (one_run,) = (tmp_path / "one").iterdir()
    one_snn = json.loads((one_run / "stages" / "snn" / "metrics.json").read_text())
    decided = [json.loads((r / "stages" / "snn" / "transition.json").read_text())["decided"] for r in (run, one_run)]
    assert decided[0] == decided[1]  # ϑ_out calibrated on rank 0, the same as in one process
    ddp, one = (load_file(r / "stages" / "snn" / "checkpoints" / "last" / "weights.safetensors") for r in (run, one_run))
    assert ddp.keys() == one.keys() and all(torch.allclose(ddp[k], one[k], atol=1e-5, rtol=1e-4) for k in one)  # U′ (eq. 11) of the global batch
    assert snn["test_samples"] == one_snn["test_samples"]
