"""Running a worker: the Faust app plus Prometheus sensors and health endpoints on the Faust web server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.credentials import CredentialsError
from core.errors import TopicError
from core.kafka_access import STREAMS
from core.runtime import tune_allocator, tune_gc
from core.settings import Settings, SettingsError, load_settings
from core.topic_admin import create_missing, verify
from streams import sensors
from streams.app import changelog_specs, create_app
from streams.consumer import fence_of
from streams.fence import install_resume_check
from streams.metrics import FAUST_SENSOR_PREFIX

log = logging.getLogger("streams.worker")


def build_worker_app(settings: Settings, *, web_port: int | None = None) -> faust.App:
    """The worker app with two registries: the pipeline's alliance_* metrics at /metrics (clean for
    ``promtool check metrics``) and faust's own sensors at /metrics/faust (faust names them itself, e.g.
    faust_events_runtime_ms, which promtool's unit lint flags)."""
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, web_port=web_port or settings.web_port)
    sensors.setup(app, "/metrics/faust", CollectorRegistry(), FAUST_SENSOR_PREFIX)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body = generate_latest(registry)
            return cast(Response, web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.text("ok\n")

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            state = readiness(app)
            return self.json(state, status=200 if state["ready"] else 503)

    return app


EXIT_STOP_TIMEOUT = 75  # EX_TEMPFAIL: the graceful stop did not finish within the grace period


class Worker(faust.Worker):
    """faust's worker with a bounded stop: if the graceful stop (signal, or the stall guard's restart) has
    not finished after ``stop_grace_seconds``, the process exits non-zero at once. faust's shutdown can hang
    (its fetcher, a failing group coordinator; docs/streams.md), and a worker that hangs in its stop is
    neither serving nor restarted by its supervisor. Nothing is lost: offsets are committed only for
    processed batches."""

    def __init__(self, app: faust.App, *, stop_grace_seconds: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.stop_grace_seconds = stop_grace_seconds
        self._watchdog: threading.Timer | None = None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Timer(self.stop_grace_seconds, _stop_timed_out, (self.stop_grace_seconds,))
            self._watchdog.daemon = True
            self._watchdog.start()
        super()._schedule_shutdown(signal)


def _stop_timed_out(grace: float) -> None:
    log.critical("graceful stop did not finish within %.0fs; exiting with %d", grace, EXIT_STOP_TIMEOUT)
    logging.shutdown()
    os._exit(EXIT_STOP_TIMEOUT)


def readiness(app: faust.App) -> dict[str, object]:
    """Ready means: a member of the group that owns partitions (a restarted worker waits, unassigned,
    until the group coordinator gives up on its killed predecessor) and whose tables are recovered from
    their changelogs, i.e. it processes events and its views answer from complete tables."""
    assigned = len(app.consumer.assignment()) if app.consumer is not None else 0
    rebalancing = bool(app.rebalancing)
    recovered = app.tables.recovery.completed.is_set() and not app.in_recovery  # type: ignore[attr-defined]
    ready = assigned > 0 and not rebalancing and recovered and app.consumer_generation_id is not None
    return {"ready": ready, "assigned_partitions": assigned, "rebalancing": rebalancing,
            "tables_recovered": recovered}


def check_topics(settings: Settings) -> None:
    """The worker's tables are sized from the settings: the topics must exist with exactly those counts."""
    verify(settings.kafka(STREAMS), settings.registry(), suffix=settings.topic_suffix, timeout_s=5.0)


def ensure_changelogs(settings: Settings, app: faust.App) -> None:
    """Create the tables' changelog topics (faust's names and settings) before the worker joins its group,
    and wait until the cluster's metadata shows them. faust would declare them itself once started, but its
    partition assignor silently leaves out a topic the group leader's metadata does not show yet ("Ignoring
    missing topic"): two workers starting together on a new deployment then ran a table partition that no
    worker held (its reads found nothing, its state was never kept), and a rollup published wrong sums."""
    create_missing(settings.kafka(STREAMS), changelog_specs(app), settings.replication_factor, timeout_s=30.0)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run one Faust worker (ALLIANCE_* settings)")
    w.add_argument("-l", "--loglevel", default="info")
    w.add_argument("--web-port", type=int, default=None, help="faust web port (views, /metrics); default 6066")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        check_topics(settings)
    except (SettingsError, CredentialsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TopicError as exc:
        print(f"error: {exc}\nrun `python -m infra provision` with the same ALLIANCE_* settings", file=sys.stderr)
        return 2
    tune_gc()
    tune_allocator()
    app = build_worker_app(settings, web_port=args.web_port)
    try:
        ensure_changelogs(settings, app)
    except (TopicError, CredentialsError) as exc:
        print(f"error: the tables' changelog topics: {exc}", file=sys.stderr)
        return 2
    worker = Worker(app, loglevel=args.loglevel, stop_grace_seconds=settings.stop_grace_seconds)
    if (fence := fence_of(app)) is not None:
        install_resume_check(fence)  # a worker continued after a stop past its session exits unwritten
    # At -l warning or above, faust's terminal spinner sets the root logger to DEBUG so that every log
    # call spins it; aiokafka then formats a debug record (with the value's repr) for every message sent.
    # That costs more than the processing itself, so the spinner is switched off.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
