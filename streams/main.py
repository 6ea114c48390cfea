"""``faust -A streams.main worker`` is not a way to run a worker: it refuses, naming the one that is.

faust's own command line would start the app without what ``python -m streams worker`` does around it
(streams.worker.main): the topic check, the tables' changelog topics created before the worker joins its group
(without them two workers starting together can leave a table partition held by no worker, and a rollup
publishes wrong sums; docs/reliability.md), the bounded graceful stop, the resume check of the membership fence,
the allocator and GC settings, and the spinner switched off. Importing this module exits with that message.
"""

from __future__ import annotations

REFUSAL = ("error: `faust -A streams.main worker` is not supported: it would run the worker without its changelog "
           "topics, topic check and bounded stop.\nrun `python -m streams worker [-l info] [--web-port PORT]` with the "
           "same ALLIANCE_* settings (docs/streams.md)")

raise SystemExit(REFUSAL)
