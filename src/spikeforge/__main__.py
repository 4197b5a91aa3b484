"""`python -m spikeforge` is the `spikeforge` command."""

import sys

from spikeforge.cli import main

sys.exit(main())
