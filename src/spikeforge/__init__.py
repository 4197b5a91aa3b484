"""spikeforge: train spiking neural networks with the methods of five SNN papers."""

__version__ = "0.1.0"
