"""Architecture shorthand of the spikemax paper parsed into SRM networks."""

import pytest
import torch
from torch import nn

from spikeforge.layers.delay import AxonalDelay
from spikeforge.metrics.spikes import SpikeRecorder
from spikeforge.models.shorthand import SumPool, parse_shorthand
from spikeforge.registry import MODELS


def _weights(model):
    return sum(p.numel() for name, p in model.named_parameters() if not name.endswith("delay"))


def test_ntidigits_architecture_matches_table_1_parameter_count():
    model = MODELS.get("shorthand")(arch="64-256-256-11")
    assert [layer.synapse.weight.shape for layer in model.layers] == [(256, 64), (256, 256), (11, 256)]
    assert _weights(model) == 84_736  # Table I, N-TIDIGITS18
    assert [type(layer.delay) for layer in model.layers] == [AxonalDelay, AxonalDelay, type(None)]


def test_nmnist_and_gesture_architectures():
    nmnist = parse_shorthand("34x34x2-16c5-2a-32c3-2a-64c3-512-10")
    kinds = [type(layer.synapse) for layer in nmnist.layers]
    assert kinds == [nn.Conv2d, SumPool, nn.Conv2d, SumPool, nn.Conv2d, nn.Linear, nn.Linear]
    assert nmnist.layers[5].synapse.in_features == 64 * 8 * 8  # 'same' convolutions, 34 → 17 → 8
    gesture = parse_shorthand("128x128x2-4a-16c5-2a-32c3-2a-512-11")
    assert gesture.layers[0].synapse.size == 4 and gesture.layers[-2].synapse.in_features == 32 * 8 * 8
    assert nmnist.input_shape == (2, 34, 34) and gesture.layers[-1].synapse.out_features == 11


def test_forward_outputs_spikes_per_step_and_records_layers():
    model = parse_shorthand("12x12x2-4c3-2a-16-5", weight_scale=60.0)
    x = (torch.rand(15, 3, 2, 12, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with SpikeRecorder(model) as rec:
        out = model(x)
    assert out.shape == (15, 3, 5) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert list(rec.spikes) == ["layers.0", "layers.1", "layers.2", "layers.3"]
    assert model.output_reduction == "sum" and out.sum() > 0
    out.sum().backward()
    assert model.layers[0].synapse.weight.grad.abs().sum() > 0 and model.layers[0].delay.delay.grad is not None


@pytest.mark.parametrize("arch, match", [
    ("34x34-16c5-10", "cannot read the input"),
    ("34x34x2-16q5-10", r"layer 1 '16q5'"),
    ("64-256-2a-11", "after a dense layer"),
    ("4x4x2-8a-10", "empty output shape"),
])
def test_bad_architectures(arch, match):
    with pytest.raises(ValueError, match=match):
        parse_shorthand(arch)


def test_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expected input \[T, B, N\] with N = \(64,\)"):
        parse_shorthand("64-11")(torch.zeros(5, 2, 32))
