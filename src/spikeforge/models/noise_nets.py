"""Networks of the noise-based faster SNN training paper (Table 1), built from `NoisyLIF` neurons.

Every weighted layer is followed by a `NoisyLIF` (the output layer too: the scores are
output spikes, averaged over time). Convolutions use 3×3 kernels, stride 1, padding 1;
AP2 is 2×2 average pooling. Batch normalisation after each weighted hidden layer is an
option (on by default; the paper does not say). Input and output are time-major:
`[T, B, C, H, W]` → `[T, B, classes]`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikeforge.checks import check_time_major
from spikeforge.neurons.noisy import NoisyLIF, convertible
from spikeforge.registry import MODELS


@convertible
class TimeDistributed(nn.Module):
    """Per-step layers applied to `[T, B, ...]` at once by folding time into the batch."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(0, 1)).unflatten(0, x.shape[:2])


@convertible
class NoiseNet(nn.Module):
    """A feed-forward stack of per-step layers and NoisyLIF neurons; scores are output spikes `[T, B, classes]`."""

    output_reduction = "mean"

    def __init__(self, *layers: nn.Module, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_time_major(x, "input", 5, "[T, B, C, H, W]")
        if x.shape[2] != self.in_channels:
            raise ValueError(f"input has {x.shape[2]} channels on axis 2 of [T, B, C, H, W]; the model expects {self.in_channels}")
        return self.body(x)


@convertible
class SpikingBasicBlock(nn.Module):
    """ResNet basic block: NoisyLIF(BN(conv(NoisyLIF(BN(conv(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, neuron: dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = TimeDistributed(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.neuron1 = NoisyLIF(**neuron)
        self.conv2 = TimeDistributed(nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        if stride != 1 or in_channels != out_channels:
            self.shortcut = TimeDistributed(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = TimeDistributed(nn.Identity())
        self.neuron2 = NoisyLIF(**neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron2(self.conv2(self.neuron1(self.conv1(x))) + self.shortcut(x))


def _conv(in_channels: int, out_channels: int, batch_norm: bool, *before: nn.Module) -> TimeDistributed:
    """[before…] → 3×3 conv (stride 1, padding 1) → optional BN, applied per step."""
    layers = [*before, nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return TimeDistributed(*layers)


def _dense(in_features: int, out_features: int, batch_norm: bool, *before: nn.Module) -> TimeDistributed:
    """[before…] → linear → optional BN, applied per step."""
    layers = [*before, nn.Linear(in_features, out_features, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    return TimeDistributed(*layers)


@MODELS.register("noise_cnn")
def noise_cnn(
    in_channels: int = 1,
    classes: int = 10,
    image_size: int = 28,
    channels: list = (64, 128, 128),
    hidden: int = 512,
    batch_norm: bool = True,
    **neuron: Any,
) -> NoiseNet:
    """64C3-AP2-128C3-AP2-128C3-AP2-512FC-10FC (Table 1, MNIST / Fashion-MNIST); `neuron` configures NoisyLIF."""
    layers: list[nn.Module] = [_conv(in_channels, channels[0], batch_norm), NoisyLIF(**neuron)]
    for previous, width in zip(channels[:-1], channels[1:]):
        layers += [_conv(previous, width, batch_norm, nn.AvgPool2d(2)), NoisyLIF(**neuron)]
    size = image_size // 2 ** len(channels)  # one AP2 after every conv
    layers += [_dense(channels[-1] * size * size, hidden, batch_norm, nn.AvgPool2d(2), nn.Flatten()), NoisyLIF(**neuron)]
    layers += [_dense(hidden, classes, False), NoisyLIF(**neuron)]
    return NoiseNet(*layers, in_channels=in_channels)


VGG16 = (64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A")


@MODELS.register("noise_vgg16")
def noise_vgg16(in_channels: int = 3, classes: int = 10, image_size: int = 32, hidden: int = 512, **neuron: Any) -> NoiseNet:
    """VGG-16 (13 conv + 2 FC, 2×2 average pooling, BN) for CIFAR-10 (Table 1)."""
    layers: list[nn.Module] = []
    previous, pending_pool, size = in_channels, [], image_size
    for item in VGG16:
        if item == "A":
            pending_pool, size = [nn.AvgPool2d(2)], size // 2
            continue
        layers += [_conv(previous, item, True, *pending_pool), NoisyLIF(**neuron)]
        previous, pending_pool = item, []
    layers += [_dense(previous * size * size, hidden, True, *pending_pool, nn.Flatten()), NoisyLIF(**neuron)]
    layers += [_dense(hidden, classes, False), NoisyLIF(**neuron)]
    return NoiseNet(*layers, in_channels=in_channels)


@MODELS.register("noise_resnet18")
def noise_resnet18(in_channels: int = 3, classes: int = 10, **neuron: Any) -> NoiseNet:
    """ResNet-18 for CIFAR-10 (3×3 stem, four stages of two basic blocks, global average pool) (Table 1)."""
    layers: list[nn.Module] = [_conv(in_channels, 64, True), NoisyLIF(**neuron)]
    previous = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [SpikingBasicBlock(previous, width, stride, neuron), SpikingBasicBlock(width, width, 1, neuron)]
        previous = width
    layers += [_dense(previous, classes, False, nn.AdaptiveAvgPool2d(1), nn.Flatten()), NoisyLIF(**neuron)]
    return NoiseNet(*layers, in_channels=in_channels)
