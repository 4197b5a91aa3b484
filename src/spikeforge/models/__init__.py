"""spikeforge.models."""
