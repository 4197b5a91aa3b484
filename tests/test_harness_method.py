"""surrogate_bptt, the classification losses, synaptic operations and accuracy versus time, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spikeforge.layers import Readout, SpikingLinear
from spikeforge.losses.regularizer import activity_regularizer
from spikeforge.metrics.latency import correct_vs_time
from spikeforge.metrics.synops import SynOpsCounter
from spikeforge.registry import LOSSES, METHODS


class Net(nn.Sequential):
    output_reduction = "mean"


def test_cross_entropy_on_time_averaged_logits_by_hand():
    outputs = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]]])  # T = 2, B = 1: mean logits (2, 0)
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert float(LOSSES.get("cross_entropy")(outputs, torch.tensor([0]))) == pytest.approx(expected)
    assert float(LOSSES.get("cross_entropy")(outputs, torch.tensor([0]), time_reduction="max")) == pytest.approx(-math.log(math.exp(3) / (math.exp(3) + 1)))


def test_mse_on_one_hot_targets_by_hand():
    outputs = torch.tensor([[[0.5, 0.5, 0.0]], [[1.5, 0.5, 0.0]]])  # mean (1, 0.5, 0)
    # target class 1: one-hot (0, 1, 0) → ((1)² + (−0.5)² + 0²) / 3
    assert float(LOSSES.get("mse")(outputs, torch.tensor([1]))) == pytest.approx(1.25 / 3)


def test_losses_refuse_bad_shapes():
    with pytest.raises(ValueError, match="per-step scores"):
        LOSSES.get("mse")(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="targets has 3 labels"):
        LOSSES.get("cross_entropy")(torch.zeros(2, 2, 3), torch.tensor([0, 1, 2]))


def test_surrogate_bptt_adds_the_activity_regulariser_per_layer():
    torch.manual_seed(0)
    model = Net(SpikingLinear(5, 6, threshold_init=0.05), SpikingLinear(6, 4, threshold_init=0.05), Readout(4, 3))
    x, y = torch.rand(7, 2, 5), torch.tensor([0, 2])
    plain = METHODS.get("surrogate_bptt")(loss="cross_entropy").step(model, x, y)
    method = METHODS.get("surrogate_bptt")(loss="cross_entropy", reg_weight=[0.1, 0.3])
    out = method.step(model, x, y)
    s1 = model[0](x)
    s2 = model[1](s1)
    expected = activity_regularizer([s1, s2], [0.1, 0.3])  # Σ_l w_l/(2KN)·ΣS², low-activity paper §5
    assert float(out.loss.detach()) == pytest.approx(float(plain.loss.detach()) + float(expected.detach())) and float(expected.detach()) > 0
    assert out.extras["reg_loss"] == pytest.approx(float(expected.detach()))
    assert out.spike_rates == {"0": pytest.approx(float(s1.detach().mean())), "1": pytest.approx(float(s2.detach().mean()))}
    assert torch.allclose(out.logits, model(x).mean(0))
    linear = METHODS.get("surrogate_bptt")(reg_weight=0.2, reg_schedule="linear")
    assert linear._weights(2) == pytest.approx([0.1, 0.2])  # w·l/L (report)
    with pytest.raises(ValueError, match="lists 1 weights but the model has 2 spiking layers"):
        METHODS.get("surrogate_bptt")(reg_weight=[0.1]).step(model, x, y)


def test_regulariser_warm_up_ramps_the_weight_linearly_over_its_epochs():
    torch.manual_seed(0)
    model = Net(SpikingLinear(5, 6, threshold_init=0.05), Readout(6, 3))
    x, y = torch.rand(7, 2, 5), torch.tensor([0, 2])
    plain = float(METHODS.get("surrogate_bptt")().step(model, x, y).loss.detach())
    full = METHODS.get("surrogate_bptt")(reg_weight=0.4).step(model, x, y).extras["reg_loss"]
    method = METHODS.get("surrogate_bptt")(reg_weight=0.4, reg_warmup=2.0)
    for epochs, factor in [(0.0, 0.0), (0.5, 0.25), (1.5, 0.75), (2.0, 1.0), (7.0, 1.0)]:
        method.set_progress(epochs)
        out = method.step(model, x, y)
        assert out.extras.get("reg_loss", 0.0) == pytest.approx(factor * full)
        assert float(out.loss.detach()) == pytest.approx(plain + factor * full)
    with pytest.raises(ValueError, match="reg_warmup must be >= 0"):
        METHODS.get("surrogate_bptt")(reg_weight=0.4, reg_warmup=-1)


def test_regulariser_budget_is_passed_to_the_regulariser():
    torch.manual_seed(0)
    model = Net(SpikingLinear(5, 6, threshold_init=0.05), SpikingLinear(6, 4, threshold_init=0.05), Readout(4, 3))
    x, y = torch.rand(7, 2, 5), torch.tensor([0, 2])
    out = METHODS.get("surrogate_bptt")(reg_weight=[0.1, 0.3], reg_budget=0.2).step(model, x, y)
    s1 = model[0](x)
    spikes = [s1, model[1](s1)]
    expected = activity_regularizer(spikes, [0.1, 0.3], budget=0.2)
    assert out.extras["reg_loss"] == pytest.approx(float(expected.detach()))
    assert 0 < float(expected.detach()) < float(activity_regularizer(spikes, [0.1, 0.3]).detach())
    with pytest.raises(ValueError, match="method.reg_budget is the spike rate per layer"):
        METHODS.get("surrogate_bptt")(reg_weight=0.1, reg_budget=-0.1)


def test_mixup_trains_on_mixed_pairs_with_both_labels_weighted():
    torch.manual_seed(0)
    model = Net(SpikingLinear(5, 6, threshold_init=0.05), Readout(6, 3))
    x, y = torch.rand(7, 4, 5), torch.tensor([0, 2, 1, 2])
    method = METHODS.get("surrogate_bptt")(mixup=0.4)
    torch.manual_seed(3)
    out = method.step(model, x, y)
    torch.manual_seed(3)  # the same draws by hand: λ ~ Beta(0.4, 0.4), then the partners
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    partner = torch.randperm(4)
    scores = model(lam * x + (1 - lam) * x[:, partner])
    ce = LOSSES.get("cross_entropy")
    expected = lam * ce(scores, y) + (1 - lam) * ce(scores, y[partner])
    assert 0 < lam < 1 and not torch.equal(partner, torch.arange(4))
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()))
    assert float(out.loss.detach()) != pytest.approx(float(ce(model(x), y).detach()))
    model.eval()  # validation and test see the clips as they are
    assert float(method.step(model, x, y).loss.detach()) == pytest.approx(float(ce(model(x), y).detach()))
    with pytest.raises(ValueError, match="method.mixup is the Beta"):
        METHODS.get("surrogate_bptt")(mixup=-0.1)


def test_after_step_applies_the_neuron_constraints():
    layer = SpikingLinear(2, 3)
    with torch.no_grad():
        layer.neuron.beta.fill_(1.4)
        layer.neuron.threshold.copy_(torch.tensor([-1.0, 0.5, 2.0]))
    METHODS.get("surrogate_bptt")().after_step(Net(layer))
    assert float(layer.neuron.beta.detach()) == 1.0 and layer.neuron.threshold.tolist() == [0.0, 0.5, 2.0]  # β ∈ [0, 1], b ≥ 0


def test_model_without_output_reduction_is_explained():
    with pytest.raises(ValueError, match="has no `output_reduction` attribute"):
        METHODS.get("surrogate_bptt")().step(nn.Sequential(Readout(2, 2)), torch.rand(2, 1, 2), torch.tensor([0]))


def test_synaptic_operations_count_input_events_times_fan_out():
    model = Net(SpikingLinear(4, 3), Readout(3, 2))
    x = torch.zeros(2, 1, 4)
    x[0, 0, :2] = 1.0  # 2 input events at step 0, 1 at step 1
    x[1, 0, 3] = 1.0
    with SynOpsCounter(model) as syn:
        spikes = model[0](x)
        model[1](spikes)
        syn.add_samples(1)
    ops = syn.per_sample()
    assert ops["0"] == 3 * 3  # 3 events × 3 outgoing synapses
    assert ops["1"] == float(spikes.detach().sum()) * 2
    conv = nn.Conv2d(1, 4, 3, stride=2)
    conv.stride = (2, 2)
    with SynOpsCounter(conv) as syn:
        conv(torch.ones(1, 1, 5, 5))
    assert syn.ops[""] == 25 * 4 * 9 / 4  # fan-out: 4 channels × 3×3 taps / stride 2×2


def test_correct_predictions_versus_time_by_hand():
    outputs = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[3.0, 0.0], [0.0, 5.0]]])  # [T=2, B=2, 2]
    y = torch.tensor([0, 1])
    # t = 1: predictions (1, 0) → 0 correct; t = 2 (means (1.5, 0.5), (0.5, 2.5)) → both correct
    assert correct_vs_time(outputs, y, "mean").tolist() == [0, 2]
    assert correct_vs_time(outputs, y, "max").tolist() == [0, 2]
