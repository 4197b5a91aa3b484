"""NIR export/import: the file, run by NIR's documented equations, gives the model's spikes; what NIR cannot express is refused by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from nir_families import (FAMILIES, NORSE_GAPS, NOT_IMPORTED, NOT_IMPORTED_SNN_MLIR, ROCKPOOL_GAPS, SINABS_GAPS, SNN_MLIR_DT, SNN_MLIR_GAPS,
                          SNNTORCH_GAPS, Chain, family)
from safetensors.torch import load_file
from spikeforge.cli import main
from spikeforge.export.nir_graph import COMPATS, export_nir, to_nir
from spikeforge.export.nir_import import ImportedNetwork, from_nir, import_nir
from spikeforge.export.nir_simulate import simulate
from spikeforge.layers import Pool, SpikingConv, SpikingLinear
from spikeforge.layers.base import SpikingLayer
from spikeforge.models.demo import demo_lif
from spikeforge.models.hybrid import hybrid_fc2_snn
from spikeforge.models.noise_nets import noise_cnn, noise_resnet18
from spikeforge.neurons.noisy import NoisyLIF, convert
from spikeforge.neurons.srm import SRM
from test_harness_tiny import FMNIST, tiny_recipe


def spikes_in_order(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(output, spikes of every spiking layer in the order the forward pass runs them)."""
    spikes, hooks = [], [m.register_forward_hook(lambda _m, _i, out: spikes.append(out[0] if isinstance(out, tuple) else out))
                         for m in model.modules() if isinstance(m, SpikingLayer | NoisyLIF | SRM)]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, spikes


def graph_spikes(graph: nir.NIRGraph, record: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The recorded outputs of the graph's spiking neurons, in graph order."""
    keys = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF | nir.IF | nir.CubaLIF | nir.Threshold)]
    return [record[k] for k in sorted(keys, key=lambda k: int(k.split(".")[0]))]


@pytest.mark.parametrize("compat", COMPATS)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_file_run_by_nir_semantics_gives_the_models_spikes(name, compat, tmp_path):
    model, shape, x = family(name)
    dt = SNN_MLIR_DT.get(name, 1e-3) if compat == "snn-mlir" else 1e-3
    if compat == "snn-mlir" and name in SNN_MLIR_GAPS:
        with pytest.raises(ValueError, match=re.escape(SNN_MLIR_GAPS[name])):
            to_nir(model, shape, dt=dt, compat=compat)
        return
    path = export_nir(model, shape, tmp_path / "model.nir", dt=dt, compat=compat)
    graph = nir.read(str(path))
    expected, layers = spikes_in_order(model, x)
    out, record = simulate(graph, x, record=True)
    simulated = graph_spikes(graph, record)
    assert len(simulated) == len(layers) and all(torch.equal(a, b) for a, b in zip(layers, simulated))
    assert all(float(s.mean()) > 0.01 for s in layers)  # every layer fires: the comparison is not trivial
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    refusal = NOT_IMPORTED.get(name) or (NOT_IMPORTED_SNN_MLIR.get(name) if compat == "snn-mlir" else None)
    if refusal:
        with pytest.raises(ValueError, match=re.escape(refusal)):
            import_nir(path)
        return
    back = import_nir(path)
    got, back_layers = spikes_in_order(back, x)
    assert all(torch.equal(a, b) for a, b in zip(layers, back_layers)) and len(back_layers) == len(layers)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert back.output_reduction == model.output_reduction


def test_the_file_states_dt_and_every_neuron_has_threshold_one_and_reset_zero():
    model, shape, _ = family("conv2d")
    graph = to_nir(model, shape, dt=2e-3)
    assert float(graph.metadata["dt"]) == 2e-3
    neurons = [n for n in graph.nodes.values() if isinstance(n, nir.LIF | nir.IF | nir.CubaLIF)]
    assert len(neurons) == 2
    for n in neurons:
        assert np.all(n.v_threshold == 1.0) and np.all(n.v_reset == 0.0) and np.all(n.v_leak == 0.0)
    beta = float(model[0].neuron.beta.detach())
    np.testing.assert_allclose(neurons[0].tau, 2e-3 / (1 - beta), rtol=1e-6)  # β = 1 − dt/τ
    np.testing.assert_allclose(neurons[0].r, 1 / (1 - beta), rtol=1e-6)  # r = τ/dt: unit input gain


def test_the_kernel_over_time_is_written_as_delayed_taps():
    model, shape, _ = family("kws_time_taps")
    graph = to_nir(model, shape, dt=1e-3)
    delays = sorted(float(np.unique(n.delay)[0]) for n in graph.nodes.values() if isinstance(n, nir.Delay))
    # layer 1: 4 taps, dilation 1 → delays 1, 2, 3 steps; layer 2: 3 taps, dilation 2 → 2, 4 steps
    np.testing.assert_allclose(delays, [1e-3, 2e-3, 2e-3, 3e-3, 4e-3], rtol=1e-6)


