"""Spiking layers, readout and pooling; all time-major `[T, B, ...]`."""

from spikeforge.layers.base import SpikingLayer
from spikeforge.layers.conv import RecurrentPool, SpikingConv
from spikeforge.layers.dense import SpikingLinear
from spikeforge.layers.pool import Flatten, Pool
from spikeforge.layers.readout import Readout, WordReadout

__all__ = ["Flatten", "Pool", "Readout", "RecurrentPool", "SpikingConv", "SpikingLayer", "SpikingLinear", "WordReadout"]
