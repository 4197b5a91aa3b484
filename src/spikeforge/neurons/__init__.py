"""spikeforge.neurons."""
