"""spikeforge: train spiking neural networks with the methods of five SNN papers."""

from spikeforge.threads import configure as _configure_threads

__version__ = "0.1.0"

_configure_threads()  # before torch and numba load their thread pools (spikeforge.threads)
