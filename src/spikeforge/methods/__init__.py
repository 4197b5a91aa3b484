"""spikeforge.methods."""
