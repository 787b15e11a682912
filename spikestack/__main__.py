"""`python -m spikestack`: the `spikestack` command."""

import sys

from spikestack.cli import main

sys.exit(main())
