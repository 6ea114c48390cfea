"""``python -m bench.noop_worker worker``: the framework ceiling of the pipeline measurement.

One agent with the worker's own app settings (``streams.app.faust_config``), consumer and batching (an inbox
served like the worker's agents: ``streams.app.serve_inbox``) reads the same ingest topics and only counts
the events: no decoding, no tables, no writes. Its rate is what the framework path (faust's consumer, our
inbox, acknowledgements and commits) delivers to an agent on this machine, so
``pipeline / no-op agent`` is the share of the framework's ceiling the alliance pipeline reaches and
``no-op agent / bare loop`` is the part of the gap that no pipeline code can close.

It serves ``/freshness/`` like the real worker (both ``ingest`` and ``tables`` report the count), so the
benchmark waits for it with the same polling code, and its own clock beside (``clock``: when its first batch
was counted, with how many events, and its last): it drains 20,000 events in a few tenths of a second, which
a 0.2 s poll cannot time (bench.pipeline.noop_rate). Settings come from the ALLIANCE_* environment.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import faust
from faust.types import Message
from faust.web import Request, Response, View

from core.settings import load_settings
from events.reference import UNIVERSITIES
from events.topics import ingest_topic
from streams.app import agent_inbox, faust_config, serve_inbox
from streams.consumer import install


def build_app(web_port: int) -> faust.App:
    settings = load_settings()
    app = faust.App(**faust_config(settings, web_port=web_port))
    inbox = agent_inbox("noop", [settings.topic(ingest_topic(u)) for u in UNIVERSITIES])
    install(app, inboxes=[inbox])
    seen = {"events": 0, "last": 0.0, "first": 0.0, "first_events": 0}

    async def noop(batch: Sequence[Message]) -> None:
        seen["events"] += len(batch)
        seen["last"] = time.time()
        if not seen["first"]:
            seen["first"], seen["first_events"] = seen["last"], len(batch)

    serve_inbox(app, inbox, noop)

    @app.page("/freshness/")
    class Freshness(View):
        async def get(self, request: Request) -> Response:
            agent = {"events_processed": seen["events"],
                     "seconds_since_last_batch": time.time() - seen["last"] if seen["last"] else None}
            clock = {"first_batch_at": seen["first"] or None, "first_batch_events": seen["first_events"],
                     "last_batch_at": seen["last"] or None, "events": seen["events"]}
            return self.json({"ingest": agent, "tables": agent, "clock": clock})

    return app


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noop_worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker")
    w.add_argument("-l", "--loglevel", default="warning")
    w.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args(argv)
    worker = faust.Worker(build_app(args.web_port), loglevel=args.loglevel)
    worker.spinner = None  # as in streams.worker: the spinner turns on DEBUG logging
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
