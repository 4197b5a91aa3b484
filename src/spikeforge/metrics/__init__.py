"""spikeforge.metrics."""
