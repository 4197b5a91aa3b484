"""Paper networks of Table 1 built from NoisyLIF neurons, and whole-network conversion to T steps."""

import math

import pytest
import torch
from torch import nn

from spikeforge.methods.noise_single_step import noise_single_step
from spikeforge.models.noise_nets import NoiseNet, TimeDistributed
from spikeforge.neurons.noisy import NoisyLIF, convert, converted
from spikeforge.registry import MODELS


def _tiny_cnn(**neuron):
    return MODELS.get("noise_cnn")(channels=[4, 8, 8], hidden=16, **neuron)


def test_noise_cnn_is_the_table1_architecture():
    model = MODELS.get("noise_cnn")()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    assert len(pools) == 3 and all(p.kernel_size == 2 and p.stride == 2 for p in pools)
    assert [(m.in_features, m.out_features) for m in linears] == [(128 * 3 * 3, 512), (512, 10)]
    assert sum(isinstance(m, NoisyLIF) for m in model.modules()) == 5
    assert model.output_reduction == "mean"


@pytest.mark.parametrize("steps", [1, 3])
def test_noise_cnn_maps_time_major_images_to_per_step_spikes(steps):
    torch.manual_seed(0)
    out = _tiny_cnn()(torch.rand(steps, 2, 1, 28, 28))
    assert out.shape == (steps, 2, 10)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["noise_vgg16", "noise_resnet18"])
def test_cifar_nets_build_and_take_one_training_step(name):
    torch.manual_seed(0)
    model = MODELS.get(name)()
    method = noise_single_step()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    before = [p.detach().clone() for p in model.parameters()]
    out = method.step(model, torch.rand(1, 2, 3, 32, 32), torch.tensor([3, 7]))
    out.loss.backward()
    opt.step()
    assert torch.isfinite(out.loss) and out.logits.shape == (2, 10)
    assert sum(not torch.equal(a, p) for a, p in zip(before, model.parameters())) > 10
    model.eval()
    assert method.predict(model, torch.rand(1, 2, 3, 32, 32), steps=2).shape == (2, 2, 10)


def test_vgg16_has_13_convolutions_and_resnet18_17_plus_shortcuts():
    vgg = MODELS.get("noise_vgg16")()
    resnet = MODELS.get("noise_resnet18")()
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 13
    resnet_3x3 = [m for m in resnet.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(resnet_3x3) == 17


def test_convert_sets_every_neuron_and_converted_restores():
    model = _tiny_cnn()
    neurons = [m for m in model.modules() if isinstance(m, NoisyLIF)]
    with converted(model, mode="accumulate", alpha=3.0):
        assert all(n.mode == "accumulate" and n.alpha == 3.0 for n in neurons)
    assert all(n.mode == "ensemble" and n.alpha == 4.0 for n in neurons)
    assert convert(model, mode="lif") is model and all(n.mode == "lif" for n in neurons)


def test_conversion_names_an_unknown_layer():
    model = NoiseNet(TimeDistributed(nn.Conv2d(1, 4, 3), nn.ReLU()), NoisyLIF(), in_channels=1)
    with pytest.raises(ValueError, match=r"does not know layer 'body.0.body.1' \(ReLU\)"):
        convert(model)


def test_conversion_needs_a_noisy_neuron():
    with pytest.raises(ValueError, match="has no NoisyLIF neuron"):
        convert(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("alpha", [0.0, -2.0])
def test_conversion_rejects_non_positive_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be > 0"):
        convert(_tiny_cnn(), mode="accumulate", alpha=alpha)


def test_model_without_noise_converts_only_as_ensemble_or_lif():
    model = _tiny_cnn(noise="none")
    with pytest.raises(ValueError, match="trained without noise converts with mode 'ensemble' or 'lif'"):
        convert(model, mode="accumulate", alpha=4.0)
    convert(model, mode="accumulate", alpha=math.inf)  # α = ∞ is step 2, valid for any noise
    x = torch.rand(3, 2, 1, 28, 28)
    model.eval()
    out = convert(model, mode="ensemble")(x)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # deterministic copies


def test_wrong_input_layout_is_named():
    model = _tiny_cnn()
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        model(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="expects 1"):
        model(torch.rand(1, 2, 3, 28, 28))


def test_noisy_lif_rejects_unknown_options():
    with pytest.raises(ValueError, match="noise must be one of"):
        NoisyLIF(noise="pink")
    with pytest.raises(ValueError, match="stats must be one of"):
        NoisyLIF(stats="channel")
