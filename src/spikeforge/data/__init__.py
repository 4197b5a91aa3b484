"""spikeforge.data."""
