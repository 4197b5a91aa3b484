"""spikeforge.layers."""
