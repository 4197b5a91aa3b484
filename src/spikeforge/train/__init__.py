"""spikeforge.train."""
