"""A small fully-connected LIF network for the default recipe (Fashion-MNIST in a couple of minutes on CPU)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from spikeforge.layers import Flatten, Readout, SpikingLinear
from spikeforge.registry import MODELS


class DemoLIF(nn.Sequential):
    """Flatten → SpikingLinear×L (LIF, threshold normalised by ‖W_i‖², eq. 5 low-activity paper) → Readout (mean over time)."""

    output_reduction = "mean"

    def __init__(self, inputs: int, hidden: list[int], classes: int, **lif_kwargs) -> None:
        sizes = [inputs, *hidden]
        layers: dict[str, nn.Module] = {"flatten": Flatten()}
        layers.update({f"lif{i + 1}": SpikingLinear(a, b, **lif_kwargs) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))})
        layers["readout"] = Readout(sizes[-1], classes)
        super().__init__(OrderedDict(layers))


@MODELS.register("demo_lif")
def demo_lif(inputs: int = 784, hidden: list[int] = (128,), classes: int = 10, beta_init: float | list[float] = (0.7, 0.01), input_scale: str = "none", reset: str = "subtract") -> DemoLIF:
    """`inputs` → hidden LIF layers → `classes` readout scores per step `[T, B, classes]`."""
    return DemoLIF(inputs, list(hidden), classes, beta_init=beta_init if isinstance(beta_init, float) else tuple(beta_init), input_scale=input_scale, reset=reset)