def test_the_snn_mlir_form_has_no_delay_no_dilation_and_holds_the_taps_in_a_recurrent_delay_line():
    """Kernel over time → pass-through LI slots x[n], x[n−1], … fed by a shift synapse; dilation → zeros in the kernel."""
    model, shape, x = family("kws_time_taps")
    graph = to_nir(model, shape, dt=1e-3, compat="snn-mlir")
    assert not any(isinstance(n, nir.Delay) for n in graph.nodes.values())
    assert all(np.all(np.asarray(n.dilation) == 1) for n in graph.nodes.values() if isinstance(n, nir.Conv1d))
    # layer 2: 3 taps at time dilation 2 → 5 slots of 4 channels; frequency dilation 2 of a 3-wide kernel → 5 wide
    line, conv = graph.nodes["2.synapse.line"], graph.nodes["2.synapse"]
    assert tuple(line.tau.shape) == (20, 10) and np.all(line.tau == np.float32(1e-3)) and np.all(line.r == 1)
    assert conv.weight.shape == (4, 20, 5) and np.all(conv.weight[:, :, 1::2] == 0)
    assert ("2.synapse.line", "2.synapse.line.shift") in graph.edges and ("2.synapse.line.shift", "2.synapse.line") in graph.edges
    _, record = simulate(graph, x, record=True)
    slots = record["2.synapse.line"].unflatten(2, (5, 4))  # [T, B, slot, channel, band]
    for j in range(1, 5):  # slot j holds slot 0 of j steps before
        assert torch.equal(slots[j:, :, j], slots[:-j, :, 0]) and not slots[:j, :, j].any()


def test_the_snn_mlir_form_refuses_if_neurons_off_dt_1_in_one_line():
    model, shape, _ = family("dense_nlif")
    with pytest.raises(ValueError, match=re.escape("snn-mlir 1.0 reads IF's r as the gain per step, with no dt")) as err:
        to_nir(model, shape, dt=1e-3, compat="snn-mlir")
    assert "--dt 1" in str(err.value) and "\n" not in str(err.value)


def test_srm_layers_are_written_with_nir_primitives_and_fractional_delays_as_two_taps():
    model, shape, _ = family("srm_delays")
    graph = to_nir(model, shape, dt=1e-3)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"Threshold", "CubaLI", "Delay", "Scale", "SumPool2d", "Conv2d", "Linear"} <= kinds
    delay = model.layers[0].delay.delay.detach().numpy().ravel()
    near, far = graph.nodes["1.srm.axon"], graph.nodes["1.srm.axon.next"]
    np.testing.assert_allclose(near.delay[:, 0, 0], np.floor(delay) * 1e-3, rtol=1e-6)
    np.testing.assert_allclose(far.delay[:, 0, 0], (np.floor(delay) + 1) * 1e-3, rtol=1e-6)
    np.testing.assert_allclose(graph.nodes["1.srm.axon.next.scale"].scale[:, 0, 0], delay - np.floor(delay), rtol=1e-5)
    assert ("1.srm.spike", "1.srm.refractory.delay") in graph.edges and ("1.srm.refractory.scale", "1.srm.spike") in graph.edges


def test_subtractive_reset_is_refused_with_the_deployable_option():
    model = Chain(SpikingLinear(4, 3), nn.Identity())
    with pytest.raises(ValueError, match=re.escape("layer '0' (SpikingLinear) cannot be exported to NIR: NIR neurons reset to v_reset")) as err:
        to_nir(model, (4,))
    assert "reset 'zero'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "model, shape, reason",
    [
        (Chain(SpikingLinear(4, 4, lateral=True)), (4,), "layer '0' (SpikingLinear) cannot be exported to NIR: its lateral reset"),
        (Chain(SpikingLinear(4, 4, reset="none")), (4,), "a neuron that never resets has no NIR form"),
        (Chain(Pool("max", 2)), (1, 4, 4), "2-D average and sum pooling"),
        (Chain(SpikingConv(1, 2, 3, spatial_dims=3, padding=1, reset="zero")), (1, 4, 4, 4), "NIR 1.0 has no Conv3d"),
        (noise_cnn(image_size=8, channels=(4, 4), hidden=16), (1, 8, 8), "in mode 'ensemble' it draws noise every step"),
    ],
    ids=["lateral", "no-reset", "max-pool", "conv3d", "noise-ensemble"],
)
def test_what_nir_cannot_express_is_refused_by_name(model, shape, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        to_nir(model, shape)


def test_relpsp_and_non_chain_models_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=re.escape("layer 'layers.1' (ReLPSPLinear) cannot be exported to NIR: ReL-PSP neurons")):
        to_nir(hybrid_fc2_snn(), (784,))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = SpikingLinear(3, 3, reset="zero")

        def forward(self, x):
            return self.a(x) + x

    with pytest.raises(ValueError, match="its forward pass is not the chain of its layers"):
        to_nir(Residual(), (3,))
    with pytest.raises(ValueError, match="cannot be exported to NIR"):
        to_nir(convert(noise_resnet18(), mode="lif"), (3, 8, 8))


