"""Neuron modules: parameters + a call into `spikeforge.functional`."""

from spikeforge.neurons.lif import LIF

__all__ = ["LIF"]
