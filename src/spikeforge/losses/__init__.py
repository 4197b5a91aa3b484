"""spikeforge.losses."""
