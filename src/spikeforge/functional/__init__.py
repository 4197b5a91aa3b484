"""Pure tensor maths: surrogates, neuron dynamics (reference and fused), filters, encoders."""

from spikeforge.functional.filters import leaky_integrate
from spikeforge.functional.lif import lif_scan
from spikeforge.functional.surrogate import SURROGATES, spike_fn, surrogate_grad

__all__ = ["SURROGATES", "leaky_integrate", "lif_scan", "spike_fn", "surrogate_grad"]
