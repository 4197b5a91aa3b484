"""NIR export/import: identical outputs after a round trip; what NIR cannot express is refused by name."""

from __future__ import annotations

import re
from collections import OrderedDict

import nir
import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.export.nir_graph import ImportedNetwork, export_nir, from_nir, import_nir, to_nir
from spikeforge.layers import Flatten, Pool, Readout, SpikingConv, SpikingLinear
from spikeforge.metrics.spikes import SpikeRecorder


class Chain(nn.Sequential):
    output_reduction = "mean"


def _low_thresholds(model: nn.Module) -> nn.Module:
    """Thresholds small enough that every layer fires on random input (so the comparison is not trivial)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SpikingLinear | SpikingConv):
                m.neuron.threshold.uniform_(0.02, 0.1)
    return model


def _round_trip(model: nn.Module, shape: tuple[int, ...], tmp_path) -> None:
    torch.manual_seed(1)
    x = (torch.rand(6, 3, *shape) < 0.4).float()
    path = export_nir(model, shape, tmp_path / "model.nir")
    back = import_nir(path)
    with torch.no_grad(), SpikeRecorder(model) as r1, SpikeRecorder(back) as r2:
        a, b = model(x), back(x)
    assert torch.equal(a, b) and a.abs().sum() > 0
    rates = [float(s.mean()) for s in r1.spikes.values()]
    assert rates == [float(s.mean()) for s in r2.spikes.values()] and all(r > 0 for r in rates)
    assert back.output_reduction == model.output_reduction


@pytest.mark.parametrize(
    "neuron",
    [{}, {"nlif": True}, {"tau_syn": 2.5}, {"input_scale": "one_minus_beta", "reset": "zero"}],
    ids=["LIF", "IF", "CUBA", "LIF-scaled-zero-reset"],
)
def test_dense_round_trip_is_identical(tmp_path, neuron):
    torch.manual_seed(0)
    model = _low_thresholds(Chain(Flatten(), SpikingLinear(12, 10, **neuron), SpikingLinear(10, 8, normalize_threshold=False, **neuron), Readout(8, 4)))
    _round_trip(model, (3, 4), tmp_path)


def test_conv_round_trip_is_identical(tmp_path):
    torch.manual_seed(0)
    model = _low_thresholds(Chain(
        SpikingConv(2, 4, 3, padding=1, tau_syn=3.0), Pool("avg", 2), SpikingConv(4, 4, 3, padding=1, nlif=True, bias=True),
        Flatten(), SpikingLinear(64, 16, reset="zero"), Readout(16, 5, normalized=True, integrate=0.8),
    ))
    _round_trip(model, (2, 8, 8), tmp_path)
    conv1d = _low_thresholds(Chain(SpikingConv(3, 4, 3, spatial_dims=1, padding=1), Flatten(), Readout(4 * 10, 3)))
    _round_trip(conv1d, (3, 10), tmp_path)


def test_exported_graph_uses_nir_semantics():
    torch.manual_seed(0)
    layer = SpikingLinear(3, 2, beta_init=0.75, threshold_init=1.5, normalize_threshold=False)
    graph = to_nir(Chain(layer, Readout(2, 2)), (3,))
    node = graph.nodes["0.neuron"]
    assert isinstance(node, nir.LIF) and isinstance(graph.nodes["0.synapse"], nir.Linear)
    np.testing.assert_allclose(node.tau, [4.0, 4.0])  # β = 1 − 1/τ
    np.testing.assert_allclose(node.r, [4.0, 4.0])  # input gain R/τ = 1
    np.testing.assert_allclose(node.v_threshold, [1.5, 1.5])
    assert node.metadata["spikeforge"]["reset"] == "subtract"
    assert [e for e in graph.edges] == [("input", "0.synapse"), ("0.synapse", "0.neuron"), ("0.neuron", "1"), ("1", "output")]


def test_import_of_a_foreign_graph_follows_the_lif_equations():
    """A NIR LIF with τ = 2, R = 2 (β = 0.5, gain 1) and v_threshold = 1, reset to 0, driven by a constant 0.6."""
    w = np.ones((1, 1), dtype=np.float32)
    graph = nir.NIRGraph(
        nodes={"input": nir.Input({"input": np.array([1])}), "fc": nir.Linear(w),
               "lif": nir.LIF(np.array([2.0]), np.array([2.0]), np.array([0.0]), np.array([1.0])),
               "out": nir.Linear(w), "output": nir.Output({"output": np.array([1])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "out"), ("out", "output")],
    )
    model = from_nir(graph)
    assert isinstance(model, ImportedNetwork) and model[0].neuron.cfg.reset == "zero"
    out = model(torch.full((5, 1, 1), 0.6)).flatten().tolist()
    # U: 0.6, 0.9, 1.05 → spike, reset to 0: 0.6, 0.9 (U[n] = 0.5·U[n−1]·(1 − S[n−1]) + 0.6)
    assert out == [0.0, 0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "layer, reason",
    [
        (SpikingLinear(4, 4, lateral=True), "layer '0' (SpikingLinear) cannot be exported to NIR: its lateral reset"),
        (SpikingConv(1, 2, 3, spatial_dims=1, time_kernel=2, padding=1), "no convolution over time"),
        (Pool("max", 2), "only 2-D average and sum pooling"),
    ],
)
def test_layers_nir_cannot_express_are_refused_by_name(layer, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        to_nir(Chain(layer), (4,) if isinstance(layer, SpikingLinear) else (1, 6) if isinstance(layer, SpikingConv) else (1, 4, 4))


def test_relpsp_layers_are_refused_with_the_reason():
    class ReLPSPLayer(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=re.escape("layer 'hidden' (ReLPSPLayer) cannot be exported to NIR: ReL-PSP neurons")):
        to_nir(Chain(OrderedDict(hidden=ReLPSPLayer())), (3,))


def test_non_chain_models_and_missing_files_are_explained(tmp_path):
    with pytest.raises(ValueError, match="feed-forward chain"):
        to_nir(nn.Linear(2, 2), (2,))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_nir(tmp_path / "none.nir")
