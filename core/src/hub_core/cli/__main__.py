"""``python -m hub_core.cli``: the same as the ``hub`` command."""

import sys

from hub_core.cli import main

sys.exit(main())
