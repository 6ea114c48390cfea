"""``python -m streams worker [-l info] [--web-port N]``: run one Faust worker with the alliance agents.

Faust's own sensors and the alliance_* metrics are served at http://<host>:<web port>/metrics,
with /healthz and /readyz beside them.
"""

from __future__ import annotations

import sys

from streams.worker import main

sys.exit(main(sys.argv[1:]))
