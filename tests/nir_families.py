"""Small members of every exportable model family, with enough activity that a spike comparison is not trivial."""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.layers import Flatten, Pool, Readout, SpikingConv, SpikingLinear
from spikeforge.models.demo import demo_lif
from spikeforge.models.kws import kws_dilated
from spikeforge.models.noise_nets import noise_cnn
from spikeforge.models.shorthand import parse_shorthand
from spikeforge.neurons.noisy import convert


class Chain(nn.Sequential):
    output_reduction = "mean"


def _low_thresholds(model: nn.Module) -> nn.Module:
    """Thresholds small enough that every layer fires on random input."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SpikingLinear | SpikingConv):
                m.neuron.threshold.uniform_(0.02, 0.1)
    return model


def _noise_cnn() -> nn.Module:
    """The noise-trained CNN after conversion to the plain LIF, with non-trivial BatchNorm statistics folded at export."""
    model = noise_cnn(image_size=8, channels=(4, 4), hidden=16)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(1.0, 3.0)
                m.bias.uniform_(0.3, 0.8)
        [*_, last] = (m for m in model.modules() if isinstance(m, nn.Linear))
        last.weight.mul_(4.0)  # the output layer fires too
    return convert(model.eval(), mode="lif")


def _srm() -> nn.Module:
    """A spikemax network: SRM neurons, sum pooling, trainable fractional axonal delays."""
    model = parse_shorthand("6x6x2-4c3-2a-12-4", tau_s=2.0, tau_r=3.0, weight_scale=60.0)
    with torch.no_grad():
        for layer in model.layers:
            if layer.delay is not None:
                layer.delay.delay.uniform_(0.0, 3.0)
    return model


#: name → (model factory, per-step input shape); every model resets to zero (the reset NIR expresses).
FAMILIES = {
    "dense_lif": (lambda: _low_thresholds(demo_lif(inputs=12, hidden=[10, 8], classes=4, reset="zero")), (12,)),
    "dense_lif_scaled": (lambda: _low_thresholds(Chain(SpikingLinear(12, 10, reset="zero", input_scale="one_minus_beta"),
                                                       SpikingLinear(10, 8, reset="zero", normalize_threshold=False), Readout(8, 4, normalized=True))), (12,)),
    "dense_nlif": (lambda: _low_thresholds(Chain(SpikingLinear(12, 10, reset="zero", nlif=True), Readout(10, 4))), (12,)),
    "dense_cuba": (lambda: _low_thresholds(Chain(SpikingLinear(12, 10, reset="zero", tau_syn=2.5), SpikingLinear(10, 8, reset="zero", tau_syn=1.5), Readout(8, 4))), (12,)),
    "dense_cuba_li": (lambda: _low_thresholds(Chain(SpikingLinear(12, 10, reset="zero", tau_syn=2.5), Readout(10, 4, integrate=0.8))), (12,)),
    "conv2d": (lambda: _low_thresholds(Chain(SpikingConv(2, 4, 3, padding=1, reset="zero", bias=True), Pool("avg", 2),
                                             SpikingConv(4, 4, 3, padding=1, reset="zero"), Flatten(), Readout(64, 5))), (2, 8, 8)),
    "conv1d": (lambda: _low_thresholds(Chain(SpikingConv(3, 4, 3, spatial_dims=1, padding=1, reset="zero"), Flatten(), Readout(40, 3))), (3, 10)),
    "kws_time_taps": (lambda: _low_thresholds(kws_dilated(bands=10, classes=5, channels=[4, 4], kernels=[(4, 3), (3, 3)], dilations=[(1, 1), (2, 2)], reset="zero")), (1, 10)),
    "noise_cnn_lif": (_noise_cnn, (1, 8, 8)),
    "srm_delays": (_srm, (2, 6, 6)),
}
#: families spikeforge exports but does not import back (it imports chains of LIF-type layers), per form of the file
NOT_IMPORTED = {"srm_delays": "branches at node '1.srm.spike' into paths that do not meet at one node"}
NOT_IMPORTED_SNN_MLIR = {"kws_time_taps": "NIR graph has a recurrent connection '0.synapse.line' ⇄ '0.synapse.line.shift'"}
#: the time step of a family's files in the snn-mlir form (snn-mlir reads IF's r as the gain per step: dt = 1)
SNN_MLIR_DT = {"dense_nlif": 1.0}


def family(name: str) -> tuple[nn.Module, tuple[int, ...], torch.Tensor]:
    """(model, input shape, random input spikes [T = 12, B = 3, *shape]) for a family, seeded."""
    factory, shape = FAMILIES[name]
    torch.manual_seed(0)
    model = factory()
    x = (torch.rand(12, 3, *shape, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    return model, shape, x


#: family → why the tool cannot run it (absent: identical spikes). Mirrors the matrix in docs/usage.md.
NORSE_GAPS = {
    "dense_cuba_li": "Norse 1.1 imports no LI node (the integrating readout)",
    "conv1d": "Norse 1.1 imports no Conv1d node",
    "kws_time_taps": "Norse 1.1 imports no Delay node",
    "srm_delays": "Norse 1.1 imports no Delay, CubaLI, Threshold or Scale node",
}
SNNTORCH_GAPS = {
    "dense_nlif": "snnTorch 1.0 imports IF as a leaky neuron (β = 0.9) and only with r = 1",
    "dense_cuba_li": "snnTorch 1.0 imports no LI node",
    "kws_time_taps": "snnTorch 1.0 imports no Delay node",
    "srm_delays": "snnTorch 1.0 imports no Delay, CubaLI, Threshold or Scale node",
}
SNN_MLIR_GAPS = {"srm_delays": "SRM neurons cannot be written in a form snn-mlir 1.0 accepts"}
#: sinabs 3.1 (installed with --no-deps: it pins nir <= 1.0.4) turns every NIR LIF / IF into a multi-spike neuron
#: with subtractive reset (τ read in steps, r ignored), so no spiking family can be identical.
#: family → (the first blocker, the tool's error; None: it runs the file, with different output)
SINABS_GAPS = {
    "dense_lif": ("sinabs 3.1 imports no Linear node (Affine only)", "'0_synapse'"),
    "dense_lif_scaled": ("sinabs 3.1 imports no Linear node (Affine only)", "'0_synapse'"),
    "dense_nlif": ("sinabs 3.1 drops the Linear node, then runs IF as a multi-spike neuron with subtractive reset", "must match the size"),
    "dense_cuba": ("sinabs 3.1 imports no Linear and no CubaLIF node", "'0_synapse'"),
    "dense_cuba_li": ("sinabs 3.1 imports LI only with r = 1, and no CubaLIF", "`r` must be 1"),
    "conv2d": ("sinabs 3.1 fails on LIF nodes whose parameters have more than one axis", "truth value of an array"),
    "conv1d": ("sinabs 3.1 calls .detach() on the NumPy weights of Conv1d nodes", "has no attribute 'detach'"),
    "kws_time_taps": ("sinabs 3.1 calls .detach() on the NumPy weights of Conv1d nodes; no Delay import", "has no attribute 'detach'"),
    "noise_cnn_lif": ("sinabs 3.1 fails on LIF nodes whose parameters have more than one axis", "truth value of an array"),
    "srm_delays": ("sinabs 3.1 imports no Delay, CubaLI, Threshold or Scale node", "'1_srm_psp_delay'"),
}
#: rockpool 3.1 imports Linear, Affine, CubaLIF (as a multi-spike neuron with subtractive reset) and LI only
ROCKPOOL_GAPS = {
    "dense_lif": ("rockpool 3.1 reads tau_mem of LIF nodes, which have tau", "has no attribute 'tau_mem'"),
    "dense_lif_scaled": ("rockpool 3.1 reads tau_mem of LIF nodes, which have tau", "has no attribute 'tau_mem'"),
    "dense_nlif": ("rockpool 3.1 imports no IF node", "Cannot convert <class 'nir.ir.neuron.IF'>"),
    "dense_cuba": ("rockpool 3.1 runs CubaLIF as a multi-spike neuron with subtractive reset, dt read as τ/(1 + r)", None),
    "dense_cuba_li": ("rockpool 3.1 runs CubaLIF as a multi-spike neuron with subtractive reset; LI's τ cut to an integer", None),
    "conv2d": ("rockpool 3.1 imports no Conv2d node", "Cannot convert <class 'nir.ir.conv.Conv2d'>"),
    "conv1d": ("rockpool 3.1 imports no Conv1d node", "Cannot convert <class 'nir.ir.conv.Conv1d'>"),
    "kws_time_taps": ("rockpool 3.1 imports no Conv1d or Delay node", "Cannot convert <class 'nir.ir.conv.Conv1d'>"),
    "noise_cnn_lif": ("rockpool 3.1 imports no Conv2d node", "Cannot convert <class 'nir.ir.conv.Conv2d'>"),
    "srm_delays": ("rockpool 3.1 imports no Conv2d, Delay, CubaLI, Threshold or Scale node", "Cannot convert <class 'nir.ir.conv.Conv2d'>"),
}
