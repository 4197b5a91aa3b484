"""`python -m spikeforge` is the `spikeforge` command."""

from spikeforge.cli import entry

entry()
