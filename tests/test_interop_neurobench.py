"""NeuroBench 2.3 on spikeforge models: its metrics run and agree with spikeforge's spike rates and SynOps; layouts are explicit."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nir_families import Chain, family
from spikeforge.cli import main
from spikeforge.integrations.layout import predict, time_major
from spikeforge.layers import Flatten, Pool, Readout, SpikingConv
from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.metrics.synops import SynOpsCounter
from spikeforge.methods.base import Method
from test_harness_tiny import FMNIST, tiny_recipe

nb = pytest.importorskip("spikeforge.integrations.neurobench", reason="NeuroBench is in the [interop] test extra")


def _own_counts(model, x_time_major, y):
    """spikeforge's activation sparsity (from spike rates), SynOps per sample and accuracy on the same data."""
    with torch.no_grad(), SpikeRecorder(model) as rec, SynOpsCounter(model) as ops:
        out = model(x_time_major)
        ops.add_samples(x_time_major.shape[1])
    spikes = sum(float(s.sum()) for s in rec.spikes.values())
    neurons = sum(s.numel() for s in rec.spikes.values())
    accuracy = float((out.mean(0).argmax(-1) == y).float().mean())
    return 1 - spikes / neurons, sum(ops.per_sample().values()), accuracy


def test_neurobench_metrics_agree_with_spikeforges_own_on_a_dense_net():
    model, _, x = family("dense_lif")  # x: [T = 12, B = 3, 12]
    x = torch.cat([x, (torch.rand(12, 17, 12, generator=torch.Generator().manual_seed(2)) < 0.4).float()], 1)  # 20 samples
    y = torch.randint(0, 4, (20,), generator=torch.Generator().manual_seed(3))
    batch_first = x.transpose(0, 1).contiguous()  # NeuroBench's loaders give [B, T, ...]
    results = nb.run_benchmark(model, DataLoader(TensorDataset(batch_first, y), batch_size=8), layout="BTF")
    sparsity, synops, accuracy = _own_counts(model, x, y)
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert results["ParameterCount"] == sum(p.numel() for p in model.parameters()) and results["Footprint"] == 4 * params
    assert results["ConnectionSparsity"] == 0.0  # no zero weights
    assert results["ActivationSparsity"] == pytest.approx(sparsity, abs=1e-9) and 0 < sparsity < 1
    ops = results["SynapticOperations"]
    assert ops["Effective_ACs"] + ops["Effective_MACs"] == pytest.approx(synops, rel=1e-9) and ops["Effective_MACs"] == 0  # spike input: ACs
    assert ops["Dense"] == 12 * (12 * 10 + 10 * 8 + 8 * 4)  # every synapse at every step
    assert results["ClassificationAccuracy"] == pytest.approx(accuracy)
    neurons = 10 + 8
    assert 0 < results["MembraneUpdates"] <= neurons * 12


def test_neurobench_counts_convolutions_exactly_where_spikeforge_bounds_them():
    """spikeforge's SynOps give each input event its full fan-out (borders ignored); NeuroBench counts the padded borders out."""
    torch.manual_seed(0)
    model = Chain(SpikingConv(2, 4, 3, padding=1, reset="zero"), Pool("avg", 2), Flatten(), Readout(64, 5))
    with torch.no_grad():
        model[0].neuron.threshold.uniform_(0.02, 0.1)
    x = (torch.rand(6, 8, 2, 8, 8) < 0.3).float()
    y = torch.zeros(8, dtype=torch.long)
    results = nb.run_benchmark(model, DataLoader(TensorDataset(x.transpose(0, 1), y), batch_size=4), layout="BT")
    sparsity, synops, _ = _own_counts(model, x, y)
    ops = results["SynapticOperations"]
    assert results["ActivationSparsity"] == pytest.approx(sparsity, abs=1e-9)
    assert 0.8 * synops < ops["Effective_ACs"] + ops["Effective_MACs"] < synops  # 8×8 maps, 3×3 kernels: the border share


def test_layout_is_explicit_and_checked():
    model, _, x = family("dense_lif")
    torch.testing.assert_close(predict(model, x.transpose(0, 1), layout="BT"), predict(model, x, layout="TB"))
    with pytest.raises(ValueError, match="layout must say where batch"):
        nb.SpikeforgeModel(model, layout="NCHW")
    with pytest.raises(ValueError, match="names 4 axes, but the input has shape"):
        time_major(x, "BTCF")


def test_neurobench_table_through_the_method_and_encoder():
    model, _, x = family("dense_lif")
    data = TensorDataset(x[0], torch.zeros(3, dtype=torch.long))  # one step's values, repeated by the direct encoder
    text = nb.neurobench_table(model, Method(), data, {"name": "direct", "steps": 5}, batch_size=2)
    for line in ("Footprint", "ActivationSparsity", "SynapticOperations Effective_ACs", "SynapticOperations Dense", "MembraneUpdates", "ClassificationAccuracy"):
        assert line in text


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_eval_prints_neurobenchs_table_for_a_run(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, epochs=1)
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    capsys.readouterr()
    assert main(["eval", str(run), "--neurobench"]) == 0
    out = capsys.readouterr().out
    assert "SynapticOperations Effective_MACs" in out and "ClassificationAccuracy" in out  # the first layer takes analog pixels: MACs
