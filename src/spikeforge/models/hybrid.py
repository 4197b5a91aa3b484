"""The hybrid paper's architectures (§3): bias-free ReLU ANNs and their one-spike ReL-PSP SNNs.

- ``hybrid_fc2``: 784-800-10;
- ``hybrid_c2f3``: 28×28-16C5-P2-32C5-P2-800-128-10 (SNN: first conv kept analog by default);
- ``hybrid_cifar_cnn``: 32×32×3-64C3-P2-128C3-128C3-P2-256-10 (3×3 convs padded by 1);
- ``hybrid_kws``: 1×100×40-16C5-P2-32C5-P2-256-12 on the speech features (§3.2; first conv analog).
The ``*_snn`` names build the same architecture converted to ReL-PSP (a fresh initialisation; convert a trained
ANN with `spikeforge.methods.hybrid_temporal.convert_to_snn`). ANNs map [B, ...] → logits [B, classes]; SNNs map
intensities [B, ...] → output spike times [B, classes].
"""

from __future__ import annotations

from torch import nn

from spikeforge.methods.hybrid_temporal import convert_to_snn
from spikeforge.neurons.relpsp import ReLPSPNetwork
from spikeforge.registry import MODELS


@MODELS.register("hybrid_fc2")
def hybrid_fc2(in_features: int = 784, hidden: int = 800, classes: int = 10) -> nn.Sequential:
    """FC2 ANN, 784-800-10 (§3.1)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden, bias=False), nn.ReLU(),
                         nn.Linear(hidden, classes, bias=False))


@MODELS.register("hybrid_c2f3")
def hybrid_c2f3(in_channels: int = 1, classes: int = 10) -> nn.Sequential:
    """C2F3 ANN, 28×28-16C5-P2-32C5-P2-800-128-10 (§3.1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 800, bias=False), nn.ReLU(),
        nn.Linear(800, 128, bias=False), nn.ReLU(), nn.Linear(128, classes, bias=False),
    )


@MODELS.register("hybrid_cifar_cnn")
def hybrid_cifar_cnn(in_channels: int = 3, classes: int = 10) -> nn.Sequential:
    """CIFAR-10 ANN, 64C3-P2-128C3-128C3-P2-256-10 on 32×32 inputs (§3.1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.ReLU(),
        nn.Conv2d(128, 128, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 8 * 8, 256, bias=False), nn.ReLU(), nn.Linear(256, classes, bias=False),
    )


@MODELS.register("hybrid_kws")
def hybrid_kws(steps: int = 100, bands: int = 40, classes: int = 12) -> nn.Sequential:
    """Keyword-spotting ANN (§3.2): the C2F3 layout on the log-Mel image, 1×100×40-16C5-P2-32C5-P2-256-12.

    Input: the speech features [B, steps, 1, bands], viewed as one-channel images [B, 1, steps, bands]. The first
    conv is meant to stay analog (`analog_layers: 1`, the C2F3 note): it turns the unbounded features into the
    intensities in [0, 1] that the time-to-first-spike encoding needs.
    """
    height, width = ((steps - 4) // 2 - 4) // 2, ((bands - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (1, steps, bands)),
        nn.Conv2d(1, 16, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * height * width, 256, bias=False), nn.ReLU(), nn.Linear(256, classes, bias=False),
    )


@MODELS.register("hybrid_fc2_snn")
def hybrid_fc2_snn(force_firing: bool = True, min_denominator: float = 0.1) -> ReLPSPNetwork:
    """FC2 as a one-spike ReL-PSP SNN."""
    return convert_to_snn(hybrid_fc2(), force_firing, 0, min_denominator=min_denominator)


@MODELS.register("hybrid_c2f3_snn")
def hybrid_c2f3_snn(force_firing: bool = True, analog_layers: int = 1, min_denominator: float = 0.1) -> ReLPSPNetwork:
    """C2F3 as a one-spike ReL-PSP SNN (first conv analog by default, §3.1)."""
    return convert_to_snn(hybrid_c2f3(), force_firing, analog_layers, min_denominator=min_denominator)


@MODELS.register("hybrid_cifar_cnn_snn")
def hybrid_cifar_cnn_snn(force_firing: bool = True, analog_layers: int = 0, min_denominator: float = 0.1) -> ReLPSPNetwork:
    """The CIFAR-10 CNN as a one-spike ReL-PSP SNN."""
    return convert_to_snn(hybrid_cifar_cnn(), force_firing, analog_layers, min_denominator=min_denominator)
