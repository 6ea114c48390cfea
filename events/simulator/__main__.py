"""``python -m events.simulator``: publish a simulated alliance day (see events.simulator.publish)."""

import sys

from events.simulator.publish import main

sys.exit(main())
