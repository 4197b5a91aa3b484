"""spikeforge.functional."""
