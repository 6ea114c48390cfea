"""``python -m events.tools``: publish, pseudonymise, schemas (see events.tools.cli)."""

import sys

from events.tools.cli import main

sys.exit(main())
