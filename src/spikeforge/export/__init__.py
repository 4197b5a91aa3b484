"""spikeforge.export."""