def _foreign_lif(tau: float, r: float, threshold: float = 1.0, metadata: dict | None = None) -> nir.NIRGraph:
    w = np.ones((1, 1), dtype=np.float32)
    return nir.NIRGraph(
        nodes={"input": nir.Input({"input": np.array([1])}), "fc": nir.Linear(w),
               "lif": nir.LIF(np.array([tau]), np.array([r]), np.array([0.0]), np.array([threshold])),
               "out": nir.Linear(w), "output": nir.Output({"output": np.array([1])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "out"), ("out", "output")], metadata=metadata or {},
    )


def test_import_of_a_foreign_graph_follows_the_lif_equations_at_the_given_dt():
    """τ = 2 ms, r = 1 at dt = 1 ms: β = 0.5, gain dt·r/τ = 0.5; driven by 1.2 → v = 0.6, 0.9, 1.05 → spike, reset to 0."""
    graph = _foreign_lif(2e-3, 1.0)
    model = from_nir(graph, dt=1e-3)
    assert isinstance(model, ImportedNetwork) and model[0].neuron.cfg.reset == "zero"
    x = torch.full((5, 1, 1), 1.2)
    assert model(x).flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert simulate(graph, x, dt=1e-3).flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "graph, dt, message",
    [
        (_foreign_lif(1e-5, 1.0), 1e-3, "tau = 1e-05 s is below one time step dt = 0.001 s"),  # Norse's τ in seconds read at dt = 1 ms … fine; at 1 ms τ = 10 µs is not
        (_foreign_lif(0.01, 1.0), 1.0, "(β = 1 − dt/τ = -99 is outside [0, 1])"),  # a Norse file read as if dt were one unit
        (_foreign_lif(0.01, 1.0), None, "does not state its time step"),
        (_foreign_lif(0.01, 1.0), -1.0, "dt (the time step of the NIR graph, in seconds) must be a positive number"),
        (_foreign_lif(0.01, 1.0, threshold=-1.0), 1e-3, "v_threshold must be > 0"),
    ],
    ids=["tau-below-step", "beta-negative", "no-dt", "bad-dt", "threshold"],
)
def test_import_rejects_out_of_range_parameters_in_one_line(graph, dt, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        from_nir(graph, dt=dt)
    assert "\n" not in str(err.value)


def test_missing_files_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_nir(tmp_path / "none.nir")


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_export_command_writes_the_trained_deployable_model(tmp_path, capsys):
    """A run trained with the reset NIR expresses exports; the file, by NIR's equations, gives the checkpoint's outputs."""
    recipe = tiny_recipe(tmp_path, model={"name": "demo_lif", "hidden": [16], "reset": "zero"}, epochs=1)
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert main(["export", str(run), "--dt", "1e-4"]) == 0
    assert "dt = 0.0001 s" in capsys.readouterr().out
    original = demo_lif(hidden=[16], reset="zero")
    original.load_state_dict(load_file(run / "checkpoints" / "best" / "weights.safetensors"))
    assert main(["export", str(run), "--compat", "snn-mlir", "--output", str(tmp_path / "mlir.nir")]) == 0
    x = torch.rand(6, 3, 1, 28, 28)
    with torch.no_grad():
        for path in (run / "model.nir", tmp_path / "mlir.nir"):
            torch.testing.assert_close(simulate(nir.read(str(path)), x), original(x), atol=1e-5, rtol=1e-5)
    # the run folder alone exports, on a machine without the dataset: the input shape comes from metrics.json
    assert json.loads((run / "metrics.json").read_text())["input_shape"] == [1, 28, 28]
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["dataset"]["root"] = str(tmp_path / "not_here")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["export", str(run), "--dt", "1e-4", "--output", str(tmp_path / "moved.nir")]) == 0
    assert (tmp_path / "moved.nir").read_bytes() == (run / "model.nir").read_bytes()


def test_the_usage_matrix_says_what_the_interop_tests_measure():
    """docs/usage.md's row for each family: 'identical' for a tool exactly where the tests find identical spikes."""
    text = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    rows = {}
    for line in text.splitlines():
        names = re.findall(r"\(`([a-z0-9_]+)`(?:, `([a-z0-9_]+)`)?\)", line.split("|")[1]) if line.startswith("| ") else []
        for pair in names:
            for name in filter(None, pair):
                rows[name] = [cell.strip() for cell in line.split("|")[2:8]]
    assert set(rows) == set(FAMILIES)
    for name, (own, norse, snntorch, mlir, sinabs, rockpool) in rows.items():
        assert own.startswith("identical")
        assert norse.startswith("identical") == (name not in NORSE_GAPS), name
        assert snntorch.startswith("identical") == (name not in SNNTORCH_GAPS), name
        assert mlir.startswith("accepted") == (name not in SNN_MLIR_GAPS), name
        assert sinabs.startswith("identical") == (name not in SINABS_GAPS), name
        assert rockpool.startswith("identical") == (name not in ROCKPOOL_GAPS), name

